"""The PRISM ablation on the Digits world.

    python benchmarks/ablation.py [--seeds 0 1 2] [--budgets 10 30 100 300] [--sweeps | --candidates]
                                  [--quick] [--work DIR] [--out benchmarks/results/ablation.json]

Same teacher, same student architecture, same training recipe and the same number of training
images per method; every synthetic set is also measured against the real test split
(precision, recall, density, coverage in the teacher's features) and every student is
evaluated on the test split and on shifted copies of it (rotation, stroke width, translation,
blur, noise).

Rows: the teacher; KD on the real train split (upper bound); Gaussian-noise images;
DeepInversion-style images; plain class-name prompts without guidance (DM-KD); DPE only
(aimed, precision-scored prompts); EDA only (plain prompts + energy guidance); PRISM (DPE +
EDA); and the oversample-and-select rows (3x the images generated, the lowest class energy
kept per class: the same training budget) for plain prompts and for PRISM.

Each synthetic method is generated once per seed at the largest budget needed, into a
resumable catalog under ``--work``; a budget of ``n`` per class trains on the first ``n``
items of each class (the generation plan cycles through a class's prompts, so every prefix is
balanced over prompts).  An interrupted benchmark resumes where it stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from prism_gui.engine.project.demo import DemoSpec  # noqa: E402

SYNTHETIC = ("plain prompts", "DPE only", "EDA only", "PRISM")
SELECTED = {"plain prompts + select": "plain prompts", "PRISM + select": "PRISM"}


# ------------------------------------------------------------------ domain shifts of the test split
def shifted_test_sets(x: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    """Shifted copies of images in [-1, 1] (N, 1, 8, 8): the analogue of domain generalization."""
    import torch.nn.functional as F
    import torchvision.transforms.functional as TF

    g = torch.Generator().manual_seed(seed)
    out = {"clean": x}
    out["rotate +15"] = TF.rotate(x, 15.0, interpolation=TF.InterpolationMode.BILINEAR, fill=-1.0)
    out["rotate -15"] = TF.rotate(x, -15.0, interpolation=TF.InterpolationMode.BILINEAR, fill=-1.0)
    ink = (x + 1) / 2  # 0..1
    dil = F.max_pool2d(ink, 3, 1, 1)
    ero = -F.max_pool2d(-ink, 3, 1, 1)
    out["thicker strokes"] = (ink + 0.5 * (dil - ink)) * 2 - 1
    out["thinner strokes"] = (ink - 0.5 * (ink - ero)) * 2 - 1
    shifts = torch.randint(0, 4, (len(x),), generator=g)
    moved = torch.full_like(x, -1.0)
    for i, (dy, dx) in enumerate(((0, 1), (0, -1), (1, 0), (-1, 0))):
        m = shifts == i
        moved[m] = torch.roll(x[m], (dy, dx), dims=(2, 3))
        if dx == 1:
            moved[m, :, :, 0] = -1
        elif dx == -1:
            moved[m, :, :, -1] = -1
        elif dy == 1:
            moved[m, :, 0, :] = -1
        else:
            moved[m, :, -1, :] = -1
    out["translate 1px"] = moved
    out["blur"] = TF.gaussian_blur(x, kernel_size=3, sigma=0.7)
    out["noise"] = (x + 0.25 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    return out


def evaluate_shifts(student, teacher, sets: dict[str, torch.Tensor], y: np.ndarray) -> dict[str, float]:
    from prism_gui.engine.training.evaluate import evaluate

    return {name: evaluate(student, teacher, xs, y)["test_accuracy"] for name, xs in sets.items()}


# ------------------------------------------------------------------ generation
def _prompts(kind: str, spec: DemoSpec, teacher, comp, seed: int):
    """'plain' prompts, or DPE: expanded, then precision-scored by pilot samples."""
    from prism_gui.engine.prompts import expand, load_bank, plain_prompts, score_prompts

    bank = load_bank("digits")
    if kind == "plain":
        return plain_prompts(teacher.class_names, bank)
    ps = expand(teacher.class_names, bank, per_class=spec.prompts_per_class, seed=seed)
    if spec.pilot_per_prompt:
        for ev in score_prompts(ps, comp, teacher, pilot_per_prompt=spec.pilot_per_prompt,
                                keep_fraction=spec.keep_prompt_fraction, sampler=spec.sampler, seed=seed):
            ps = ev.data.get("prompts", ps)
    return ps


def generate_method(method: str, per_class: int, seed: int, spec: DemoSpec, work: Path, teacher, comp) -> dict:
    """Generate (or resume) one method's images into ``work/<method>-s<seed>``; returns timing."""
    from prism_gui.engine.generation.energies import EnergySpec
    from prism_gui.engine.generation.job import GenerateSpec, run_generation
    from prism_gui.engine.generation.sampler import GuidanceSpec

    project = work / f"{method.replace(' ', '_')}-s{seed}"
    done_flag = project / f"done-{per_class}.json"
    if done_flag.exists():
        return json.loads(done_flag.read_text())
    t0 = time.time()
    prompts = _prompts("dpe" if method in ("DPE only", "PRISM") else "plain", spec, teacher, comp, seed)
    guided = method in ("EDA only", "PRISM")
    guidance = GuidanceSpec(energy=EnergySpec(dict(spec.guidance_energy)), scale=spec.guidance_scale,
                            window=tuple(spec.guidance_window), mode=spec.guidance_mode) if guided else GuidanceSpec()
    gspec = GenerateSpec(project=str(project), run="gen", images_per_class=per_class, batch_size=spec.batch_size,
                         seed=1000 + seed, sampler=spec.sampler, guidance=guidance)
    for _ in run_generation(gspec, prompts, teacher=teacher, components=comp):
        pass
    info = {"generate_seconds": round(time.time() - t0, 1), "images": per_class * teacher.num_classes}
    done_flag.write_text(json.dumps(info))
    return info


def budget_images(project: Path, n: int, select_from: int | None = None):
    """The first ``n`` items of each class, or (``select_from``) the ``n`` lowest class energies
    among the first ``select_from`` items of each class."""
    from prism_gui.engine.data.catalog import Catalog

    with Catalog(project, create=False) as cat:
        ids = []
        for c in range(10):
            rows = cat.query(columns="id, item, energy_class", run="gen", classes=[c], sort="id")
            rows = rows[: (select_from or n)]
            if select_from:
                rows = sorted(rows, key=lambda r: r["energy_class"])[:n]
            ids += [r["id"] for r in rows]
        x, y, _ = cat.load_images(ids=ids)
    return x, y


@dataclasses.dataclass
class Bench:
    """What every part of the benchmark evaluates with: the teacher, the prior, the test split,
    its shifted copies and the test split's teacher features (for precision/recall)."""

    teacher: object
    comp: object
    sets: dict
    y_test: np.ndarray
    real_feats: object

    @classmethod
    def load(cls) -> Bench:
        from prism_gui.engine.analysis.prdc import teacher_features
        from prism_gui.engine.generation.load import load_generator
        from prism_gui.engine.teachers.load import load_teacher
        from prism_gui.engine.training.evaluate import eval_dataset

        teacher = load_teacher("digits")
        test_set = eval_dataset("digits-test", teacher)
        x_test, y_test = test_set.images, test_set.labels
        return cls(teacher, load_generator("digits"), shifted_test_sets(x_test), y_test,
                   teacher_features(teacher, x_test))

    def distill(self, images, student: str, epochs: int, seed: int):
        """The student trained by KD on ``images`` with the benchmark's one recipe."""
        from prism_gui.engine.training.distill import DistillSpec, run_distillation

        last = None
        for ev in run_distillation(DistillSpec(student=student, epochs=epochs, seed=seed, eval=""),
                                   teacher=self.teacher, images=images):
            last = ev
        return last.data["student"]

    def accuracy(self, student) -> dict[str, float]:
        return evaluate_shifts(student, self.teacher, self.sets, self.y_test)

    def prdc(self, images) -> dict:
        from prism_gui.engine.analysis.prdc import prdc, teacher_features

        return prdc(self.real_feats, teacher_features(self.teacher, images), k=5)


# ------------------------------------------------------------------ the benchmark
@dataclasses.dataclass
class Config:
    seeds: tuple[int, ...] = (0, 1, 2)
    budgets: tuple[int, ...] = (10, 30, 100, 300)
    oversample: int = 3
    epochs: int = 40
    deepinversion_iterations: int = 300
    quick: bool = False


def run(cfg: Config, spec: DemoSpec, work: Path, log=print) -> dict:
    from prism_gui.engine.training.deepinversion import DeepInversionSpec, run_deepinversion
    from prism_gui.engine.training.distill import DistillSpec, training_images

    bench = Bench.load()
    teacher, comp = bench.teacher, bench.comp
    res: dict = {"teacher": evaluate_teacher(teacher, bench.sets, bench.y_test), "rows": {}, "generation": {}}
    max_b = max(cfg.budgets)
    sel_budgets = [b for b in cfg.budgets if b * cfg.oversample <= max_b]

    def record(row, budget, seed, images, gen_seconds=None, metrics=True):
        t0 = time.time()
        student = bench.distill(images, spec.student, cfg.epochs, seed)
        entry = {"seed": seed, "budget": budget, "accuracy": bench.accuracy(student),
                 "distill_seconds": round(time.time() - t0, 1)}
        if gen_seconds is not None:
            entry["generate_seconds"] = gen_seconds
        if metrics:
            entry["prdc"] = bench.prdc(images)
        res["rows"].setdefault(row, []).append(entry)
        log(f"{row:<26} budget {budget!s:>4} seed {seed}: {100 * entry['accuracy']['clean']:.2f}%")

    for seed in cfg.seeds:
        record("real-data KD (upper bound)", None, seed, training_images(DistillSpec(data="digits-train"), teacher))
        for m in SYNTHETIC:
            info = generate_method(m, max_b, seed, spec, work, teacher, comp)
            res["generation"].setdefault(m, []).append(info)
            project = work / f"{m.replace(' ', '_')}-s{seed}"
            for b in cfg.budgets:
                x, _ = budget_images(project, b)
                record(m, b, seed, x, gen_seconds=round(info["generate_seconds"] * b / max_b, 1))
        for row, base in SELECTED.items():
            project = work / f"{base.replace(' ', '_')}-s{seed}"
            info = res["generation"][base][-1]
            for b in sel_budgets:
                x, _ = budget_images(project, b, select_from=b * cfg.oversample)
                record(row, b, seed, x, gen_seconds=round(info["generate_seconds"] * b * cfg.oversample / max_b, 1))
        g = torch.Generator().manual_seed(seed)
        for b in cfg.budgets:
            noise = (torch.randn((b * 10, 1, 8, 8), generator=g) * 0.5).clamp(-1, 1)
            record("Gaussian noise", b, seed, noise)
        t0 = time.time()
        di_proj = work / f"deepinversion-s{seed}"
        di = DeepInversionSpec(project=str(di_proj), images_per_class=max_b, seed=seed,
                               iterations=cfg.deepinversion_iterations)
        if not (di_proj / "done.json").exists():
            for _ in run_deepinversion(di, teacher=teacher):
                pass
            (di_proj / "done.json").write_text(json.dumps({"seconds": round(time.time() - t0, 1)}))
        for b in cfg.budgets:
            from prism_gui.engine.data.catalog import Catalog

            with Catalog(di_proj, create=False) as cat:
                ids = [i for c in range(10) for i in cat.ids(run="deepinversion", classes=[c], sort="id")[:b]]
                x, _, _ = cat.load_images(ids=ids)
            record("DeepInversion", b, seed, x)
    res["summary"] = summarize(res)
    return res


def evaluate_teacher(teacher, sets, y) -> dict:
    with torch.no_grad():
        return {k: float((teacher.logits(v).argmax(1).numpy() == y).mean()) for k, v in sets.items()}


def summarize(res: dict) -> dict:
    """Mean and standard deviation over seeds, per row and budget."""
    out: dict = {}
    for row, entries in res["rows"].items():
        by_b: dict = {}
        for e in entries:
            by_b.setdefault(str(e["budget"]), []).append(e)
        out[row] = {}
        for b, es in by_b.items():
            acc = {k: [e["accuracy"][k] for e in es] for k in es[0]["accuracy"]}
            s = {"n_seeds": len(es), "accuracy_mean": {k: float(np.mean(v)) for k, v in acc.items()},
                 "accuracy_std": {k: float(np.std(v)) for k, v in acc.items()}}
            if "prdc" in es[0]:
                s["prdc_mean"] = {k: float(np.mean([e["prdc"][k] for e in es])) for k in es[0]["prdc"]}
            if "generate_seconds" in es[0]:
                s["generate_seconds_mean"] = float(np.mean([e["generate_seconds"] for e in es]))
            out[row][b] = s
    return out


def format_table(res: dict, budget: int) -> str:
    shifts = list(res["teacher"])
    head = "| method | test acc (mean ± std) | precision | recall | density | coverage | gen s | " + \
        " | ".join(s for s in shifts if s != "clean") + " |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    t = res["teacher"]
    lines.append(f"| teacher | {100 * t['clean']:.2f} | | | | | | " +
                 " | ".join(f"{100 * t[s]:.1f}" for s in shifts if s != "clean") + " |")
    for row, by_b in res["summary"].items():
        s = by_b.get(str(budget)) or by_b.get("None")
        if s is None:
            continue
        m, sd = s["accuracy_mean"], s["accuracy_std"]
        p = s.get("prdc_mean", {})

        def f(k, p=p):
            return f"{p[k]:.3f}" if k in p else ""

        gen = f"{s['generate_seconds_mean']:.0f}" if "generate_seconds_mean" in s else ""
        lines.append(f"| {row} | {100 * m['clean']:.2f} ± {100 * sd['clean']:.2f} | {f('precision')} | "
                     f"{f('recall')} | {f('density')} | {f('coverage')} | {gen} | " +
                     " | ".join(f"{100 * m[k]:.1f}" for k in shifts if k != "clean") + " |")
    return "\n".join(lines)


SWEEPS = {  # PRISM (DPE + EDA, no selection) at one budget; every other setting as in the table
    "guidance_scale": [0.0, 0.01, 0.02, 0.05, 0.1],
    "guidance_window": [(0.0, 1.0), (0.5, 1.0), (0.8, 1.0)],
    "prompts_per_class": [5, 10, 20, 40],
}


def run_sweeps(spec: DemoSpec, work: Path, budget: int = 100, seed: int = 0, epochs: int = 40,
               sweeps: dict | None = None, log=print) -> dict:
    """Student accuracy (clean and mean over shifts), precision and recall against one setting
    at a time."""
    bench = Bench.load()
    out: dict = {"budget": budget, "seed": seed}
    for name, values in (sweeps or SWEEPS).items():
        out[name] = []
        for v in values:
            point = dataclasses.replace(spec, **{name: v})
            folder = work / "sweeps" / f"{name}={v}".replace(" ", "").replace("(", "").replace(")", "")
            info = generate_method("PRISM", budget, seed, point, folder, bench.teacher, bench.comp)
            x, _ = budget_images(folder / f"PRISM-s{seed}", budget)
            acc = bench.accuracy(bench.distill(x, spec.student, epochs, seed))
            m = bench.prdc(x)
            out[name].append({"value": list(v) if isinstance(v, tuple) else v, "accuracy": acc["clean"],
                              "accuracy_shift_mean": float(np.mean([a for k, a in acc.items() if k != "clean"])),
                              "precision": m["precision"], "recall": m["recall"],
                              "generate_seconds": info["generate_seconds"]})
            log(f"sweep {name}={v}: {100 * acc['clean']:.2f}% precision {m['precision']:.3f} recall {m['recall']:.3f}")
    return out


CANDIDATES = {  # PRISM settings confirmed over several seeds before they become the demo's defaults
    "20 prompts, scale 0.02 (previous defaults)": {"prompts_per_class": 20, "guidance_scale": 0.02},
    "scale 0.1": {"guidance_scale": 0.1},
    "40 prompts": {"prompts_per_class": 40},
    "40 prompts, scale 0 (DPE only)": {"prompts_per_class": 40, "guidance_scale": 0.0},
    "40 prompts, scale 0.1": {"prompts_per_class": 40, "guidance_scale": 0.1},
    "40 prompts, scale 0.2": {"prompts_per_class": 40, "guidance_scale": 0.2},
    "80 prompts, scale 0.1": {"prompts_per_class": 80, "guidance_scale": 0.1},
    "40 prompts, scale 0.4": {"prompts_per_class": 40, "guidance_scale": 0.4},
    "80 prompts, scale 0.2": {"prompts_per_class": 80, "guidance_scale": 0.2},
}


def run_candidates(spec: DemoSpec, work: Path, budget: int = 100, oversample: int = 3, seeds=(0, 1, 2),
                   epochs: int = 40, candidates: dict | None = None, log=print, done: dict | None = None,
                   save=None) -> dict:
    """Each candidate setting of PRISM over several seeds: the first ``budget`` images per class,
    and the ``budget`` lowest class energies among ``budget * oversample`` (equal training
    budget).  A candidate with no overrides (the current defaults) reuses the table's own PRISM
    generations in ``work``.
    ``done``: an earlier result with the same budget and seeds whose candidates are kept, not
    re-run; ``save(result)`` is called after each candidate, so an interrupted run keeps them."""
    bench = Bench.load()
    out: dict = {"budget": budget, "oversample": oversample, "seeds": list(seeds), "candidates": {}}
    if done and (done.get("budget"), done.get("oversample"), done.get("seeds")) == (budget, oversample, list(seeds)):
        out["candidates"].update(done.get("candidates", {}))
    for name, overrides in (candidates or CANDIDATES).items():
        if name in out["candidates"]:
            continue
        point = dataclasses.replace(spec, **overrides)
        folder = work if not overrides else work / "candidates" / \
            ",".join(f"{k}={v}" for k, v in sorted(overrides.items()))
        entries = []
        for seed in seeds:
            info = generate_method("PRISM", budget * oversample, seed, point, folder, bench.teacher, bench.comp)
            for select in (False, True):
                x, _ = budget_images(folder / f"PRISM-s{seed}", budget,
                                     select_from=budget * oversample if select else None)
                acc = bench.accuracy(bench.distill(x, spec.student, epochs, seed))
                m = bench.prdc(x)
                entries.append({"seed": seed, "select": select, "accuracy": acc,
                                "precision": m["precision"], "recall": m["recall"],
                                "generate_seconds": info["generate_seconds"]})
                log(f"{name} seed {seed} {'select' if select else 'first'}: {100 * acc['clean']:.2f}% "
                    f"precision {m['precision']:.3f} recall {m['recall']:.3f}")
        summary = {}
        for select in (False, True):
            es = [e for e in entries if e["select"] == select]
            clean = [e["accuracy"]["clean"] for e in es]
            shifted = [np.mean([a for k, a in e["accuracy"].items() if k != "clean"]) for e in es]
            summary["select" if select else "first"] = {
                "accuracy_mean": float(np.mean(clean)), "accuracy_std": float(np.std(clean)),
                "shift_min_mean": float(np.mean([min(a for k, a in e["accuracy"].items() if k != "clean")
                                                 for e in es])),
                "accuracy_shift_mean": float(np.mean(shifted)),
                "precision": float(np.mean([e["precision"] for e in es])),
                "recall": float(np.mean([e["recall"] for e in es]))}
        out["candidates"][name] = {"overrides": {k: list(v) if isinstance(v, tuple) else v
                                                 for k, v in overrides.items()},
                                   "entries": entries, "summary": summary}
        if save is not None:
            save(out)
    return out


def format_candidates(cd: dict, plain: float | None = None, real: float | None = None) -> str:
    """Markdown table; with the plain-prompt and real-data means, the share of the gap closed."""
    gap = (real - plain) if plain is not None and real is not None else None
    b, n = cd["budget"], cd["budget"] * cd["oversample"]
    head = (f"| setting | first {b}: acc | P | R | select {b} of {n}: acc | P | R | "
            "gap closed (first / select) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, c in cd["candidates"].items():
        f, s = c["summary"]["first"], c["summary"]["select"]
        closed = f"{100 * (f['accuracy_mean'] - plain) / gap:.0f}% / {100 * (s['accuracy_mean'] - plain) / gap:.0f}%" \
            if gap else ""
        lines.append(f"| {name} | {100 * f['accuracy_mean']:.2f} ± {100 * f['accuracy_std']:.2f} | "
                     f"{f['precision']:.3f} | {f['recall']:.3f} | {100 * s['accuracy_mean']:.2f} ± "
                     f"{100 * s['accuracy_std']:.2f} | {s['precision']:.3f} | {s['recall']:.3f} | {closed} |")
    return "\n".join(lines)


def plot_sweeps(sw: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k for k in SWEEPS if k in sw]
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4))
    for ax, name in zip(np.atleast_1d(axes), names, strict=True):
        pts = sw[name]
        xs = list(range(len(pts)))
        ax.plot(xs, [100 * p["accuracy"] for p in pts], "o-", label="student accuracy (%)")
        ax.plot(xs, [100 * p["accuracy_shift_mean"] for p in pts], "s--", label="mean over shifts (%)")
        ax2 = ax.twinx()
        ax2.plot(xs, [p["precision"] for p in pts], "^:", color="tab:green", label="precision")
        ax2.plot(xs, [p["recall"] for p in pts], "v:", color="tab:red", label="recall")
        ax2.set_ylim(0, 1)
        ax.set_xticks(xs, [str(p["value"]) for p in pts])
        ax.set_xlabel(name)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize=7)
        ax2.legend(loc="lower right", fontsize=7)
    fig.suptitle(f"PRISM at {sw['budget']} images per class, seed {sw['seed']}: one setting at a time", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def plot(res: dict, out: Path) -> Path:
    """Student accuracy, precision and recall against the image budget, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for row, by_b in res["summary"].items():
        bs = sorted(int(b) for b in by_b if b != "None")
        if not bs:
            continue
        acc = [100 * by_b[str(b)]["accuracy_mean"]["clean"] for b in bs]
        err = [100 * by_b[str(b)]["accuracy_std"]["clean"] for b in bs]
        axes[0].errorbar(bs, acc, yerr=err, marker="o", capsize=3, label=row)
        for ax, key in ((axes[1], "precision"), (axes[2], "recall")):
            if "prdc_mean" in by_b[str(bs[0])]:
                ax.plot(bs, [by_b[str(b)]["prdc_mean"][key] for b in bs], marker="o", label=row)
    real = res["summary"].get("real-data KD (upper bound)", {}).get("None")
    if real:
        axes[0].axhline(100 * real["accuracy_mean"]["clean"], color="k", ls="--", lw=1, label="real-data KD")
    for ax, title in zip(axes, ("student accuracy on the real test split (%)", "precision vs test split",
                                "recall vs test split"), strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("training images per class")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--budgets", type=int, nargs="+", default=[10, 30, 100, 300])
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "ablation")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ablation.json")
    p.add_argument("--quick", action="store_true", help="tiny settings (used by the test suite)")
    p.add_argument("--plot", type=Path, help="also draw accuracy/precision/recall against the budget to this PNG")
    p.add_argument("--plot-only", action="store_true", help="only redraw --plot from an existing --out file")
    p.add_argument("--sweeps", action="store_true", help="run the one-setting-at-a-time sweeps instead of the table "
                   "(PRISM at the first --budgets value, the first --seeds value)")
    p.add_argument("--candidates", action="store_true", help="confirm candidate PRISM settings over --seeds at "
                   "the first --budgets value, with and without oversample-and-select")
    p.add_argument("--names", nargs="+", help="with --candidates: only these candidates (names as in CANDIDATES)")
    a = p.parse_args(argv)
    if a.candidates:
        spec, cands = DemoSpec(), None
        if a.quick:
            spec = dataclasses.replace(DemoSpec.quick(), prompts_per_class=3, pilot_per_prompt=1)
            spec.sampler.steps = 4
            cands = {"defaults": {}, "scale 0.1": {"guidance_scale": 0.1}}
        if a.names:
            unknown = set(a.names) - set(CANDIDATES)
            if unknown:
                p.error(f"unknown candidates {sorted(unknown)}; choose from {list(CANDIDATES)}")
            cands = {k: CANDIDATES[k] for k in a.names}
        command = "python benchmarks/ablation.py " + " ".join(argv if argv is not None else sys.argv[1:])
        a.out.parent.mkdir(parents=True, exist_ok=True)

        def save(res):
            a.out.write_text(json.dumps({**res, "command": command}, indent=2))

        cd = run_candidates(spec, a.work, budget=a.budgets[0], seeds=tuple(a.seeds),
                            epochs=1 if a.quick else a.epochs, candidates=cands, save=save,
                            done=json.loads(a.out.read_text()) if a.out.exists() else None)
        cd["command"] = command
        plain = real = None  # the gap is measured against the ablation table run on the same seeds
        for table in [] if a.quick else sorted((ROOT / "benchmarks" / "results").glob("ablation*.json")):
            res = json.loads(table.read_text())
            if res.get("config", {}).get("seeds") == list(a.seeds):
                summ = res["summary"]
                plain = summ["plain prompts"][str(a.budgets[0])]["accuracy_mean"]["clean"]
                real = summ["real-data KD (upper bound)"]["None"]["accuracy_mean"]["clean"]
                cd["gap_reference"] = table.name
                break
        cd["table"] = format_candidates(cd, plain, real)
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(cd, indent=2))
        print(cd["table"])
        print("wrote", a.out)
        return 0
    if a.sweeps:
        spec = DemoSpec()
        sweeps = None
        if a.quick:
            spec = dataclasses.replace(DemoSpec.quick(), prompts_per_class=3, pilot_per_prompt=1)
            spec.sampler.steps = 4
            sweeps = {"guidance_scale": [0.0, 0.05], "guidance_window": [(0.5, 1.0)], "prompts_per_class": [3]}
        sw = run_sweeps(spec, a.work, budget=a.budgets[0], seed=a.seeds[0], epochs=1 if a.quick else a.epochs,
                        sweeps=sweeps)
        sw["command"] = "python benchmarks/ablation.py " + " ".join(argv if argv is not None else sys.argv[1:])
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(sw, indent=2))
        if a.plot:
            plot_sweeps(sw, a.plot)
        print("wrote", a.out)
        return 0
    if a.plot_only:
        print("wrote", plot(json.loads(a.out.read_text()), a.plot))
        return 0
    spec = DemoSpec()
    cfg = Config(seeds=tuple(a.seeds), budgets=tuple(a.budgets), epochs=a.epochs)
    if a.quick:
        spec = dataclasses.replace(DemoSpec.quick(), prompts_per_class=3, pilot_per_prompt=1)
        spec.sampler.steps = 4
        cfg = Config(seeds=(0,), budgets=(2, 6), epochs=1, deepinversion_iterations=5, quick=True)
    t0 = time.time()
    res = run(cfg, spec, a.work)
    res["config"] = {**dataclasses.asdict(cfg), "demo_spec": dataclasses.asdict(spec)}
    res["command"] = "python benchmarks/ablation.py " + " ".join(argv if argv is not None else sys.argv[1:])
    res["wall_seconds"] = round(time.time() - t0, 1)
    for b in cfg.budgets:
        res.setdefault("tables", {})[str(b)] = format_table(res, b)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2))
    if a.plot:
        plot(res, a.plot)
    print(res["tables"][str(100 if 100 in cfg.budgets else cfg.budgets[-1])])
    print("wrote", a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
