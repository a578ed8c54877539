"""The jobs the desktop app runs in its worker, and the models they share.

Job generators (``factory(cancel) -> Iterator[Event]``): loading a teacher, expanding and
scoring prompts, precision/recall against the Digits test split, and the Generate and Distill
panels' settings made into engine specs and run (``generation_job``, ``distill_job``,
``export_job``): the panels only collect values and show events.  :data:`MODELS` caches loaded
teachers and generators for one app.  Only light modules are imported at module level.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

from prism_gui.engine.data.layout import PROMPTS_FILE, RunPaths
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
            "class_descriptions": list(teacher.class_descriptions or []),
            "class_ids": list(teacher.class_ids) if getattr(teacher, "class_ids", None) else None,
            "crop_pct": getattr(teacher, "crop_pct", 1.0), "interpolation": getattr(teacher, "interpolation", "")}


def load_teacher_job(kind: str, source: str = "", checkpoint: str | None = None,
                     class_names: list[str] | None = None, cancel: CancelToken | None = None) -> Iterator[Event]:
    """Load a teacher; ``kind`` is ``digits``, ``timm``, ``checkpoint`` (timm architecture
    ``source`` + state-dict file ``checkpoint``) or ``torchscript`` (file ``source``).
    The last event carries ``data['teacher']`` and ``data['info']``."""
    yield Event("teacher", 0, 2, "importing the engine")
    from prism_gui.engine.teachers.errors import TeacherLoadError
    from prism_gui.engine.teachers.load import load_teacher

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
def check_image_folder_job(root: str | Path, class_names: list[str], class_ids: list[str] | None = None,
                           mapping: str | None = None, cancel: CancelToken | None = None) -> Iterator[Event]:
    """Check a labelled image folder (an evaluation or reference set) before it is used: every
    subfolder a class, every file with an image suffix an image (see
    :func:`~prism_gui.engine.data.folders.folder_items`).  The last event carries
    ``data['folder']``, ``data['images']`` and ``data['classes']``."""
    yield Event("folder", 0, 1, f"checking {root}")
    from prism_gui.engine.data.folders import folder_items

    items = folder_items(root, list(class_names), class_ids, mapping)
    classes = len({k for _, k in items})
    yield Event("folder", 1, 1, f"{len(items)} images in {classes} classes",
                {"folder": str(root), "images": len(items), "classes": classes})


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
             statuses=("unreviewed", "keep"), reference: str = "digits-test", mapping: str | None = None,
             cancel: CancelToken | None = None) -> Iterator[Event]:
    """Precision, recall, density and coverage of the project's images (per run) against its
    reference set, in the teacher's features; saved to ``runs/<run>/prdc.json``."""
    from prism_gui.engine.analysis.prdc import catalog_prdc_job
    from prism_gui.engine.teachers.load import load_teacher

    teacher = teacher or load_teacher("digits")
    yield from catalog_prdc_job(teacher, reference, project_root, runs, statuses=statuses, k=k, mapping=mapping,
                            cancel=cancel)


def select_job(project_root: str | Path, per_class: int, strategy: str = "lowest", run: str | None = None,
               teacher=None, seed: int = 0, cancel: CancelToken | None = None) -> Iterator[Event]:
    """Oversample-and-select (:mod:`prism_gui.engine.analysis.selection`) as one undoable curation
    action; the last event carries ``data['action']`` and ``data['rejected']``."""
    from prism_gui.engine.analysis.selection import DESCRIPTIONS, NEEDS_FEATURES, select_in_catalog
    from prism_gui.engine.data.catalog import Catalog

    yield Event("select", 0, 1, f"keep {per_class} per class: {DESCRIPTIONS.get(strategy, strategy)}"
                + (" (teacher features)" if strategy in NEEDS_FEATURES else ""))
    with Catalog(project_root, create=False) as cat:
        before = cat.count(run=run, statuses=["reject"])
        if cancel is not None:
            cancel.raise_if_cancelled()
        action = select_in_catalog(cat, per_class, strategy=strategy, run=run, teacher=teacher, seed=seed)
        after = cat.count(run=run, statuses=["reject"])
    yield Event("select", 1, 1, f"kept {per_class} per class, rejected {after - before}",
                {"action": action, "rejected": after - before, "strategy": strategy, "per_class": per_class})


# ---------------------------------------------------------------------------- precision-aware prompts
def score_prompts_job(prompts, teacher=None, spec=None, cancel: CancelToken | None = None) -> Iterator[Event]:
    """Precision-aware diversity, as ``prism demo`` does it (:func:`prompts.score_prompts`) with the
    settings of ``spec`` (a :class:`~prism_gui.engine.prompts.ScoreSpec`).  The last event carries
    ``data['prompts']`` (a scored copy)."""
    from prism_gui.engine.prompts import ScoreSpec, score_prompts
    from prism_gui.engine.teachers.load import load_teacher

    spec = spec or ScoreSpec()
    yield from score_prompts(prompts, generator(spec.generator), teacher or load_teacher("digits"),
                             pilot_per_prompt=spec.pilot_per_prompt, keep_fraction=spec.keep_fraction,
                             sampler=spec.sampler(), batch_size=spec.batch, seed=spec.seed, cancel=cancel)


# ---------------------------------------------------------------------------- generate more here
def fill_prompts(regions: list[dict], class_names: list[str], fallback=None):
    """The prompt set of "generate more here": each chosen region's proposed prompts, weighted by
    how often they made its nearest images.  A region that proposes none (its class has no image
    the teacher agrees with) takes its class's prompts from ``fallback`` (a PromptSet: the base
    run's or the project's)."""
    from prism_gui.engine.prompts import Prompt, PromptSet

    prompts: dict[tuple[int, str], float] = {}
    bare = set()
    for g in regions:
        for p in g.get("prompts", []):
            key = (int(g["class"]), p["prompt"])
            prompts[key] = prompts.get(key, 0.0) + float(p["count"])
        if not g.get("prompts"):
            bare.add(int(g["class"]))
    for c in sorted(bare - {c for c, _ in prompts}):
        own = [p for p in (fallback.for_class(c) if fallback is not None else []) if p.weight > 0]
        if not own:
            raise ValueError(f"class '{class_names[c]}' has no image the teacher agrees with to take prompts from, "
                             "and no prompt in the project's prompt set: add prompts for it in the Prompts tab")
        for p in own:
            prompts[(c, p.text)] = prompts.get((c, p.text), 0.0) + float(p.weight)
    return PromptSet(list(class_names), [Prompt(c, text, weight=w, source="holes") for (c, text), w in prompts.items()],
                     meta={"source": "holes", "regions": [{"class": g["class"], "size": g["size"]} for g in regions]})


def _fallback_prompts(project: Path, base_run: str, class_names: list[str]):
    """The base run's saved prompts, else the project's prompts.json, else None."""
    from prism_gui.engine.prompts import PromptSet

    for path in (RunPaths.of(project, base_run).prompts, project / PROMPTS_FILE):
        if path.is_file():
            try:
                ps = PromptSet.load(path)
            except (ValueError, OSError):
                continue
            if ps.class_names == class_names:
                return ps
    return None


def next_run_name(cat, prefix: str = "fill") -> str:
    names = {r["id"] for r in cat.runs()}
    n = 1
    while f"{prefix}-{n}" in names:
        n += 1
    return f"{prefix}-{n}"


def fill_holes_job(project, teacher, regions: list[dict], *, per_class: int = 20, run: str | None = None,
                   base_run: str | None = None, components=None, cancel: CancelToken | None = None
                   ) -> Iterator[Event]:
    """Generate ``per_class`` more images for each class of ``regions`` with their proposed
    prompts and ``base_run``'s settings (default: the project's latest generation run), into a
    new run.  Yields the generation's events."""
    import dataclasses

    from prism_gui.engine.data.catalog import Catalog
    from prism_gui.engine.generation.job import GenerateSpec, run_generation

    if not regions:
        raise ValueError("choose at least one uncovered region to fill")
    if per_class < 1:
        raise ValueError(f"images per class must be at least 1, not {per_class}")
    with Catalog(project, create=False) as cat:
        gen_runs = cat.runs("generate")
        if not gen_runs:
            raise ValueError(f"'{project}' has no generation run to take settings from: generate first")
        base = next((r for r in gen_runs if r["id"] == base_run), None) if base_run else gen_runs[-1]
        if base is None:
            raise ValueError(f"'{project}' has no generation run '{base_run}'; its runs are "
                             f"{[r['id'] for r in gen_runs]}")
        if run is not None and run in {r["id"] for r in cat.runs()}:
            raise ValueError(f"'{project}' already has a run '{run}': leave the name out for a new 'fill-N'")
        run = run or next_run_name(cat)
        seeds = [int(r["spec"].get("seed", 0)) for r in gen_runs]
    spec = {**base["spec"], "project": str(project), "run": run, "images_per_class": per_class,
            "seed": max(seeds) + 1, "classes": sorted({int(g["class"]) for g in regions})}
    gspec = GenerateSpec(**{k: v for k, v in spec.items() if k in {f.name for f in dataclasses.fields(GenerateSpec)}})
    names = list(teacher.class_names)
    ps = fill_prompts(regions, names, _fallback_prompts(Path(project), base["id"], names))
    ps.save(RunPaths.of(project, run).prompts)
    yield from run_generation(gspec, ps, teacher=teacher, components=components, cancel=cancel)
    yield Event("fill", 1, 1, f"run '{run}': {per_class} more images for each of {len(gspec.classes)} classes",
                {"run": run, "classes": gspec.classes})


# ---------------------------------------------------------------------------- the map view
def project_teacher(project_root: str | Path, teacher=None):
    """``teacher``, or the project's own (from its project.json, cached in :data:`MODELS`)."""
    if teacher is not None:
        return teacher
    from prism_gui.engine.project.project import SPEC_FILE, Project
    from prism_gui.engine.teachers.spec import TeacherSpec

    if not (Path(project_root) / SPEC_FILE).exists():
        raise ValueError(f"'{project_root}' has no {SPEC_FILE} naming its teacher: load the teacher in the Teacher "
                         "tab first")
    tspec = TeacherSpec.from_value(Project.open(project_root).teacher_value(), SPEC_FILE)
    return MODELS.get(tspec.key, tspec.load)


def map_view_job(project_root: str | Path, teacher=None, *, method: str = "auto", reference: str = "",
                 mapping: str | None = None, runs: list[str] | None = None, seed: int = 0, refit: bool = False,
                 cancel: CancelToken | None = None) -> Iterator[Event]:
    """The Map tab's job: :func:`~prism_gui.engine.analysis.embedding.map_job` plus what the view
    colours by (energy, confidence, status, agreement per point).  The last event carries
    ``data['map']`` and ``data['columns']`` (arrays aligned with the map's points; NaN / "" for
    reference points)."""
    import numpy as np

    from prism_gui.engine.analysis.embedding import map_job
    from prism_gui.engine.data.catalog import Catalog

    teacher = project_teacher(project_root, teacher)
    last = None
    for ev in map_job(project_root, teacher, method=method, reference=reference or None, mapping=mapping, runs=runs,
                      seed=seed, refit=refit, cancel=cancel):
        last = ev
        if "map" not in ev.data:
            yield ev
    pm = last.data["map"]
    with Catalog(project_root, create=False) as cat:
        rows = {r[0]: r[1:] for r in cat.query(columns="id, energy, confidence, status, correct")}
    empty = (None, None, "", None)
    cols = [rows.get(int(i), empty) if i >= 0 else empty for i in pm.ids]
    columns = {"energy": np.array([np.nan if c[0] is None else c[0] for c in cols], float),
               "confidence": np.array([np.nan if c[1] is None else c[1] for c in cols], float),
               "status": np.array([c[2] for c in cols], dtype=object),
               "correct": np.array([np.nan if c[3] is None else c[3] for c in cols], float)}
    yield Event(last.stage, last.step, last.total, last.message, {"map": pm, "columns": columns})


def generate_spec(settings: dict):
    """The engine's GenerateSpec of the panel's settings (plus project, run and teacher): what
    Start runs and what "Export for a cluster…" writes."""
    from prism_gui.engine.generation.energies import EnergySpec
    from prism_gui.engine.generation.job import GenerateSpec
    from prism_gui.engine.generation.sampler import GuidanceSpec, SamplerSettings

    s = settings
    guidance = GuidanceSpec(energy=EnergySpec(s["energy_weights"]), scale=s["guidance_scale"],
                            window=tuple(s["guidance_window"]), mode=s["guidance_mode"],
                            micro_batch=int(s.get("guidance_micro_batch", 0)),
                            checkpoint_decoder=bool(s.get("checkpoint_decoder", False)),
                            decoder=str(s.get("guidance_decoder", "")))
    return GenerateSpec(project=s["project"], run=s["run"], generator=s["generator"], teacher=s["teacher"],
                        images_per_class=s["images_per_class"], batch_size=s["batch_size"], seed=s["seed"],
                        sampler=SamplerSettings(steps=s["steps"], cfg=s["cfg"], scheduler=s["scheduler"],
                                                resolution=int(s.get("resolution", 0))),
                        auto_batch=bool(s.get("auto_batch", True)), offload=bool(s.get("offload", False)),
                        guidance=guidance, device=s.get("device", "auto"), precision=s.get("precision", "fp32"))


def plain_class_prompts(settings: dict, teacher=None, class_names=None):
    """One class-name prompt per class: of ``teacher``'s classes, else ``class_names``, else of
    the settings' teacher (loaded)."""
    from prism_gui.engine.prompts import load_bank, plain_prompts
    from prism_gui.engine.teachers.spec import TeacherSpec

    if teacher is not None or not class_names:
        teacher = teacher or TeacherSpec.from_value(settings["teacher"]).load()
        class_names = teacher.class_names
    return plain_prompts(list(class_names), load_bank(settings.get("bank") or "digits"))


def generation_job(settings: dict, prompts, teacher, plain: bool, cancel) -> Iterator:
    """Runs in the worker thread: builds the engine spec and drives ``run_generation``, or
    ``launch_generation`` on ``settings["processes"]`` processes (the same events either way)."""
    from prism_gui.engine.generation.job import run_generation
    from prism_gui.engine.teachers.spec import TeacherSpec

    s = settings
    spec = generate_spec(s)
    processes = int(s.get("processes", 1))
    if processes > 1:  # the ranks load the generator and the teacher themselves
        from prism_gui.engine.scale.launch import launch_generation

        if plain or prompts is None:
            prompts = plain_class_prompts(s, teacher, s.get("class_names"))
        yield from launch_generation(spec, prompts, processes, cancel=cancel)
        return
    teacher = teacher or TeacherSpec.from_value(s["teacher"]).load()
    if plain or prompts is None:
        prompts = plain_class_prompts(s, teacher)
    comp = generator(s["generator"])
    yield from run_generation(spec, prompts, teacher=teacher, components=comp, cancel=cancel)


def distill_spec(settings: dict):
    """The engine's DistillSpec of the settings (keys it does not know, such as ``processes``,
    are the app's)."""
    import dataclasses

    from prism_gui.engine.training.distill import DistillSpec

    known = {f.name for f in dataclasses.fields(DistillSpec)}
    return DistillSpec(**{k: v for k, v in settings.items() if k in known})


def distill_job(settings: dict, teacher, cancel) -> Iterator:
    """Runs in the worker thread: ``run_distillation``, or ``launch_distillation`` on
    ``settings["processes"]`` processes (the same events; the last one carries the student)."""
    from prism_gui.engine.training.distill import run_distillation

    spec = distill_spec(settings)
    processes = int(settings.get("processes", 1))
    if processes > 1:
        from prism_gui.engine.scale.launch import launch_distillation

        if not spec.out_dir:  # the student comes back through a folder
            spec.out_dir = str(RunPaths.of(spec.project or ".", spec.run).student)
        yield from launch_distillation(spec, processes, teacher=teacher, cancel=cancel)
        return
    yield from run_distillation(spec, teacher=teacher, cancel=cancel)


def export_job(student, teacher, out: str, onnx: bool, cancel, run_dir: str | None = None) -> Iterator:
    """Export ``student`` into ``out``; the model card of its run (``run_dir``) goes with it."""
    from prism_gui.engine.data.layout import student_folder
    from prism_gui.engine.jobs import Event
    from prism_gui.engine.teachers.load import load_teacher
    from prism_gui.engine.training.export import export_student

    teacher = teacher or load_teacher("digits")
    yield Event("export", 0, 1, "exporting")
    if student is None:  # a run of an earlier session: its student from its folder
        from prism_gui.engine.training.export import load_student

        student = load_student(run_dir, teacher)
    made = student_folder(run_dir) if run_dir else None
    card = (made / "README.md").read_text(encoding="utf-8") if made and (made / "README.md").is_file() else None
    paths = export_student(student, teacher, Path(out), onnx=onnx, card=card)
    yield Event("export", 1, 1, "exported", {"paths": [str(p) for p in paths]})
