"""Which images to keep: selection strategies compared on the same candidate pools (issue 14).

    python -m benchmarks.selection --seeds 0 1 2 3 4 [--pool 5] [--work runs/selection]
                                   [--out benchmarks/results/selection.json] [--quick]

For each seed, the demo's own stages (:mod:`prism_gui.engine.project.demo`) make the plain
prompt set, the real-data KD student and a PRISM candidate pool of ``pool`` x the training
budget per class (the demo's prompts, guidance and generation seed).  Every selection strategy
of :data:`prism_gui.engine.analysis.selection.STRATEGIES` (and a few reference sets) then picks the
training budget per class from the pool, and the same student recipe is distilled on each
pick.  The share of the gap closed is ``(acc - plain) / (real - plain)`` per seed.

Pools are generated into ``--work`` once and reused: an interrupted run resumes.
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

from prism_gui.engine.project import demo  # noqa: E402

SELECT_OVERSAMPLE = 3


def baselines(spec: demo.DemoSpec, ctx: demo.DemoContext, work: Path, quick: bool) -> dict:
    """Plain prompts and real-data KD accuracy of the demo at ``spec.seed``, made once and shared
    by every study in ``work``'s parent folder (they depend on the seed and the budget only)."""
    path = work.parent / "selection-baselines.json"
    key = f"{'quick' if quick else 'full'}-{spec.images_per_class}-s{spec.seed}"
    known = json.loads(path.read_text()) if path.exists() else {}
    if key not in known:
        project = work.parent / "selection-baselines" / key
        for _ in demo.plain_stage(spec, ctx, project):
            pass
        from prism_gui.engine.data.catalog import Catalog

        with Catalog(project, create=False) as cat:
            x, _, _ = cat.load_images(run="plain")
        known[key] = {"plain": demo.distill_arm(spec, ctx, x)["accuracy"],
                      "real": demo.distill_arm(spec, ctx, None, real=True)["accuracy"]}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(known, indent=1))
    return known[key]


def pool_stage(spec: demo.DemoSpec, ctx: demo.DemoContext, work: Path, pool: int, per_class: int | None = None
               ) -> Path:
    """A PRISM pool of ``pool`` x the budget per class (or ``per_class`` images per class; the
    demo's prompts, guidance and seed) in run 'prism', generated once."""
    project = work / f"s{spec.seed}"
    flag = project / (f"pool-{per_class}.done" if per_class else f"pool-{pool}.done")
    if flag.exists():
        return project
    prompts = None
    for ev in demo.prism_prompts_stage(spec, ctx, project):
        prompts = ev.data.get("prompts", prompts)
    for _ in demo.prism_generate_stage(spec, ctx, project, prompts,
                                       per_class=per_class or spec.images_per_class * pool):
        pass
    flag.write_text("done")
    return project


def run(seeds, pool: int, work: Path, quick: bool = False, strategies=None, log=print, done=None, save=None,
        overrides: dict | None = None) -> dict:
    from prism_gui.engine.analysis.selection import STRATEGIES, select_ids
    from prism_gui.engine.data.catalog import Catalog

    base = dataclasses.replace(demo.DemoSpec.quick() if quick else demo.DemoSpec(), **(overrides or {}))
    ctx = demo.demo_context()
    n = base.images_per_class
    over = SELECT_OVERSAMPLE  # the "@3x" rows: the oversampling the earlier defaults used
    names = [s for s in (strategies or STRATEGIES) if s in STRATEGIES]
    out = done or {"pool": pool, "budget": n, "seeds": {}, "overrides": overrides or {}}
    for seed in seeds:
        spec = dataclasses.replace(base, seed=seed)
        rec = out["seeds"].setdefault(str(seed), {})
        t0 = time.time()
        project = pool_stage(spec, ctx, work, pool)
        rec.setdefault("pool_seconds", round(time.time() - t0, 1))
        if "real" not in rec or "plain" not in rec:
            rec.update(baselines(spec, ctx, work, quick))
        with Catalog(project, create=False) as cat:
            rows = cat.query(columns="id, item, class_index, prompt, energy, energy_class, energy_free, energy_bn",
                             run="prism", sort="id")
            cols = {k: np.array([r[k] for r in rows]) for k in rows[0].keys() if k != "prompt"}
            cols["prompt"] = np.array([r["prompt"] for r in rows])
            x_all, _, ids_all = cat.load_images(ids=[int(i) for i in cols["id"]])
        feats = demo.teacher_feature_array(ctx, x_all)
        pos = {int(i): k for k, i in enumerate(ids_all)}
        order = np.array([pos[int(i)] for i in cols["id"]])
        cols["features"] = feats[order]
        x_all = x_all[order]
        for name in names:
            if name in rec.get("strategies", {}):
                continue
            for limit in ([over, pool] if name != "first" else [1]):
                key = f"{name}@{limit}x" if name != "first" else "first"
                if key in rec.get("strategies", {}):
                    continue
                t1 = time.time()
                keep = select_ids(name, cols, per_class=n, candidates_per_class=n * limit, seed=seed)
                idx = np.array([pos_of for pos_of in keep])
                images = x_all[idx]
                arm = demo.distill_arm(spec, ctx, images)
                m = demo.set_metrics(ctx, images, cols["class_index"][idx])
                rec.setdefault("strategies", {})[key] = {"accuracy": arm["accuracy"], "precision": m["precision"],
                                                         "recall": m["recall"], "coverage": m["coverage"],
                                                         "density": m["density"],
                                                         "seconds": round(time.time() - t1, 1)}
                gap = rec["real"] - rec["plain"]
                log(f"seed {seed} {key:<24} {100 * arm['accuracy']:.2f}%  gap share "
                    f"{(arm['accuracy'] - rec['plain']) / gap:.3f}  P {m['precision']:.3f} R {m['recall']:.3f} "
                    f"C {m['coverage']:.3f}")
                if save:
                    save(out)
        for base_name in (["lowest", "cluster"] if not strategies or "student-aware" in strategies else []):
            key = f"student-aware({base_name})@{pool}x"
            if key in rec.get("strategies", {}):
                continue
            t1 = time.time()
            idx = student_aware(spec, ctx, cols, x_all, base_name, n, over, seed)
            arm = demo.distill_arm(spec, ctx, x_all[idx])
            m = demo.set_metrics(ctx, x_all[idx], cols["class_index"][idx])
            rec.setdefault("strategies", {})[key] = {"accuracy": arm["accuracy"], "precision": m["precision"],
                                                     "recall": m["recall"], "coverage": m["coverage"],
                                                     "density": m["density"], "seconds": round(time.time() - t1, 1)}
            gap = rec["real"] - rec["plain"]
            log(f"seed {seed} {key:<24} {100 * arm['accuracy']:.2f}%  gap share "
                f"{(arm['accuracy'] - rec['plain']) / gap:.3f}  P {m['precision']:.3f} R {m['recall']:.3f}")
            if save:
                save(out)
    out["summary"] = summarize(out)
    return out


def student_aware(spec, ctx, cols, x_all, base: str, n: int, over: int, seed: int, temperature: float = 4.0):
    """Student-aware selection, as adversarial DFKD does it: a pilot student distilled on half
    the budget (``base`` strategy among the first ``over`` x candidates); the other half is the
    candidates where the pilot disagrees most with the teacher (KL at the distillation
    temperature), among the lower-energy two thirds of the whole pool."""
    import torch
    import torch.nn.functional as F

    from prism_gui.engine.analysis.selection import select_ids

    half = n // 2
    first = select_ids(base, cols, per_class=half, candidates_per_class=n * over, seed=seed)
    pilot = demo.distill_arm(spec, ctx, x_all[first])["student"]
    pilot.eval()
    with torch.no_grad():
        xs = ctx.teacher.preprocess(x_all)
        t = F.log_softmax(ctx.teacher.model(xs) / temperature, -1)
        st = F.log_softmax(pilot(xs) / temperature, -1)
        kl = (t.exp() * (t - st)).sum(-1).numpy()
    chosen = set(first.tolist())
    keep = [first]
    for c in np.unique(cols["class_index"]):
        rows = np.flatnonzero(cols["class_index"] == c)
        rows = rows[np.argsort(cols["energy_class"][rows], kind="stable")][: round(len(rows) * 2 / 3)]
        rows = np.array([r for r in rows if r not in chosen])
        keep.append(rows[np.argsort(-kl[rows], kind="stable")[: n - half]])
    return np.concatenate(keep)


def summarize(out: dict) -> dict:
    keys = sorted({k for r in out["seeds"].values() for k in r.get("strategies", {})})
    summ = {}
    for k in keys:
        acc, share = [], []
        for r in out["seeds"].values():
            if k in r.get("strategies", {}):
                a = r["strategies"][k]["accuracy"]
                acc.append(a)
                share.append((a - r["plain"]) / (r["real"] - r["plain"]))
        summ[k] = {"n": len(acc), "accuracy_mean": float(np.mean(acc)), "accuracy_std": float(np.std(acc, ddof=1))
                   if len(acc) > 1 else 0.0, "gap_share_mean": float(np.mean(share)),
                   "gap_share_std": float(np.std(share, ddof=1)) if len(share) > 1 else 0.0}
    return summ


def paired_rows(results: list[tuple[str, dict, str]], base: tuple[dict, str]) -> str:
    """Markdown: each (label, result, key) against ``base`` (result, key) on the seeds both have:
    mean ± std of accuracy and gap share, and the mean paired difference with its 95% t-interval."""
    from scipy import stats

    bres, bkey = base
    head = "| setting | seeds | test acc (mean ± std) | gap share | vs the baseline (paired, 95% interval) | P | R |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for label, res, key in results:
        seeds = [s for s, r in res["seeds"].items() if key in r.get("strategies", {})
                 and bkey in bres["seeds"].get(s, {}).get("strategies", {})]
        rs = [res["seeds"][s] for s in seeds]
        a = np.array([r["strategies"][key]["accuracy"] for r in rs])
        b = np.array([bres["seeds"][s]["strategies"][bkey]["accuracy"] for s in seeds])
        g = np.array([(r["strategies"][key]["accuracy"] - r["plain"]) / (r["real"] - r["plain"]) for r in rs])
        d = a - b
        half = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0
        pr = np.mean([r["strategies"][key]["precision"] for r in rs])
        rc = np.mean([r["strategies"][key]["recall"] for r in rs])
        lines.append(f"| {label} | {','.join(seeds)} | {100 * a.mean():.2f} ± {100 * a.std(ddof=1):.2f} | "
                     f"{g.mean():.3f} ± {g.std(ddof=1):.3f} | {100 * d.mean():+.2f} ({100 * (d.mean() - half):+.2f} "
                     f"to {100 * (d.mean() + half):+.2f}) | {pr:.3f} | {rc:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--pool", type=int, default=5, help="candidates generated per training image")
    p.add_argument("--strategies", nargs="+", help="only these (names as in STRATEGIES, or 'first')")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "selection")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "selection.json")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a DemoSpec override as a JSON value for the pools, e.g. guidance_scale=0.6")
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(argv)
    overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in a.set)}
    done = json.loads(a.out.read_text()) if a.out.exists() else None
    if done and (done.get("pool"), done.get("overrides", {})) != (a.pool, overrides):
        done = None

    def save(res):
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=1))

    res = run(a.seeds, a.pool, a.work, quick=a.quick, strategies=a.strategies, done=done, save=save,
              overrides=overrides)
    res["overrides"] = overrides
    res["command"] = "python -m benchmarks.selection " + " ".join(argv if argv is not None else sys.argv[1:])
    save(res)
    for k, s in res["summary"].items():
        print(f"{k:<26} {100 * s['accuracy_mean']:.2f} ± {100 * s['accuracy_std']:.2f}  gap share "
              f"{s['gap_share_mean']:.3f} ± {s['gap_share_std']:.3f}  (n={s['n']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
