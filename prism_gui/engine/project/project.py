"""A PRISM Studio project: a folder with a spec, a prompt set and the engine's catalog.

Qt-free helpers the desktop app drives (and a script could drive too):

- :class:`Project`: ``project.json`` (teacher, generator, generation and distillation
  settings), ``prompts.json`` and ``catalog.sqlite`` in one folder;
- the app's jobs and model cache are in :mod:`prism_gui.engine.project.actions`, the
  stakeholder report in :mod:`prism_gui.engine.project.report`.

Only light modules are imported at module level: torch and friends load inside the jobs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

from prism_gui.engine.project.demo_settings import demo_settings
from prism_gui.resources import resource_path

SPEC_FILE = "project.json"
PROMPTS_FILE = "prompts.json"
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
        "distill": {"student": "digits_student", "epochs": 15, "batch_size": 64, "lr": 5e-3, "temperature": 4.0,
                    "alpha_ce": 0.0, "augment": True, "seed": 0},
        # the real held-out set: student accuracy in Distill, the precision/recall reference in Curate.
        # "digits-test", a labelled image folder (WordNet-id or class-name subfolders), or "" for none
        "evaluation": {"set": "digits-test", "mapping": None},
    }


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
        root.mkdir(parents=True, exist_ok=True)
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
            spec = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON ({e}); fix or delete it.") from e
        base = default_spec(spec.get("name", root.name))
        for key, value in base.items():  # fill sections added since the project was made
            if isinstance(value, dict):
                spec[key] = {**value, **spec.get(key, {})}
            else:
                spec.setdefault(key, value)
        from prism_gui.engine.data.recover import open_checked

        open_checked(root)  # a damaged catalog is named here, with the way to rebuild it
        from prism_gui.engine.scale.launch import merge_after  # light: the catalog loads only when rows wait

        try:  # rows a multi-process or cluster run left waiting join the catalog
            merge_after(str(root))
        except OSError:  # a read-only project still opens (its waiting rows merge where it is writable)
            pass
        return cls(root, spec)

    @classmethod
    def open_or_create(cls, root: str | Path) -> Project:
        root = Path(root).expanduser()
        return cls.open(root) if (root / SPEC_FILE).exists() else cls.create(root)

    def save(self) -> None:
        from prism_gui.engine.data.catalog import atomic_write_text

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

        return PromptSet.load(self.prompts_path) if self.prompts_path.exists() else None

    def save_prompts(self, prompts) -> None:
        prompts.save(self.prompts_path)

    def catalog(self):
        from prism_gui.engine.data.catalog import Catalog

        return Catalog(self.root)

    def run_dir(self, run: str) -> Path:
        return self.root / "runs" / run
