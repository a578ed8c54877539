"""A PRISM Studio project: a folder with a spec, a prompt set and the engine's catalog.

Qt-free helpers the desktop app drives (and a script could drive too):

- :class:`Project`: ``project.json`` (teacher, generator, generation and distillation
  settings), ``prompts.json`` and ``catalog.sqlite`` in one folder;
- the app's jobs and model cache are in :mod:`prism_gui.engine.project.app_jobs`, the
  stakeholder report in :mod:`prism_gui.engine.project.report`.

Only light modules are imported at module level: torch and friends load inside the jobs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

from prism_gui.engine.data.layout import PROJECT_FILE, PROMPTS_FILE, RunPaths
from prism_gui.engine.project.demo_settings import demo_settings
from prism_gui.engine.training.spec import PROJECT_FIELDS, project_defaults
from prism_gui.resources import resource_path

SPEC_FILE = PROJECT_FILE
SPEC_VERSION = 1


def studio_home() -> Path:
    """Where the app keeps its data (``PRISM_STUDIO_HOME`` overrides the platformdirs folder)."""
    env = os.environ.get("PRISM_STUDIO_HOME")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("PRISM Studio", "PRISM"))


def studio_config_dir() -> Path:
    env = os.environ.get("PRISM_STUDIO_HOME")
    if env:
        return Path(env) / "config"
    import platformdirs

    return Path(platformdirs.user_config_dir("PRISM Studio", "PRISM"))


def default_project_path() -> Path:
    return studio_home() / "projects" / "digits"


def digits_card() -> dict:
    path = resource_path("digits_teacher", "card.json")
    return json.loads(path.read_text()) if path.exists() else {}


def default_spec(name: str = "Digits") -> dict:
    """A new project's settings: the quick demo's (``demo_settings.QUICK``), which follow the
    benchmarks (docs/BENCHMARKS.md)."""
    card = digits_card()
    q = demo_settings(quick=True)
    return {
        "version": SPEC_VERSION,
        "name": name,
        "created": time.time(),
        "teacher": {"kind": "digits", "source": "digits", "checkpoint": None,
                    "class_names": list(card.get("class_names", [])),
                    "test_accuracy": card.get("test_split", {}).get("accuracy"),
                    "parameters": card.get("parameters")},
        "prompts": {"bank": "digits", "disambiguation": "name", "per_class": q["prompts_per_class"], "seed": 0,
                    "axes": None, "include_plain": True},
        "generate": {"generator": "digits", "scheduler": q["scheduler"], "steps": q["steps"], "cfg": q["cfg"],
                     "images_per_class": q["images_per_class"], "batch_size": 50, "seed": 0,
                     "guidance_scale": q["guidance_scale"], "guidance_window": list(q["guidance_window"]),
                     "guidance_mode": q["guidance_mode"], "energy_weights": {"class": 1.0}},
        # DistillSpec's own defaults (the one definition), with the quick demo's student, epochs and seed
        "distill": project_defaults(student=q["student"], epochs=q["epochs"], seed=q["seed"]),
        # the real held-out set: student accuracy in Distill, the precision/recall reference in Curate.
        # "digits-test", a labelled image folder (WordNet-id or class-name subfolders), or "" for none
        "evaluation": {"set": "digits-test", "mapping": None},
    }


def check_spec(spec, path: Path) -> None:
    """Refuse a ``project.json`` this version cannot use without losing something: one written by
    a newer version (saving it here would drop what that version added), or settings of the wrong
    type (NaN, a text for a count, a negative count), naming the setting and the fix.  The file is
    never changed."""
    import math

    if not isinstance(spec, dict):
        raise ValueError(f"{path} must hold a JSON object of settings, not a {type(spec).__name__}; restore it from "
                         "a backup or delete it to start the project's settings afresh.")
    version = spec.get("version", SPEC_VERSION)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"{path}: 'version' is {version!r}, not a whole number; set it to {SPEC_VERSION}.")
    if version > SPEC_VERSION:
        raise ValueError(f"{path} was written by a newer PRISM Studio (project version {version}, this version reads "
                         f"{SPEC_VERSION}): open the project with that version or a newer one. Nothing was changed.")
    base = default_spec()
    for section, defaults in base.items():
        if not isinstance(defaults, dict) or section not in spec:
            continue
        values = spec[section]
        if not isinstance(values, dict):
            raise ValueError(f"{path}: '{section}' must be a table of settings, not {values!r}; fix it or delete the "
                             f"'{section}' entry to use the defaults.")
        if section == "distill":  # checked as DistillSpec checks its settings (one validator)
            _check_distill_section(values, defaults, path)
            continue
        for key, default in defaults.items():
            if key not in values or default is None or values[key] is None:
                continue
            value, where = values[key], f"{path}: '{section}.{key}'"
            fix = f"; fix it or delete the line to use the default ({json.dumps(default)})."
            if isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, (int, float)):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
                    and (not isinstance(default, int) or float(value).is_integer()) and value >= 0
            elif isinstance(default, str):
                ok = isinstance(value, str)
            elif isinstance(default, list):
                ok = isinstance(value, list)
            elif isinstance(default, dict):
                ok = isinstance(value, dict)
            else:
                ok = True
            if not ok:
                kind = {bool: "true or false", int: "a whole number >= 0", float: "a finite number >= 0",
                        str: "a text", list: "a list", dict: "a table"}[type(default)]
                raise ValueError(f"{where} is {json.dumps(value) if not isinstance(value, float) else value}: "
                                 f"it must be {kind}{fix}")


def _check_distill_section(values: dict, defaults: dict, path: Path) -> None:
    import typing

    from prism_gui.engine.specs import SpecError, check_value
    from prism_gui.engine.training.spec import DistillSpec

    hints = typing.get_type_hints(DistillSpec)
    for key in PROJECT_FIELDS:
        if values.get(key) is None:
            continue
        try:
            check_value(f"distill.{key}", values[key], hints[key], str(path))
        except SpecError as e:
            raise ValueError(f"{e}".rstrip(".") + f"; fix it or delete the line to use the default "
                             f"({json.dumps(defaults[key])}).") from None


def _check_catalog_version(root: Path) -> None:
    """Refuse a catalog written by a newer version before anything opens it (read-only: the file
    is left byte for byte)."""
    import sqlite3

    from prism_gui.engine.data.catalog import SCHEMA_VERSION, CatalogError

    db = root / "catalog.sqlite"
    if not db.is_file() or db.stat().st_size == 0:
        return
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return  # a damaged catalog: open_checked names it, with the way to rebuild it
    if version > SCHEMA_VERSION:
        raise CatalogError(f"{db} was written by a newer PRISM Studio (catalog schema {version}, this version reads "
                           f"{SCHEMA_VERSION}): open the project with that version. Nothing was changed.")


@dataclasses.dataclass
class Project:
    root: Path
    spec: dict

    # ------------------------------------------------------------------ files
    @property
    def name(self) -> str:
        return str(self.spec.get("name") or self.root.name)

    @property
    def spec_path(self) -> Path:
        return self.root / SPEC_FILE

    @property
    def prompts_path(self) -> Path:
        return self.root / PROMPTS_FILE

    @classmethod
    def create(cls, root: str | Path, name: str | None = None) -> Project:
        root = Path(root).expanduser()
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OSError(f"cannot create the project folder '{root}': {e.strerror or e}. Choose a folder you can "
                          "write to (File > New project; for the default projects, set PRISM_STUDIO_HOME to a "
                          "writable folder)") from e
        p = cls(root, default_spec(name or root.name))
        p.save()
        return p

    @classmethod
    def open(cls, root: str | Path) -> Project:
        root = Path(root).expanduser()
        path = root / SPEC_FILE
        if not path.exists():
            raise FileNotFoundError(f"'{root}' is not a PRISM project: it has no {SPEC_FILE}. "
                                    "Use File > New project to make one there.")
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path} is not valid JSON ({e}); fix or delete it.") from e
        check_spec(spec, path)
        base = default_spec(spec.get("name", root.name))
        for key, value in base.items():  # fill sections added since the project was made
            if isinstance(value, dict):
                spec[key] = {**value, **spec.get(key, {})}
            else:
                spec.setdefault(key, value)
        _check_catalog_version(root)
        from prism_gui.engine.data.recover import open_checked

        open_checked(root)  # a damaged catalog is named here, with the way to rebuild it
        from prism_gui.engine.scale.launch import merge_after  # light: the catalog loads only when rows wait

        try:  # rows a multi-process or cluster run left waiting join the catalog
            merge_after(str(root))
        except OSError:  # a read-only project still opens (its waiting rows merge where it is writable)
            pass
        return cls(root, spec)

    @classmethod
    def open_for_reading(cls, root: str | Path) -> Project:
        """The project at ``root`` for a reader (the report): also one made by the command line
        alone, which has a catalog but no ``project.json``.  Its teacher then comes from its latest
        generation run's spec, its class names from its images; nothing is written."""
        root = Path(root).expanduser()
        if (root / SPEC_FILE).exists() or not (root / "catalog.sqlite").is_file():
            return cls.open(root)
        from prism_gui.engine.data.catalog import Catalog

        with Catalog(root, create=False) as cat:
            runs = cat.runs("generate") or cat.runs()
            names = cat.class_names()
        teacher = (runs[-1]["spec"].get("teacher") if runs else None) or "digits"
        spec = default_spec(root.name)
        if teacher != "digits":
            source = teacher.get("source", "") if isinstance(teacher, dict) else str(teacher)
            checkpoint = teacher.get("checkpoint") if isinstance(teacher, dict) else None
            spec["teacher"] = {"kind": "checkpoint" if checkpoint else "timm", "source": source,
                               "checkpoint": checkpoint, "class_names": names, "test_accuracy": None,
                               "parameters": None}
            spec["evaluation"] = {**spec.get("evaluation", {}), "set": "", "mapping": None}
        elif names:
            spec["teacher"]["class_names"] = names
        return cls(root, spec)

    @classmethod
    def open_or_create(cls, root: str | Path) -> Project:
        root = Path(root).expanduser()
        return cls.open(root) if (root / SPEC_FILE).exists() else cls.create(root)

    def save(self) -> None:
        from prism_gui.engine.data.files import atomic_write_text

        atomic_write_text(self.spec_path, json.dumps(self.spec, indent=2))

    def section(self, key: str) -> dict:
        return self.spec.setdefault(key, {})

    def class_names(self) -> list[str]:
        return list(self.spec.get("teacher", {}).get("class_names") or [])

    def teacher_value(self) -> str | dict:
        """The project's teacher as a spec value (:class:`~prism_gui.engine.teachers.spec.TeacherSpec`)."""
        t = self.spec.get("teacher", {})
        kind, source, ck = t.get("kind", "digits"), t.get("source") or "digits", t.get("checkpoint")
        if kind == "checkpoint" and ck:
            return {"source": source, "checkpoint": ck}
        return "digits" if kind == "digits" else source

    def evaluation(self) -> tuple[str, str | None]:
        """(evaluation set, mapping file): ``"digits-test"``, a folder, or ``""`` for none."""
        e = self.spec.get("evaluation", {})
        return str(e.get("set") or ""), e.get("mapping") or None

    # ------------------------------------------------------------------ prompts and catalog
    def load_prompts(self):
        from prism_gui.engine.prompts import PromptSet

        # the app's own file: a prompt being edited may be empty; structure and classes are still checked
        return PromptSet.load(self.prompts_path, check_rows=False) if self.prompts_path.exists() else None

    def keep_damaged_prompts(self, error: Exception) -> str:
        """Copy an unreadable prompt file aside (``prompts.json.damaged-<time>``) before anything
        could replace it; returns what to tell the user."""
        import shutil
        import time

        copy = self.prompts_path.with_name(f"{self.prompts_path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            shutil.copy2(self.prompts_path, copy)
            kept = f"A copy is kept as '{copy.name}'."
        except OSError as e:
            kept = f"It could not be copied aside ({e.strerror or e}): copy it yourself before saving prompts."
        return (f"The project's prompt file '{self.prompts_path}' cannot be read: {error}. The project opened "
                f"without prompts. {kept} Make new prompts (Prompts > Expand) or import a good file.")

    def save_prompts(self, prompts) -> None:
        prompts.save(self.prompts_path)

    def catalog(self):
        from prism_gui.engine.data.catalog import Catalog

        return Catalog(self.root)

    def run_dir(self, run: str) -> Path:
        return RunPaths.of(self.root, run).dir
