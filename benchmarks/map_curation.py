"""Does curation guided by the map raise the student's accuracy at equal budget? (issue 15)

    python -m benchmarks.map_curation --seeds 10 11 ... 19 [--work runs/map-curation]
                                      [--out benchmarks/results/map_curation.json] [--quick]

Per seed, the demo's own stages make a PRISM pool of 150 images per class (the demo's prompts,
guidance and generation seed: :func:`benchmarks.selection.pool_stage`), and every arm trains the
demo's student recipe on exactly 100 images per class, with the product's own curation actions:

- ``PRISM`` the first 100 of each class (what ``prism demo`` trains on: no curation);
- ``+50% more, lowest`` the first 150 of each class, the 100 of lowest class energy kept
  (``prism select --by lowest``): the same extra generation as the next arm, not guided by the map;
- ``+50% where the holes are, lowest`` the first 100 of each class, then *holes* against a small
  real reference set (10 real images per class from the Digits *train* split, a folder as a user
  would give it; the test split stays unseen) and *generate more here* for every uncovered region,
  50 per class with the proposed prompts (``prism holes --fill 50``), then the 100 of lowest energy
  per class kept;
- ``dedup + lowest`` the first 150 of each class, near-duplicates rejected keeping the lowest
  energy of each group (``prism duplicates --reject``), then the 100 of lowest energy kept.

Accuracy is on the real test split; gap share against the seed's plain-prompt and real-data KD
students (cached with benchmarks/selection.py's).  Nothing here was tuned: the settings are the
product's defaults (ratio 0.1, k 5, 3 regions per class).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from benchmarks.selection import baselines, pool_stage  # noqa: E402
from prism_gui.engine.project import demo  # noqa: E402

POOL = 1.5  # candidates per training image in the pool
EXTRA = 0.5  # extra generation per training image for the two "+50" arms
REFERENCE_PER_CLASS = 10


def reference_folder(work: Path, names: list[str], per_class: int, seed: int) -> Path:
    """``per_class`` real train-split digits per class as a labelled folder (class-name subfolders)."""
    from PIL import Image

    from prism_gui.engine.digits.data import load_split

    dest = work / f"reference-{per_class}-s{seed}"
    if (dest / ".done").exists():
        return dest
    x, y = load_split("train")
    rng = np.random.default_rng(seed)
    for c, name in enumerate(names):
        (dest / name).mkdir(parents=True, exist_ok=True)
        for j, i in enumerate(rng.choice(np.flatnonzero(y == c), per_class, replace=False)):
            Image.fromarray((x[i] * 255 / 16).round().astype(np.uint8), "L").save(dest / name / f"{j}.png")
    (dest / ".done").write_text("done")
    return dest


def _copy_run(src: Path, dst: Path, per_class: int) -> None:
    """A project holding the first ``per_class`` images of each class of ``src``'s run 'prism'."""
    from prism_gui.engine.data.catalog import Catalog

    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("analysis", "*.done"))
    with Catalog(dst) as cat:
        drop = []
        for c in sorted(set(cat.column("class_index", run="prism").tolist())):
            drop += cat.ids(run="prism", classes=[c], sort="id")[per_class:]
        with cat._writing():
            cat._conn.executemany("DELETE FROM images WHERE id=?", [(i,) for i in drop])


def _lowest(project: Path, n: int) -> None:
    from prism_gui.engine.analysis.selection import select_in_catalog
    from prism_gui.engine.data.catalog import Catalog

    with Catalog(project) as cat:
        select_in_catalog(cat, n, strategy="lowest")


def _train(spec, ctx, project: Path, n: int) -> dict:
    from prism_gui.engine.data.catalog import Catalog

    with Catalog(project, create=False) as cat:
        x, lab, _ = cat.load_images(statuses=["unreviewed", "keep"])
    counts = np.bincount(lab, minlength=10)
    assert (counts == n).all(), counts  # equal budget, every arm
    arm = demo.distill_arm(spec, ctx, x)
    m = demo.set_metrics(ctx, x, lab)
    return {"accuracy": arm["accuracy"], **{k: m[k] for k in ("precision", "recall", "density", "coverage")}}


def arm_prism(spec, ctx, pool: Path, ref: Path, p: Path, rec: dict) -> dict:
    _copy_run(pool, p, spec.images_per_class)
    return _train(spec, ctx, p, spec.images_per_class)


def arm_more(spec, ctx, pool: Path, ref: Path, p: Path, rec: dict) -> dict:
    n = spec.images_per_class
    _copy_run(pool, p, n + round(n * EXTRA))
    _lowest(p, n)
    return _train(spec, ctx, p, n)


def arm_holes(spec, ctx, pool: Path, ref: Path, p: Path, rec: dict) -> dict:
    from prism_gui.engine.analysis.holes import holes_job
    from prism_gui.engine.data.catalog import Catalog
    from prism_gui.engine.project.app_jobs import fill_holes_job

    n = spec.images_per_class
    extra = round(n * EXTRA)
    _copy_run(pool, p, n)
    res = None
    for ev in holes_job(p, ctx.teacher, reference=str(ref)):
        res = ev.data.get("result", res)
    rec["holes"] = {"coverage_before": res["coverage"], "regions": len(res["regions"]),
                    "classes": sorted({g["class"] for g in res["regions"]})}
    t0 = time.time()
    for _ in fill_holes_job(p, ctx.teacher, res["regions"], per_class=extra, components=ctx.comp):
        pass
    rec["holes"]["fill_seconds"] = round(time.time() - t0, 1)
    after = None
    for ev in holes_job(p, ctx.teacher, reference=str(ref)):
        after = ev.data.get("result", after)
    rec["holes"]["coverage_after_fill"] = after["coverage"]
    # classes without holes got no fill: top them up from the pool's next images, so every class
    # has the same number of candidates
    with Catalog(pool) as src, Catalog(p) as dst:
        for c in set(range(ctx.teacher.num_classes)) - set(rec["holes"]["classes"]):
            ids = src.ids(run="prism", classes=[c], sort="id")[n:n + extra]
            rows = [dict(r) for r in src.query(ids=ids)]
            for r in rows:
                r.pop("id"), r.pop("status")
                for key in ("path", "thumb"):  # the fill's catalog repair removed the copies it had no row for
                    (p / r[key]).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(pool / r[key], p / r[key])
            dst.insert_rows(rows)
    _lowest(p, n)
    return _train(spec, ctx, p, n)


def arm_dedup(spec, ctx, pool: Path, ref: Path, p: Path, rec: dict) -> dict:
    from prism_gui.engine.analysis.duplicates import duplicates_job

    n = spec.images_per_class
    _copy_run(pool, p, n + round(n * EXTRA))
    for ev in duplicates_job(p, ctx.teacher, reject=True):
        rec["dedup_rejected"] = ev.data.get("result", {}).get("duplicates", rec.get("dedup_rejected"))
    _lowest(p, n)
    return _train(spec, ctx, p, n)


ARMS = {"PRISM": arm_prism, "+50% more, lowest": arm_more, "+50% where the holes are, lowest": arm_holes,
        "dedup + lowest": arm_dedup}


def run_seed(spec, ctx, work: Path, rec: dict | None = None, only: list[str] | None = None) -> dict:
    """Every arm of one seed (or only the arms named in ``only``, into ``rec``)."""
    n = spec.images_per_class
    pool = pool_stage(spec, ctx, work, 0, per_class=round(n * POOL))
    ref = reference_folder(work, list(ctx.teacher.class_names), REFERENCE_PER_CLASS, spec.seed)
    rec = rec if rec is not None else {"seed": spec.seed, "arms": {}}
    arms = work / f"s{spec.seed}-arms"
    for name, fn in ARMS.items():
        if only is None or name in only:
            rec["arms"][name] = fn(spec, ctx, pool, ref, arms / fn.__name__, rec)
    shutil.rmtree(arms, ignore_errors=True)  # the pool and the reference stay for a re-run
    return rec


def summarize(out: dict) -> dict:
    from benchmarks.headline import interval

    recs = [r for r in out["seeds"].values() if "arms" in r]
    names = list(recs[0]["arms"]) if recs else []
    summ = {}
    for name in names:
        acc = [100 * r["arms"][name]["accuracy"] for r in recs]
        gap = [(r["arms"][name]["accuracy"] - r["plain"]) / (r["real"] - r["plain"]) for r in recs]
        diff = [100 * (r["arms"][name]["accuracy"] - r["arms"]["PRISM"]["accuracy"]) for r in recs]
        summ[name] = {"accuracy": interval(acc), "gap_share": interval(gap), "vs_PRISM": interval(diff),
                      **{k: float(np.mean([r["arms"][name][k] for r in recs]))
                         for k in ("precision", "recall", "density", "coverage")}}
    return summ


def table(out: dict) -> str:
    s = out["summary"]
    lines = ["| arm | test acc (mean ± std) | gap share | vs PRISM, paired (95% interval) | P | R | D | C |",
             "|---|---|---|---|---|---|---|---|"]
    for name, v in s.items():
        d = v["vs_PRISM"]
        ci = f" ({d['ci95'][0]:+.2f} to {d['ci95'][1]:+.2f})" if "ci95" in d else ""
        lines.append(f"| {name} | {v['accuracy']['mean']:.2f} ± {v['accuracy'].get('std', 0):.2f} | "
                     f"{v['gap_share']['mean']:.3f} ± {v['gap_share'].get('std', 0):.3f} | "
                     f"{d['mean']:+.2f}{ci if name != 'PRISM' else ''} | {v['precision']:.3f} | {v['recall']:.3f} | "
                     f"{v['density']:.3f} | {v['coverage']:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(10, 20)))
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "map-curation")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "map_curation.json")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--markdown", action="store_true", help="only print the table from --out")
    p.add_argument("--redo", nargs="+", choices=list(ARMS), help="measure these arms again on the recorded seeds "
                   "(after a change to what they run)")
    a = p.parse_args(argv)
    if a.markdown:
        print(table(json.loads(a.out.read_text())))
        return 0
    out = json.loads(a.out.read_text()) if a.out.exists() else {}
    if out.get("quick", False) != a.quick:
        out = {}
    out.setdefault("seeds", {})
    cmd = "python -m benchmarks.map_curation " + " ".join(argv if argv is not None else sys.argv[1:])
    out["commands"] = [*out.get("commands", [out["command"]] if "command" in out else []), cmd]
    out.pop("command", None)
    out.update({"quick": a.quick, "pool": POOL, "extra": EXTRA, "reference_per_class": REFERENCE_PER_CLASS})
    base = demo.DemoSpec.quick() if a.quick else demo.DemoSpec()
    ctx = demo.demo_context()
    for seed in a.seeds:
        if a.redo and "arms" in out["seeds"].get(str(seed), {}):
            rec = run_seed(dataclasses.replace(base, seed=seed), ctx, a.work, out["seeds"][str(seed)], a.redo)
            out.setdefault("redone", {})[",".join(a.redo)] = cmd
            out["summary"] = summarize(out)
            a.out.write_text(json.dumps(out, indent=1))
            print(f"seed {seed} again: " + ", ".join(f"{k} {100 * rec['arms'][k]['accuracy']:.2f}%" for k in a.redo),
                  flush=True)
            continue
        if "arms" in out["seeds"].get(str(seed), {}):
            continue
        spec = dataclasses.replace(base, seed=seed)
        t0 = time.time()
        rec = run_seed(spec, ctx, a.work)
        rec.update(baselines(spec, ctx, a.work, a.quick))
        rec["seconds"] = round(time.time() - t0, 1)
        out["seeds"][str(seed)] = rec
        out["summary"] = summarize(out)
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(out, indent=1))
        print(f"seed {seed}: " + ", ".join(f"{k} {100 * v['accuracy']:.2f}%" for k, v in rec["arms"].items())
              + f"; coverage {rec['holes']['coverage_before']:.3f} -> {rec['holes']['coverage_after_fill']:.3f}",
              flush=True)
    if out.get("summary"):
        print(table(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
