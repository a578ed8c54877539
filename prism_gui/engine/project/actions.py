"""The jobs the desktop app runs in its worker, and the models they share.

Job generators (``factory(cancel) -> Iterator[Event]``): loading a teacher, expanding and
scoring prompts, precision/recall against the Digits test split.  :data:`MODELS` caches loaded
teachers and generators for one app.  Only light modules are imported at module level.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

from prism_gui.engine.jobs import CancelToken, Event


# ---------------------------------------------------------------------------- model cache
class ModelCache:
    """Loaded teachers and generators, shared by the jobs of one app (one job runs at a time)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple, object] = {}

    def get(self, key: tuple, load):
        with self._lock:
            if key not in self._items:
                self._items[key] = load()
            return self._items[key]

    def put(self, key: tuple, value) -> None:
        with self._lock:
            self._items[key] = value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


MODELS = ModelCache()


def generator(source: str = "digits"):
    from prism_gui.engine.generation.load import load_generator

    return MODELS.get(("generator", str(source)), lambda: load_generator(source))


# ---------------------------------------------------------------------------- teacher
def teacher_info(teacher) -> dict:
    """What the Teacher panel shows about a loaded teacher."""
    return {"source": teacher.source, "architecture": teacher.architecture, "parameters": teacher.num_parameters,
            "input_size": list(teacher.input_size), "mean": [round(float(m), 4) for m in teacher.mean],
            "std": [round(float(s), 4) for s in teacher.std], "num_classes": teacher.num_classes,
            "class_names": list(teacher.class_names), "has_batchnorm": teacher.has_batchnorm,
            "test_accuracy": teacher.card.get("test_split", {}).get("accuracy") if teacher.card else None,
            "per_class_accuracy": teacher.card.get("test_split", {}).get("per_class_accuracy", {}) if teacher.card
            else {}, "training": teacher.card.get("training", {}) if teacher.card else {},
            "class_descriptions": list(teacher.class_descriptions or [])}


def load_teacher_job(kind: str, source: str = "", checkpoint: str | None = None,
                     class_names: list[str] | None = None, cancel: CancelToken | None = None) -> Iterator[Event]:
    """Load a teacher; ``kind`` is ``digits``, ``timm``, ``checkpoint`` (timm architecture
    ``source`` + state-dict file ``checkpoint``) or ``torchscript`` (file ``source``).
    The last event carries ``data['teacher']`` and ``data['info']``."""
    yield Event("teacher", 0, 2, "importing the engine")
    from prism_gui.engine.teachers.load import TeacherLoadError, load_teacher

    names = class_names or None
    if kind == "digits":
        src, ck = "digits", None
    elif kind == "timm":
        if not source.strip():
            raise TeacherLoadError("Give a timm model name, e.g. 'resnet18.a1_in1k'.")
        src, ck = source.strip(), None
    elif kind == "checkpoint":
        if not source.strip():
            raise TeacherLoadError("A checkpoint needs its timm architecture (e.g. 'resnet18'): fill in the "
                                   "architecture field.")
        if not checkpoint:
            raise TeacherLoadError("Choose a checkpoint file (.safetensors, .pth or .pt), or drop one here.")
        src, ck = source.strip(), checkpoint
    elif kind == "torchscript":
        if not source.strip():
            raise TeacherLoadError("Choose a TorchScript file (.torchscript, .ts or .pt), or drop one here.")
        src, ck = source.strip(), None
    else:
        raise TeacherLoadError(f"unknown teacher kind {kind!r}")
    yield Event("teacher", 1, 2, f"loading {src}")
    teacher = load_teacher(src, checkpoint=ck)
    if names and list(names) != list(teacher.class_names):  # the user's own names replace the teacher's
        if len(names) != teacher.num_classes:
            raise TeacherLoadError(f"The teacher has {teacher.num_classes} outputs but {len(names)} class names "
                                   f"were given: give exactly {teacher.num_classes} names, one per line, or clear "
                                   "the list to use the teacher's own.")
        teacher.class_names, teacher.class_descriptions = list(names), None
    MODELS.put(("teacher", kind, src, str(ck)), teacher)
    yield Event("teacher", 2, 2, f"loaded {teacher.architecture or src}",
                {"teacher": teacher, "info": teacher_info(teacher)})


# ---------------------------------------------------------------------------- prompts
def expand_prompts_job(class_names: list[str], bank: str = "digits", per_class: int = 6, seed: int = 0,
                       axes: list[str] | None = None, disambiguation: str = "name",
                       descriptions: list[str] | None = None, include_plain: bool = True, plain: bool = False,
                       cancel: CancelToken | None = None) -> Iterator[Event]:
    """DPE (or plain class-name prompts); the last event carries ``data['prompts']``."""
    from prism_gui.engine.prompts import class_phrases, expand, load_bank, plain_prompts

    b = load_bank(bank)
    phrases = class_phrases(class_names, descriptions, mode=disambiguation)
    yield Event("prompts", 0, 1, "expanding")
    if plain:
        ps = plain_prompts(class_names, b, phrases)
    else:
        ps = expand(class_names, b, per_class=per_class, seed=seed, phrases=phrases, axes=axes,
                    include_plain=include_plain)
    yield Event("prompts", 1, 1, f"{len(ps.prompts)} prompts", {"prompts": ps})


# ---------------------------------------------------------------------------- precision / recall
def prdc_job(project_root: str | Path, runs: list[str] | None = None, teacher=None, k: int = 5,
             statuses=("unreviewed", "keep"), cancel: CancelToken | None = None) -> Iterator[Event]:
    """Precision, recall, density and coverage of the project's images (per run) against the
    Digits test split, in the teacher's features; saved to ``runs/<run>/prdc.json``."""
    from prism_gui.engine.analysis.prdc import prdc_per_class, teacher_features
    from prism_gui.engine.data.catalog import Catalog, atomic_write_text
    from prism_gui.engine.teachers.load import load_teacher
    from prism_gui.engine.training.distill import load_eval_set

    cancel = cancel or CancelToken()
    teacher = teacher or load_teacher("digits")
    root = Path(project_root)
    with Catalog(root) as cat:
        all_runs = [r["id"] for r in cat.runs("generate")]
    runs = runs or all_runs
    if not runs:
        raise ValueError("no generated images yet: run a generation first")
    yield Event("metrics", 0, len(runs) + 1, "features of the real test split")
    x_test, y_test = load_eval_set("digits-test", teacher)
    real = teacher_features(teacher, x_test)
    out = {}
    for i, run in enumerate(runs):
        cancel.raise_if_cancelled()
        with Catalog(root) as cat:
            x, y, _ = cat.load_images(run=run, statuses=list(statuses))
        if len(x) <= k:
            out[run] = {"error": f"only {len(x)} images"}
        else:
            m = prdc_per_class(real, y_test, teacher_features(teacher, x), y, k=k, class_names=teacher.class_names)
            out[run] = {**m["overall"], "per_class": m["per_class"], "images": len(x)}
            atomic_write_text(root / "runs" / run / "prdc.json", json.dumps(out[run], indent=2))
        yield Event("metrics", i + 2, len(runs) + 1, f"{run}: " + ", ".join(
            f"{key} {out[run][key]:.2f}" for key in ("precision", "recall", "density", "coverage") if key in out[run]),
            {"run": run, "prdc": out[run]})
    yield Event("metrics", len(runs) + 1, len(runs) + 1, "done", {"results": out})



# ---------------------------------------------------------------------------- precision-aware prompts
def score_prompts_job(prompts, teacher=None, generator_source: str = "digits", pilot_per_prompt: int = 1,
                      keep_fraction: float = 0.7, steps: int = 15, cfg: float = 3.0, scheduler: str = "ddim",
                      batch: int = 100, cancel: CancelToken | None = None) -> Iterator[Event]:
    """Precision-aware diversity, as ``prism demo`` does it (:func:`prompts.score_prompts`) with the
    project's generator.  The last event carries ``data['prompts']`` (a scored copy)."""
    from prism_gui.engine.generation.sampler import SamplerSettings
    from prism_gui.engine.prompts import score_prompts
    from prism_gui.engine.teachers.load import load_teacher

    yield from score_prompts(prompts, generator(generator_source), teacher or load_teacher("digits"),
                             pilot_per_prompt=pilot_per_prompt, keep_fraction=keep_fraction,
                             sampler=SamplerSettings(steps=steps, cfg=cfg, scheduler=scheduler),
                             batch_size=batch, cancel=cancel)
