"""The headline: what ``prism demo`` gives a user, over many seeds (issue 14).

    python -m benchmarks.headline --seeds 10 11 ... 19 [--components] [--budgets 10 30]
                                  [--work runs/headline] [--out benchmarks/results/headline.json] [--quick]

Each seed is one ``prism demo --seed S`` run through the product's own code
(:func:`prism_gui.engine.project.demo.run_demo`, nothing re-implemented here): real-data KD,
plain prompts and PRISM at the demo's defaults.  The share of the gap closed per seed is
``(PRISM - plain) / (real - plain)``; the summary gives the mean, the standard deviation over
seeds (ddof=1), a 95% t-interval of the mean and a 95% prediction interval for one more seed
(what a user's single ``prism demo`` run should fall in).

``--components`` adds the ablation rows at the same defaults and seeds, made with the demo's
stages: DPE only (the demo's scored prompts, unguided), EDA only (plain prompts, guided),
PRISM without selection when the demo selects (the first budget of each class in its candidate
run) or, with ``--select-rows``, PRISM + select when it does not (3x generated, the budget kept
by two strategies), and every student's accuracy on shifted copies of the test split.  ``--budgets`` repeats the three
headline rows at other budgets per class.  Finished seeds are kept in ``--out``; an
interrupted run resumes, and ``--components`` adds the component rows to a finished seed
recorded without them (from the prompts its project kept).
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

from benchmarks.ablation import evaluate_shifts, shifted_test_sets  # noqa: E402
from prism_gui.engine.project import demo  # noqa: E402

REAL, PLAIN, PRISM = "real-data KD (upper bound)", "plain prompts", "PRISM"
SELECT_OVERSAMPLE = 3  # the "+ select" rows generate this many candidates per training image
SELECT_STRATEGIES = ("lowest", "quota")


def interval(values, level: float = 0.95) -> dict:
    """Mean, std (ddof=1), the t-interval of the mean and the prediction interval of one more value."""
    from scipy import stats

    v = np.asarray(values, float)
    n = len(v)
    out = {"n": n, "mean": float(v.mean()), "std": float(v.std(ddof=1)) if n > 1 else 0.0,
           "min": float(v.min()), "max": float(v.max())}
    if n > 1:
        t = float(stats.t.ppf(0.5 + level / 2, n - 1))
        half = t * out["std"] / np.sqrt(n)
        pred = t * out["std"] * np.sqrt(1 + 1 / n)
        out["ci95"] = [out["mean"] - half, out["mean"] + half]
        out["prediction95"] = [out["mean"] - pred, out["mean"] + pred]
    return out


def gap_share(acc: float, plain: float, real: float) -> float:
    return (acc - plain) / (real - plain)


def _components(spec, ctx, project: Path, sets, y, select_rows: bool = False) -> dict:
    """DPE only, EDA only and PRISM without selection at the demo's settings and seeds, each
    made by the demo's own generation stage (only its prompts or its guidance scale changed)."""
    from prism_gui.engine.data.catalog import Catalog
    from prism_gui.engine.prompts import PromptSet, plain_prompts

    n = spec.images_per_class
    prompts = PromptSet.load(project / "prompts.json")
    one = dataclasses.replace(spec, oversample=1)
    arms = {"DPE only": (prompts, dataclasses.replace(one, guidance_scale=0.0)),
            "EDA only": (plain_prompts(ctx.teacher.class_names, ctx.bank), one)}
    out = {}
    for name, (ps, arm_spec) in arms.items():
        run = name.split()[0].lower()
        t0 = time.time()
        for _ in demo.prism_generate_stage(arm_spec, ctx, project, ps, per_class=n, run=run):
            pass
        gen_s = round(time.time() - t0, 1)
        with Catalog(project) as cat:
            x, lab, _ = cat.load_images(run=run)
        out[name] = _arm(spec, ctx, x, lab, sets, y) | {"generate_seconds": gen_s}
    if spec.oversample > 1:  # the demo selected: its candidates before selection, the first n of each class
        with Catalog(project) as cat:
            ids = [i for c in range(ctx.teacher.num_classes) for i in cat.ids(run="prism", classes=[c], sort="id")[:n]]
            x, lab, _ = cat.load_images(ids=ids)
        out["PRISM without selection"] = _arm(spec, ctx, x, lab, sets, y)
    elif select_rows:  # the demo trains on all it generates: PRISM + select, 3x generated and n kept per class
        from prism_gui.engine.analysis.selection import candidate_columns, select_ids

        t0 = time.time()
        for _ in demo.prism_generate_stage(dataclasses.replace(spec, oversample=SELECT_OVERSAMPLE), ctx, project,
                                           prompts, per_class=n * SELECT_OVERSAMPLE, run="prism-3x"):
            pass
        gen_s = round(time.time() - t0, 1)
        for strategy in SELECT_STRATEGIES:
            with Catalog(project) as cat:
                cols = candidate_columns(cat, run="prism-3x", teacher=ctx.teacher, strategy=strategy)
                keep = cols["id"][select_ids(strategy, cols, per_class=n, seed=spec.seed)]
                x, lab, _ = cat.load_images(ids=[int(i) for i in keep])
            out[f"PRISM + select ({strategy}, {SELECT_OVERSAMPLE}x)"] = _arm(spec, ctx, x, lab, sets, y) | \
                {"generate_seconds": gen_s}
    return out


def per_class_accuracy(student, ctx) -> list[float]:
    from prism_gui.engine.training.evaluate import evaluate

    return evaluate(student, ctx.teacher, ctx.x_test, ctx.y_test, per_class=True)["per_class_accuracy"]


def _arm(spec, ctx, x, labels, sets, y) -> dict:
    arm = demo.distill_arm(spec, ctx, x)
    m = demo.set_metrics(ctx, x, labels)
    return {"accuracy": arm["accuracy"], "shifts": evaluate_shifts(arm["student"], ctx.teacher, sets, y),
            "per_class": per_class_accuracy(arm["student"], ctx),
            "metrics": {k: m[k] for k in ("precision", "recall", "density", "coverage")}}


def seed_spec(seed: int, work: Path, *, quick: bool, budget: int | None, overrides: dict | None = None):
    """The demo spec (and its project folder) of one seed of the headline or a budget row."""
    base = demo.DemoSpec.quick() if quick else demo.DemoSpec()
    kw = dict(overrides or {})
    if budget is not None:
        kw["images_per_class"] = budget
    project = work / (f"b{budget}-s{seed}" if budget is not None else f"s{seed}")
    return dataclasses.replace(base, seed=seed, project=str(project), **kw), project


def has_components(rec: dict) -> bool:
    return "DPE only" in rec["rows"]


def add_components(rec: dict, work: Path, *, quick: bool, ctx, sets, overrides: dict | None = None,
                   select_rows: bool = False) -> dict:
    """The component rows for a seed recorded without them, from the prompts its demo run saved
    in its project (the demo itself is not re-run: its rows are kept as recorded)."""
    spec, project = seed_spec(rec["seed"], work, quick=quick, budget=None, overrides=overrides)
    if not (project / "prompts.json").is_file():
        raise SystemExit(f"seed {rec['seed']} has no component rows and its project {project} is gone: "
                         "delete its record from --out to run the seed again with --components")
    now = json.loads(json.dumps(dataclasses.asdict(spec)))
    ignore = {"project"} | ({"select"} if spec.oversample == 1 else set())  # no selection: its strategy is unused
    differ = sorted(k for k in now if k not in ignore and rec["spec"].get(k, now[k]) != now[k])
    if differ:
        raise SystemExit(f"seed {rec['seed']} was recorded with another spec than this command's "
                         f"({', '.join(differ)}): give the --set and --quick it was run with")
    rec["rows"].update(_components(spec, ctx, project, sets, ctx.y_test, select_rows))
    return rec


def run_seed(seed: int, work: Path, *, quick: bool, components: bool, budget: int | None, ctx, sets,
             overrides: dict | None = None, select_rows: bool = False) -> dict:
    spec, project = seed_spec(seed, work, quick=quick, budget=budget, overrides=overrides)
    done = None
    t0 = time.time()
    for ev in demo.run_demo(spec, ctx=ctx):
        done = ev
    res, students = done.data["results"], done.data["students"]
    y = ctx.y_test
    rec = {"seed": seed, "spec": res["spec"], "seeds": res["seeds"], "wall_seconds": round(time.time() - t0, 1),
           "rows": {}}
    for name, m in res["methods"].items():
        rec["rows"][name] = {"accuracy": m["student_accuracy"], "agreement": m["agreement"],
                             "metrics": {k: m["metrics"][k] for k in ("precision", "recall", "density", "coverage")}
                             if "metrics" in m else None,
                             "generate_seconds": m.get("generate_seconds"),
                             "shifts": evaluate_shifts(students[name], ctx.teacher, sets, y),
                             "per_class": per_class_accuracy(students[name], ctx)}
    if components:
        rec["rows"].update(_components(spec, ctx, project, sets, y, select_rows))
    acc = {k: v["accuracy"] for k, v in rec["rows"].items()}
    rec["gap_share"] = gap_share(acc[PRISM], acc[PLAIN], acc[REAL])
    return rec


def summarize(records: list[dict]) -> dict:
    rows = sorted({k for r in records for k in r["rows"]}, key=list(records[0]["rows"]).index
                  if records else None)
    out = {"seeds": [r["seed"] for r in records], "gap_share": interval([r["gap_share"] for r in records]),
           "rows": {}}
    for name in rows:
        rs = [r for r in records if name in r["rows"]]
        accs = [r["rows"][name]["accuracy"] for r in rs]
        row = {"accuracy": interval(accs),
               "gap_share": interval([gap_share(r["rows"][name]["accuracy"], r["rows"][PLAIN]["accuracy"],
                                                r["rows"][REAL]["accuracy"]) for r in rs])}
        mets = [r["rows"][name]["metrics"] for r in rs if r["rows"][name].get("metrics")]
        if mets:
            row["metrics"] = {k: float(np.mean([m[k] for m in mets])) for k in mets[0]}
        pc = [r["rows"][name]["per_class"] for r in rs if r["rows"][name].get("per_class")]
        if pc:
            row["per_class"] = np.mean(np.array(pc, float), axis=0).tolist()
        sh = [r["rows"][name]["shifts"] for r in rs if r["rows"][name].get("shifts")]
        if sh:
            row["shifts"] = {k: float(np.mean([s[k] for s in sh])) for k in sh[0]}
        out["rows"][name] = row
    return out


def format_table(summary: dict) -> str:
    g = summary["gap_share"]
    lines = [f"seeds {summary['seeds']}: share of the gap closed {g['mean']:.3f} ± {g['std']:.3f} "
             f"(95% interval of the mean {g.get('ci95', [0, 0])[0]:.3f}-{g.get('ci95', [0, 0])[1]:.3f}; "
             f"one seed: {g.get('prediction95', [0, 0])[0]:.3f}-{g.get('prediction95', [0, 0])[1]:.3f})",
             "| method | test acc (mean ± std) | gap share | P | R | D | C |", "|---|---|---|---|---|---|---|"]
    for name, r in summary["rows"].items():
        m = r.get("metrics") or {}
        f = " | ".join(f"{m[k]:.3f}" if k in m else "" for k in ("precision", "recall", "density", "coverage"))
        lines.append(f"| {name} | {100 * r['accuracy']['mean']:.2f} ± {100 * r['accuracy']['std']:.2f} | "
                     f"{r['gap_share']['mean']:.3f} ± {r['gap_share']['std']:.3f} | {f} |")
    return "\n".join(lines)


SHIFTS = ("rotate +15", "rotate -15", "thicker strokes", "thinner strokes", "translate 1px", "blur", "noise")


def markdown(res: dict, key: str = "headline") -> str:
    """The write-up's tables: rows with mean ± std and shifts, each seed, and accuracy per class."""
    summ, recs = res[key]["summary"], res[key]["records"]
    g = {"ci95": [float("nan")] * 2, "prediction95": [float("nan")] * 2, **summ["gap_share"]}
    out = [f"Seeds {', '.join(map(str, summ['seeds']))}. Share of the gap closed: **{g['mean']:.3f} ± {g['std']:.3f}** "
           f"(mean ± std over {g['n']} seeds); 95% interval of the mean {g['ci95'][0]:.3f}-{g['ci95'][1]:.3f}; "
           f"95% prediction interval for one more seed {g['prediction95'][0]:.3f}-{g['prediction95'][1]:.3f}; "
           f"range {g['min']:.3f}-{g['max']:.3f}.", ""]
    has_shift = any(r.get("shifts") for r in summ["rows"].values())
    head = "| method | test acc (mean ± std) | gap share | precision | recall | density | coverage |"
    if has_shift:
        head += " " + " | ".join(SHIFTS) + " |"
    out += [head, "|" + "---|" * (head.count("|") - 1)]
    for name, r in summ["rows"].items():
        m = r.get("metrics") or {}
        cells = [f"{m[k]:.3f}" if k in m else "" for k in ("precision", "recall", "density", "coverage")]
        line = (f"| {name} | {100 * r['accuracy']['mean']:.2f} ± {100 * r['accuracy']['std']:.2f} | "
                f"{r['gap_share']['mean']:.3f} ± {r['gap_share']['std']:.3f} | " + " | ".join(cells) + " |")
        if has_shift:
            sh = r.get("shifts") or {}
            line += " " + " | ".join(f"{100 * sh[k]:.1f}" if k in sh else "" for k in SHIFTS) + " |"
        out.append(line)
    names = list(summ["rows"])
    out += ["", "| seed | " + " | ".join(names) + " | gap share |", "|" + "---|" * (len(names) + 2)]
    for r in recs:
        out.append(f"| {r['seed']} | " + " | ".join(f"{100 * r['rows'][n]['accuracy']:.2f}" if n in r["rows"] else ""
                                                   for n in names) + f" | {r['gap_share']:.3f} |")
    pcs = {n: summ["rows"][n].get("per_class") for n in (REAL, PLAIN, PRISM) if summ["rows"][n].get("per_class")}
    if pcs:
        k = len(next(iter(pcs.values())))
        out += ["", "| class | " + " | ".join(pcs) + " | PRISM's share of the remaining gap |",
                "|" + "---|" * (len(pcs) + 2)]
        lost = [max(0.0, pcs[REAL][c] - pcs[PRISM][c]) for c in range(k)] if REAL in pcs and PRISM in pcs else None
        for c in range(k):
            share = f"{lost[c] / sum(lost):.0%}" if lost and sum(lost) else ""
            out.append(f"| {c} | " + " | ".join(f"{100 * v[c]:.1f}" for v in pcs.values()) + f" | {share} |")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(10, 20)))
    p.add_argument("--components", action="store_true", help="also the ablation rows and the shifted test sets")
    p.add_argument("--select-rows", action="store_true", help="with --components and a demo that does not select: "
                   "also PRISM + select rows (3x generated, the budget kept by 'lowest' and by 'quota')")
    p.add_argument("--budgets", type=int, nargs="*", default=[], help="also these budgets per class "
                   "(plain, PRISM, real-data KD)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a DemoSpec override as JSON value (exploring a candidate default), e.g. select=\"cluster\"")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "headline")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "headline.json")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--markdown", action="store_true", help="only print the write-up's tables from --out")
    a = p.parse_args(argv)
    if a.markdown:
        res = json.loads(a.out.read_text())
        for key in [k for k in res if k == "headline" or k.startswith("budget ")]:
            print(f"\n## {key}\n\n" + markdown(res, key))
        return 0
    overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in a.set)}
    res = json.loads(a.out.read_text()) if a.out.exists() else {}
    if res.get("overrides", {}) != overrides or res.get("quick", False) != a.quick:
        res = {}
    res.update({"overrides": overrides, "quick": a.quick})
    cmd = "python -m benchmarks.headline " + " ".join(argv if argv is not None else sys.argv[1:])
    res["commands"] = [*res.get("commands", []), cmd]
    ctx = demo.demo_context()
    sets = shifted_test_sets(ctx.x_test)

    def save():
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=1))

    for budget in [None, *a.budgets]:
        key = "headline" if budget is None else f"budget {budget}"
        recs = res.setdefault(key, {}).setdefault("records", [])
        for seed in a.seeds:
            old = next((r for r in recs if r["seed"] == seed), None)
            if old is not None:
                if a.components and budget is None and not has_components(old):
                    add_components(old, a.work, quick=a.quick, ctx=ctx, sets=sets, overrides=overrides,
                                   select_rows=a.select_rows)
                    print(f"{key} seed {seed}: components " + ", ".join(
                        f"{k} {100 * v['accuracy']:.2f}%" for k, v in old["rows"].items()), flush=True)
                    res[key]["summary"] = summarize(recs)
                    save()
                continue
            rec = run_seed(seed, a.work, quick=a.quick, components=a.components and budget is None, budget=budget,
                           ctx=ctx, sets=sets, overrides=overrides, select_rows=a.select_rows)
            recs.append(rec)
            print(f"{key} seed {seed}: " + ", ".join(f"{k} {100 * v['accuracy']:.2f}%" for k, v in rec["rows"].items())
                  + f"; gap share {rec['gap_share']:.3f}", flush=True)
            res[key]["summary"] = summarize(recs)
            save()
        print(f"\n{key}\n" + format_table(res[key]["summary"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
