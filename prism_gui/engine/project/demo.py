"""``prism demo``: the whole PRISM method on the Digits world, against its baselines.

Stages: the teacher on the real test split; the real-data KD upper bound; plain class-name
prompts without guidance (the DM-KD recipe); full PRISM (diversified, precision-scored prompts,
energy-guided sampling and, when ``oversample`` > 1, selection); each synthetic set's precision,
recall, density and coverage against the real test split in the teacher's feature space.
Every method gets the same student, training recipe and number of training images.

The stages are functions the benchmarks call too (``benchmarks/headline.py`` runs
:func:`run_demo` itself), so the headline in docs/BENCHMARKS.md is what a user gets.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from collections.abc import Generator, Iterator
from pathlib import Path

from prism_gui.engine.generation.energies import EnergySpec
from prism_gui.engine.generation.job import GenerateSpec, run_generation
from prism_gui.engine.generation.sampler import GuidanceSpec, SamplerSettings
from prism_gui.engine.jobs import CancelToken, Event
from prism_gui.engine.project.demo_settings import FULL, QUICK
from prism_gui.engine.training.distill import DistillSpec, run_distillation

_SAMPLER_KEYS = ("steps", "cfg", "scheduler")


@dataclasses.dataclass
class DemoSpec:
    """Defaults: :data:`prism_gui.engine.project.demo_settings.FULL` (``quick()``: ``QUICK``)."""

    project: str | None = None  # default: a fresh temporary folder
    images_per_class: int = FULL["images_per_class"]
    oversample: int = FULL["oversample"]  # PRISM generates this many times more and keeps the budget by ``select``
    prompts_per_class: int = FULL["prompts_per_class"]
    pilot_per_prompt: int = FULL["pilot_per_prompt"]  # precision-aware prompt scoring (0: off)
    keep_prompt_fraction: float = FULL["keep_prompt_fraction"]
    select: str = FULL["select"]  # a selection strategy (prism_gui.engine.analysis.selection.STRATEGIES)
    guidance_scale: float = FULL["guidance_scale"]
    guidance_window: tuple[float, float] = FULL["guidance_window"]
    guidance_mode: str = FULL["guidance_mode"]
    guidance_energy: dict = dataclasses.field(default_factory=lambda: {"class": 1.0})
    # per-class guidance from the pilot samples (sampler.adaptive_class_scale); needs pilot_per_prompt
    adaptive_guidance: bool = FULL["adaptive_guidance"]
    sampler: SamplerSettings = dataclasses.field(default_factory=lambda: SamplerSettings(
        **{k: FULL[k] for k in _SAMPLER_KEYS}))
    epochs: int = FULL["epochs"]
    student: str = FULL["student"]
    seed: int = FULL["seed"]
    batch_size: int = 100

    @classmethod
    def quick(cls, **kw) -> DemoSpec:
        base = {k: v for k, v in QUICK.items() if k not in _SAMPLER_KEYS}
        base["sampler"] = SamplerSettings(**{k: QUICK[k] for k in _SAMPLER_KEYS})
        return cls(**{**base, **kw})


@dataclasses.dataclass
class DemoContext:
    """What every stage of the demo measures with: the teacher, the prior, the prompt bank, the
    real test split and its teacher features."""

    teacher: object
    comp: object
    bank: object
    x_test: object
    y_test: object
    real_feats: object
    teacher_accuracy: float


def demo_context() -> DemoContext:
    import torch

    from prism_gui.engine.analysis.prdc import teacher_features
    from prism_gui.engine.generation.load import load_generator
    from prism_gui.engine.prompts import load_bank
    from prism_gui.engine.teachers.load import load_teacher
    from prism_gui.engine.training.evaluate import eval_dataset

    teacher = load_teacher("digits")
    test_set = eval_dataset("digits-test", teacher)
    x_test, y_test = test_set.images, test_set.labels
    with torch.no_grad():
        t_acc = float((teacher.logits(x_test).argmax(1).numpy() == y_test).mean())
    return DemoContext(teacher, load_generator("digits"), load_bank("digits"), x_test, y_test,
                       teacher_features(teacher, x_test), t_acc)


def seed_plan(spec: DemoSpec) -> dict[str, int]:
    """Every random draw of a demo run and its seed (recorded in its results)."""
    return {"plain generation": spec.seed, "prompt expansion and scoring": spec.seed,
            "PRISM generation": spec.seed + 1, "student initialisation and batches": spec.seed}


def teacher_feature_array(ctx: DemoContext, images):
    from prism_gui.engine.analysis.prdc import teacher_features

    return teacher_features(ctx.teacher, images)


def set_metrics(ctx: DemoContext, images, labels) -> dict:
    """Precision, recall, density and coverage (k=5) of a synthetic set against the test split."""
    from prism_gui.engine.analysis.prdc import prdc_per_class

    m = prdc_per_class(ctx.real_feats, ctx.y_test, teacher_feature_array(ctx, images), labels, k=5)
    return {**m["overall"], "per_class_mean": m.get("mean_per_class")}


def distill_events(spec: DemoSpec, ctx: DemoContext, images, *, real: bool = False,
                   cancel=None) -> Generator[Event, None, dict]:
    """The demo's one student recipe on ``images`` (or, ``real``, on the real train split),
    yielding the distillation's events; returns accuracy and agreement on the test split, and
    the student."""
    t0 = time.time()
    dspec = DistillSpec(student=spec.student, epochs=spec.epochs, seed=seed_plan(spec)["student initialisation "
                                                                                      "and batches"],
                        eval="digits-test", **({"data": "digits-train"} if real else {}))
    res = student = None
    for ev in run_distillation(dspec, teacher=ctx.teacher, images=None if real else images, cancel=cancel):
        yield ev
        res = ev.data.get("result", res)
        student = ev.data.get("student", student)
    return {"accuracy": res["test_accuracy"], "agreement": res["agreement"], "images": res["images"],
            "seconds": round(time.time() - t0, 1), "student": student}


def distill_arm(spec: DemoSpec, ctx: DemoContext, images, *, real: bool = False, cancel=None) -> dict:
    """:func:`distill_events` run to its end."""
    gen = distill_events(spec, ctx, images, real=real, cancel=cancel)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def plain_stage(spec: DemoSpec, ctx: DemoContext, project: Path, cancel=None) -> Iterator[Event]:
    """Plain class-name prompts without guidance (the DM-KD recipe): run ``plain``."""
    from prism_gui.engine.prompts import plain_prompts

    plain = plain_prompts(ctx.teacher.class_names, ctx.bank)
    gspec = GenerateSpec(project=str(project), run="plain", images_per_class=spec.images_per_class,
                         batch_size=spec.batch_size, seed=seed_plan(spec)["plain generation"], sampler=spec.sampler)
    for ev in run_generation(gspec, plain, teacher=ctx.teacher, components=ctx.comp, cancel=cancel):
        yield Event("generate: plain prompts", ev.step, ev.total, ev.message,
                    {k: v for k, v in ev.data.items() if k != "new_ids"})


def prism_prompts_stage(spec: DemoSpec, ctx: DemoContext, project: Path, cancel=None) -> Iterator[Event]:
    """DPE: expanded prompts, precision-scored by pilot samples; the last event carries
    ``data['prompts']`` (also saved as the project's prompts.json)."""
    from prism_gui.engine.prompts import expand, score_prompts

    seed = seed_plan(spec)["prompt expansion and scoring"]
    prompts = expand(ctx.teacher.class_names, ctx.bank, per_class=spec.prompts_per_class, seed=seed)
    if spec.pilot_per_prompt:
        for ev in score_prompts(prompts, ctx.comp, ctx.teacher, pilot_per_prompt=spec.pilot_per_prompt,
                                keep_fraction=spec.keep_prompt_fraction, sampler=spec.sampler, seed=seed,
                                cancel=cancel):
            prompts = ev.data.get("prompts", prompts)
            yield ev
    Path(project).mkdir(parents=True, exist_ok=True)
    prompts.save(Path(project) / "prompts.json")
    yield Event("prompts", 1, 1, f"{len(prompts.prompts)} prompts", {"prompts": prompts})


def prism_generate_stage(spec: DemoSpec, ctx: DemoContext, project: Path, prompts, *, per_class: int | None = None,
                         run: str = "prism", cancel=None) -> Iterator[Event]:
    """EDA: energy-guided generation of ``per_class`` (default: budget x oversample) candidates
    per class into ``run``."""
    class_scale = None
    if spec.adaptive_guidance:
        from prism_gui.engine.generation.sampler import adaptive_class_scale

        pilot = prompts.meta.get("pilot", {}).get("class_accuracy")
        if not pilot or any(a is None for a in pilot):
            raise ValueError("adaptive guidance reads the pilot samples of prompt scoring: set pilot_per_prompt >= 1")
        class_scale = adaptive_class_scale(pilot)
    guidance = GuidanceSpec(energy=EnergySpec(dict(spec.guidance_energy)), scale=spec.guidance_scale,
                            window=tuple(spec.guidance_window), mode=spec.guidance_mode, class_scale=class_scale)
    gspec = GenerateSpec(project=str(project), run=run,
                         images_per_class=per_class or spec.images_per_class * spec.oversample,
                         batch_size=spec.batch_size, seed=seed_plan(spec)["PRISM generation"], sampler=spec.sampler,
                         guidance=guidance)
    for ev in run_generation(gspec, prompts, teacher=ctx.teacher, components=ctx.comp, cancel=cancel):
        yield Event("generate: PRISM", ev.step, ev.total, ev.message,
                    {k: v for k, v in ev.data.items() if k != "new_ids"})


def select_stage(spec: DemoSpec, ctx: DemoContext, project: Path) -> None:
    """Oversample-and-select: keep ``images_per_class`` per class of run ``prism``."""
    from prism_gui.engine.analysis.selection import select_in_catalog
    from prism_gui.engine.data.catalog import Catalog

    with Catalog(project) as cat:
        select_in_catalog(cat, spec.images_per_class, strategy=spec.select, run="prism", teacher=ctx.teacher,
                          seed=spec.seed)


def run_demo(spec: DemoSpec, cancel: CancelToken | None = None, ctx: DemoContext | None = None) -> Iterator[Event]:
    """Yields events of every stage; the last one carries ``data['results']`` and
    ``data['students']`` (the three trained students, by method)."""
    from prism_gui.engine.data.catalog import Catalog

    cancel = cancel or CancelToken()
    t_all = time.time()
    project = Path(spec.project or tempfile.mkdtemp(prefix="prism-demo-"))
    try:  # before minutes of work: a folder that cannot be made is said at once
        project.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(f"cannot create the demo's project folder '{project}': {e.strerror or e}. Give --project a "
                      "folder you can write to") from e
    ctx = ctx or demo_context()
    results: dict = {"teacher_accuracy": ctx.teacher_accuracy, "images_per_class": spec.images_per_class,
                     "methods": {}, "project": str(project), "spec": _spec_dict(spec), "seeds": seed_plan(spec)}
    students: dict = {}
    yield Event("teacher", 1, 1, f"teacher accuracy {100 * ctx.teacher_accuracy:.2f}%")

    def distill_stage(name: str, images=None, real: bool = False):
        gen = distill_events(spec, ctx, images, real=real, cancel=cancel)
        while True:
            try:
                ev = next(gen)
            except StopIteration as stop:
                arm = stop.value
                break
            yield Event(f"distill: {name}", ev.step, ev.total, ev.message,
                        {k: v for k, v in ev.data.items() if k != "student"})
        students[name] = arm["student"]
        results["methods"].setdefault(name, {}).update(
            {"student_accuracy": arm["accuracy"], "agreement": arm["agreement"],
             "distill_seconds": arm["seconds"], "training_images": arm["images"]})

    def metrics_for(run: str, name: str):
        with Catalog(project) as cat:
            x, y, _ = cat.load_images(run=run, statuses=["unreviewed", "keep"])
        results["methods"][name]["metrics"] = set_metrics(ctx, x, y)
        return x

    # 1. upper bound: KD on the real train split
    yield from distill_stage("real-data KD (upper bound)", real=True)

    # 2. plain class-name prompts, no guidance
    t0 = time.time()
    yield from plain_stage(spec, ctx, project, cancel)
    results["methods"]["plain prompts"] = {"generate_seconds": round(time.time() - t0, 1)}
    x_plain = metrics_for("plain", "plain prompts")
    yield from distill_stage("plain prompts", x_plain)

    # 3. PRISM: DPE (+ precision-aware scoring) + EDA guidance + oversample-and-select
    t0 = time.time()
    prompts = None
    for ev in prism_prompts_stage(spec, ctx, project, cancel):
        prompts = ev.data.get("prompts", prompts)
        if ev.stage != "prompts":
            yield ev
    yield from prism_generate_stage(spec, ctx, project, prompts, cancel=cancel)
    if spec.oversample > 1:  # oversample-and-select
        select_stage(spec, ctx, project)
    n_generated = spec.images_per_class * spec.oversample * ctx.teacher.num_classes
    results["methods"]["PRISM"] = {"generate_seconds": round(time.time() - t0, 1), "generated_images": n_generated}
    x_prism = metrics_for("prism", "PRISM")
    yield from distill_stage("PRISM", x_prism)

    acc = {k: v["student_accuracy"] for k, v in results["methods"].items()}
    gap = acc["real-data KD (upper bound)"] - acc["plain prompts"]
    results["gap_share"] = (acc["PRISM"] - acc["plain prompts"]) / gap if gap else None
    results["wall_seconds"] = round(time.time() - t_all, 1)
    results["table"] = format_table(results)
    (project / "demo_results.json").write_text(json.dumps(results, indent=2))
    yield Event("done", 1, 1, "demo finished", {"results": results, "students": students})


def _spec_dict(spec: DemoSpec) -> dict:
    d = dataclasses.asdict(spec)
    d["guidance_window"] = list(spec.guidance_window)
    return d


def format_table(results: dict) -> str:
    lines = [f"{'method':<28} {'student acc':>11} {'agreement':>9} {'precision':>9} {'recall':>7} "
             f"{'density':>7} {'coverage':>8}",
             f"{'teacher (digits_cnn)':<28} {100 * results['teacher_accuracy']:>10.2f}%"]
    for name, m in results["methods"].items():
        met = m.get("metrics", {})

        def f(k, met=met):
            return f"{met[k]:.3f}" if k in met else "-"

        lines.append(f"{name:<28} {100 * m['student_accuracy']:>10.2f}% {100 * m['agreement']:>8.1f}% "
                     f"{f('precision'):>9} {f('recall'):>7} {f('density'):>7} {f('coverage'):>8}")
    lines.append(f"wall time {results['wall_seconds']:.0f} s, {results['images_per_class']} training images per class")
    if results.get("gap_share") is not None:
        lines.append(f"share of the gap between plain prompts and real-data KD that PRISM closed: "
                     f"{results['gap_share']:.2f}")
    return "\n".join(lines)
