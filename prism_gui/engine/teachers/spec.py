"""The one teacher description every spec uses, parsed in one place.

A spec (JSON/TOML, the GUI's project, a CLI file) names its teacher either with flat keys, as
``prism prompts`` always has::

    teacher = "resnet50"                  # digits | a timm name | a timm architecture | a TorchScript file
    checkpoint = "teacher.safetensors"    # a state dict for that architecture (.safetensors/.pth/.pt)
    class_names = "classes.txt"           # optional: a file, or a list
    input_size = [3, 224, 224]            # optional overrides of the model's data config
    mean = [0.485, 0.456, 0.406]
    std = [0.229, 0.224, 0.225]
    crop_pct = 0.875
    interpolation = "bicubic"

or with the same keys in a ``[teacher]`` table (``teacher.source`` for the name).  A plain
string is the same as ``teacher = "..."`` alone.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

FIELDS = ("checkpoint", "class_names", "input_size", "mean", "std", "crop_pct", "interpolation")


class TeacherSpecError(ValueError):
    """A teacher description that cannot be used; the message says what to write instead."""


def _numbers(values, whole: bool = False) -> bool:
    """Whether ``values`` is a list of finite numbers (whole ones with ``whole``)."""
    import math

    if not isinstance(values, (list, tuple)):
        return False
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return False
        if whole and float(v) != int(v):
            return False
    return True


@dataclasses.dataclass
class TeacherSpec:
    source: str = "digits"
    checkpoint: str | None = None
    class_names: str | list[str] | None = None
    input_size: tuple[int, int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    crop_pct: float | None = None
    interpolation: str | None = None

    def __post_init__(self):
        if not isinstance(self.source, str) or not self.source.strip():
            raise TeacherSpecError("teacher: give 'digits', a timm model name, a timm architecture (with "
                                   "'checkpoint'), or a TorchScript file")
        self.source = self.source.strip()
        if self.checkpoint is not None and not isinstance(self.checkpoint, (str, Path)):
            raise TeacherSpecError(f"teacher checkpoint {self.checkpoint!r} must be the path of a file, in quotes")
        if self.checkpoint is not None:
            self.checkpoint = str(self.checkpoint)
        if self.class_names is not None and not isinstance(self.class_names, (str, Path, list, tuple)):
            raise TeacherSpecError(f"teacher class_names {self.class_names!r} must be a file or a list of names")
        if self.input_size is not None:
            if not _numbers(self.input_size, whole=True) or len(self.input_size) != 3 or \
                    not all(int(v) > 0 for v in self.input_size):
                raise TeacherSpecError(f"teacher input_size {self.input_size!r} must be [channels, height, "
                                       "width], e.g. [3, 224, 224]")
            self.input_size = tuple(int(v) for v in self.input_size)
        for key in ("mean", "std"):
            v = getattr(self, key)
            if v is not None:
                if not _numbers(v):
                    raise TeacherSpecError(f"teacher {key} {v!r} must be a list of finite numbers, one per channel, "
                                           "e.g. [0.485, 0.456, 0.406]")
                v = tuple(float(x) for x in v)
                if key == "std" and any(x <= 0 for x in v):
                    raise TeacherSpecError(f"teacher std {list(v)} must be positive")
                setattr(self, key, v)
        if self.crop_pct is not None and (not _numbers([self.crop_pct]) or not (0 < float(self.crop_pct) <= 1)):
            raise TeacherSpecError(f"teacher crop_pct {self.crop_pct!r} must be a number in (0, 1], e.g. 0.875")
        if self.interpolation is not None and not isinstance(self.interpolation, str):
            raise TeacherSpecError(f"teacher interpolation {self.interpolation!r} must be a name such as "
                                   "\"bicubic\"")
        if isinstance(self.class_names, Path):
            self.class_names = str(self.class_names)

    # ------------------------------------------------------------------ parsing
    @classmethod
    def from_value(cls, value, where: str = "spec") -> TeacherSpec:
        """From a plain string, a table (``source`` or ``teacher`` for the name) or a TeacherSpec."""
        if isinstance(value, TeacherSpec):
            return value
        if value is None:
            return cls()
        if isinstance(value, (str, Path)):
            return cls(str(value))
        if isinstance(value, dict):
            d = dict(value)
            name = d.pop("source", None) or d.pop("teacher", None) or d.pop("name", None) or "digits"
            unknown = sorted(set(d) - set(FIELDS))
            if unknown:
                raise TeacherSpecError(f"{where}: unknown teacher settings {unknown}; valid: "
                                       f"{['source', *FIELDS]}")
            if not isinstance(name, (str, Path)):
                raise TeacherSpecError(f"{where}: 'teacher' is {name!r}: give 'digits', a timm model name, a timm "
                                       "architecture (with 'checkpoint') or a TorchScript file, in quotes")
            try:
                return cls(str(name), **d)
            except TeacherSpecError as e:
                raise TeacherSpecError(f"{where}: {e}") from None
        raise TeacherSpecError(f"{where}: 'teacher' must be a name/path or a table, not {type(value).__name__}")

    @classmethod
    def take(cls, spec: dict, where: str = "spec") -> TeacherSpec:
        """Remove the teacher's keys (flat or a ``teacher`` table) from ``spec`` and parse them."""
        value = spec.pop("teacher", "digits")
        flat = {k: spec.pop(k) for k in FIELDS if k in spec}
        if isinstance(value, dict):
            clash = sorted(set(flat) & set(value))
            if clash:
                raise TeacherSpecError(f"{where}: {clash} given both in the [teacher] table and at the top level: "
                                       "keep one")
            return cls.from_value({**value, **flat}, where)
        return cls.from_value({"source": value, **flat}, where)

    def to_value(self) -> str | dict:
        """The plain name when nothing else is set (so older specs compare equal), else a table."""
        extra = {k: (list(v) if isinstance(v, tuple) else v) for k in FIELDS if (v := getattr(self, k)) is not None}
        return {"source": self.source, **extra} if extra else self.source

    @property
    def key(self) -> tuple:
        """Identity of the loaded model, for caches."""
        return ("teacher", self.source, self.checkpoint, str(self.class_names), self.input_size, self.mean, self.std,
                self.crop_pct, self.interpolation)

    def load(self, allow_download: bool = False):
        from prism_gui.engine.teachers.load import load_teacher

        return load_teacher(self.source, checkpoint=self.checkpoint, class_names=self.class_names,
                            input_size=self.input_size, mean=self.mean, std=self.std, crop_pct=self.crop_pct,
                            interpolation=self.interpolation, allow_download=allow_download)
