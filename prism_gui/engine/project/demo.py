"""``prism demo``: the whole PRISM method on the Digits world, against its baselines.

Stages: the teacher on the real test split; the real-data KD upper bound; plain class-name
prompts without guidance (the DM-KD recipe); full PRISM (diversified, precision-scored prompts,
energy-guided sampling, oversample-and-select by energy); each synthetic set's precision,
recall, density and coverage against the real test split in the teacher's feature space.
Every method gets the same student, training recipe and number of training images.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from collections.abc import Iterator
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
    oversample: int = FULL["oversample"]  # PRISM generates this many times more and keeps the lowest-energy ones
    prompts_per_class: int = FULL["prompts_per_class"]
    pilot_per_prompt: int = FULL["pilot_per_prompt"]  # precision-aware prompt scoring (0: off)
    keep_prompt_fraction: float = FULL["keep_prompt_fraction"]
    select_energy: str = "energy_class"
    guidance_scale: float = FULL["guidance_scale"]
    guidance_window: tuple[float, float] = FULL["guidance_window"]
    guidance_mode: str = FULL["guidance_mode"]
    guidance_energy: dict = dataclasses.field(default_factory=lambda: {"class": 1.0})
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


def run_demo(spec: DemoSpec, cancel: CancelToken | None = None) -> Iterator[Event]:
    """Yields events of every stage; the last one carries ``data['results']``."""
    import torch

    from prism_gui.engine.analysis.prdc import prdc_per_class, teacher_features
    from prism_gui.engine.data.catalog import Catalog
    from prism_gui.engine.generation.load import load_generator
    from prism_gui.engine.prompts import expand, load_bank, plain_prompts, score_prompts
    from prism_gui.engine.teachers.load import load_teacher
    from prism_gui.engine.training.evaluate import eval_dataset

    cancel = cancel or CancelToken()
    t_all = time.time()
    project = Path(spec.project or tempfile.mkdtemp(prefix="prism-demo-"))
    try:  # before minutes of work: a folder that cannot be made is said at once
        project.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(f"cannot create the demo's project folder '{project}': {e.strerror or e}. Give --project a "
                      "folder you can write to") from e
    teacher = load_teacher("digits")
    comp = load_generator("digits")
    bank = load_bank("digits")
    test_set = eval_dataset("digits-test", teacher)
    x_test, y_test = test_set.images, test_set.labels
    with torch.no_grad():
        t_acc = float((teacher.logits(x_test).argmax(1).numpy() == y_test).mean())
    real_feats = teacher_features(teacher, x_test)
    results: dict = {"teacher_accuracy": t_acc, "images_per_class": spec.images_per_class, "methods": {},
                     "project": str(project), "spec": _spec_dict(spec)}
    yield Event("teacher", 1, 1, f"teacher accuracy {100 * t_acc:.2f}%")
    distill_kw = dict(student=spec.student, epochs=spec.epochs, seed=spec.seed, eval="digits-test")

    def distill_stage(name: str, dspec: DistillSpec, images=None):
        t0 = time.time()
        res = None
        for ev in run_distillation(dspec, teacher=teacher, images=images, cancel=cancel):
            yield Event(f"distill: {name}", ev.step, ev.total, ev.message, {k: v for k, v in ev.data.items()
                                                                              if k != "student"})
            res = ev.data.get("result", res)
        results["methods"].setdefault(name, {}).update(
            {"student_accuracy": res["test_accuracy"], "agreement": res["agreement"],
             "distill_seconds": round(time.time() - t0, 1), "training_images": res["images"]})

    # 1. upper bound: KD on the real train split
    yield from distill_stage("real-data KD (upper bound)", DistillSpec(data="digits-train", **distill_kw))

    def metrics_for(run: str, name: str):
        with Catalog(project) as cat:
            x, y, _ = cat.load_images(run=run, statuses=["unreviewed", "keep"])
        feats = teacher_features(teacher, x)
        m = prdc_per_class(real_feats, y_test, feats, y, k=5)
        results["methods"][name]["metrics"] = {**m["overall"], "per_class_mean": m.get("mean_per_class")}
        return x

    # 2. plain class-name prompts, no guidance
    t0 = time.time()
    plain = plain_prompts(teacher.class_names, bank)
    gspec = GenerateSpec(project=str(project), run="plain", images_per_class=spec.images_per_class,
                         batch_size=spec.batch_size, seed=spec.seed, sampler=spec.sampler)
    for ev in run_generation(gspec, plain, teacher=teacher, components=comp, cancel=cancel):
        yield Event("generate: plain prompts", ev.step, ev.total, ev.message,
                    {k: v for k, v in ev.data.items() if k != "new_ids"})
    results["methods"]["plain prompts"] = {"generate_seconds": round(time.time() - t0, 1)}
    x_plain = metrics_for("plain", "plain prompts")
    yield from distill_stage("plain prompts", DistillSpec(**distill_kw), images=x_plain)

    # 3. PRISM: DPE (+ precision-aware scoring) + EDA guidance + oversample-and-select
    t0 = time.time()
    prompts = expand(teacher.class_names, bank, per_class=spec.prompts_per_class, seed=spec.seed)
    if spec.pilot_per_prompt:
        for ev in score_prompts(prompts, comp, teacher, pilot_per_prompt=spec.pilot_per_prompt,
                                keep_fraction=spec.keep_prompt_fraction, sampler=spec.sampler, seed=spec.seed,
                                cancel=cancel):
            prompts = ev.data.get("prompts", prompts)
            yield ev
    prompts.save(project / "prompts.json")
    guidance = GuidanceSpec(energy=EnergySpec(dict(spec.guidance_energy)), scale=spec.guidance_scale,
                            window=tuple(spec.guidance_window), mode=spec.guidance_mode)
    gspec = GenerateSpec(project=str(project), run="prism", images_per_class=spec.images_per_class * spec.oversample,
                         batch_size=spec.batch_size, seed=spec.seed + 1, sampler=spec.sampler, guidance=guidance)
    for ev in run_generation(gspec, prompts, teacher=teacher, components=comp, cancel=cancel):
        yield Event("generate: PRISM", ev.step, ev.total, ev.message,
                    {k: v for k, v in ev.data.items() if k != "new_ids"})
    with Catalog(project) as cat:
        cat.select_lowest(spec.images_per_class, column=spec.select_energy, run="prism")
    n_generated = spec.images_per_class * spec.oversample * teacher.num_classes
    results["methods"]["PRISM"] = {"generate_seconds": round(time.time() - t0, 1), "generated_images": n_generated}
    x_prism = metrics_for("prism", "PRISM")
    yield from distill_stage("PRISM", DistillSpec(**distill_kw), images=x_prism)

    results["wall_seconds"] = round(time.time() - t_all, 1)
    results["table"] = format_table(results)
    (project / "demo_results.json").write_text(json.dumps(results, indent=2))
    yield Event("done", 1, 1, "demo finished", {"results": results})


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
    return "\n".join(lines)
