"""``prism map``, ``prism duplicates``, ``prism holes``: curation at scale from the command line.

Each writes a JSON file and a PNG into ``--out`` (default: ``PROJECT/analysis/``) and prints
where; the same engine jobs back the app's Map tab.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def _progress(events):
    from prism_gui.engine.jobs import run_to_completion

    return run_to_completion(events)


def _common(p: argparse.ArgumentParser, reference: bool = True) -> None:
    p.add_argument("project", type=Path, help="the project folder")
    p.add_argument("--teacher", help="the teacher (a name, folder or checkpoint; default: the project's, from its "
                                     "project.json)")
    p.add_argument("--runs", nargs="+", help="only these generation runs (default: every run)")
    p.add_argument("--out", type=Path, help="folder for the JSON and PNG (default: PROJECT/analysis)")
    if reference:
        p.add_argument("--reference", default="project",
                       help="the real reference set: 'project' (the project's evaluation set, if it has one), "
                            "'none', 'digits-test', or a labelled image folder")
        p.add_argument("--mapping", help="with a folder reference: a class mapping file (as for evaluation sets)")


def _open(a, prog: str):
    """(teacher, reference, mapping, project spec or None) for a command's arguments."""
    from prism_gui.engine.project.project import SPEC_FILE, Project
    from prism_gui.engine.teachers.spec import TeacherSpec

    if not (a.project / "catalog.sqlite").exists():
        raise SystemExit(f"{prog}: '{a.project}' is not a PRISM project (no catalog.sqlite): give the project folder "
                         "that 'prism generate' wrote")
    has_spec = (a.project / SPEC_FILE).exists()
    if a.teacher is None and not has_spec:
        raise SystemExit(f"{prog}: '{a.project}' has no {SPEC_FILE} naming its teacher: add --teacher "
                         "(e.g. --teacher digits)")
    project = Project.open(a.project) if has_spec else None
    value = a.teacher if a.teacher is not None else project.teacher_value()
    teacher = TeacherSpec.from_value(value, "--teacher" if a.teacher else SPEC_FILE).load()
    reference, mapping = getattr(a, "reference", "none"), getattr(a, "mapping", None)
    if reference == "project":
        reference, mapping = project.evaluation() if project is not None else ("", None)
    elif reference not in ("none", "") and not Path(reference).is_dir():
        from prism_gui.engine.worlds import is_named_image_set

        if not is_named_image_set(reference):
            raise SystemExit(f"{prog}: --reference '{reference}' is neither a folder nor a built-in set: give a "
                             "labelled image folder, 'digits-test', 'project' or 'none'")
    if a.runs:
        from prism_gui.engine.data.catalog import Catalog

        with Catalog(a.project, create=False) as cat:
            runs = [r["id"] for r in cat.runs("generate")]
        unknown = [r for r in a.runs if r not in runs]
        if unknown:
            raise SystemExit(f"{prog}: '{a.project}' has no generation run(s) {unknown}; its runs are {runs}")
    return teacher, (reference if reference not in ("none",) else ""), mapping


def _out(a) -> Path:
    out = a.out or a.project / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    return out


def _write(path: Path, data: bytes | str) -> None:
    from prism_gui.engine.data.catalog import atomic_write_bytes

    atomic_write_bytes(path, data.encode("utf-8") if isinstance(data, str) else data)


COLOURS = ("class", "energy", "confidence", "run", "status", "density")


def cmd_map(rest):
    from prism_gui.engine.analysis.embedding import METHODS

    p = argparse.ArgumentParser(prog="prism map", description="A 2-D map of a project's images (and its real "
                                "reference set) in the teacher's feature space: map.json and map.png.")
    _common(p)
    p.add_argument("--method", choices=METHODS, default="auto", help="umap, pca, or auto (UMAP when installed)")
    p.add_argument("--color", choices=COLOURS[:5], default="class", help="what the PNG's colour shows")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--refit", action="store_true", help="fit the map again instead of updating the cached one")
    a = p.parse_args(rest)
    teacher, reference, mapping = _open(a, "prism map")
    from prism_gui.engine.analysis.embedding import map_job
    from prism_gui.engine.analysis.plots import map_png
    from prism_gui.engine.data.catalog import Catalog

    ev = _progress(map_job(a.project, teacher, method=a.method, reference=reference, mapping=mapping, runs=a.runs,
                           seed=a.seed, refit=a.refit))[-1]
    pm = ev.data["map"]
    with Catalog(a.project, create=False) as cat:
        rows = {r["id"]: r for r in cat.query(columns="id, status, energy, confidence")}
    status = [rows[int(i)]["status"] if i >= 0 else "" for i in pm.ids]
    kept = pm.real | (~pm.real & (np.array(status) != "reject"))
    values, log = None, False
    if a.color in ("energy", "confidence"):
        values = np.array([rows[int(i)][a.color] if i >= 0 and rows[int(i)][a.color] is not None else np.nan
                           for i in pm.ids], float)
        log = a.color == "energy" and bool(np.all(values[np.isfinite(values)] > 0))  # free energy: negative
        if log:
            values = np.log10(values)
    elif a.color in ("run", "status"):
        cats = pm.runs if a.color == "run" else np.array(status)
        names = sorted(set(cats.tolist()) - {""})
        values = np.array([names.index(c) if c in names else -1 for c in cats], float)
    out = _out(a)
    doc = pm.to_json()
    for pt, st in zip(doc["points"], status, strict=True):
        pt["status"] = st
    _write(out / "map.json", json.dumps(doc))
    _write(out / "map.png", map_png(pm.xy, pm.labels, pm.real, list(teacher.class_names), kept=kept,
                                    values=values, value_label="log10 energy" if log else a.color,
                                    title=f"{pm.method.upper()} map of '{a.project.name}' in the teacher's features"))
    print(ev.message)
    print(f"map -> {out / 'map.json'}, {out / 'map.png'}")
    return 0


def cmd_duplicates(rest):
    from prism_gui.engine.analysis.duplicates import DEFAULT_RATIO

    p = argparse.ArgumentParser(prog="prism duplicates", description="Near-duplicates in the teacher's features: "
                                "groups, and (with --reject) keep the lowest-energy image of each group and reject "
                                "the rest in one undoable step. Writes duplicates.json and duplicates.png.")
    _common(p, reference=False)
    p.add_argument("--threshold", type=float, help="cosine distance at or under which two images are near-duplicates "
                                                   "(default: --ratio of the set's typical neighbour distance)")
    p.add_argument("--ratio", type=float, default=DEFAULT_RATIO,
                   help="relative threshold, a fraction of the set's typical distance to the nearest neighbour (the "
                        f"median over classes of each class's median; default {DEFAULT_RATIO})")
    p.add_argument("--reject", action="store_true", help="reject all but the lowest-energy image of each group")
    a = p.parse_args(rest)
    if a.threshold is not None and not a.threshold >= 0:
        raise SystemExit(f"prism duplicates: --threshold is a cosine distance >= 0, not {a.threshold}")
    if not a.ratio > 0:
        raise SystemExit(f"prism duplicates: --ratio must be > 0, not {a.ratio}")
    teacher, _, _ = _open(a, "prism duplicates")
    from prism_gui.engine.analysis.duplicates import duplicates_job
    from prism_gui.engine.analysis.plots import montage_png
    from prism_gui.engine.data.catalog import Catalog

    ev = _progress(duplicates_job(a.project, teacher, threshold=a.threshold, ratio=a.ratio, runs=a.runs,
                                  reject=a.reject))[-1]
    res = ev.data["result"]
    out = _out(a)
    doc = {k: v for k, v in res.items() if k not in ("density", "nn_distance", "ids")}
    doc["class_thresholds"] = {str(k): v for k, v in res["class_thresholds"].items()}
    doc["density"] = {str(int(i)): round(float(d), 4) for i, d in zip(res["ids"], res["density"], strict=True)}
    _write(out / "duplicates.json", json.dumps(doc, indent=1))
    with Catalog(a.project, create=False) as cat:
        thumbs = {r["id"]: r["thumb"] for r in cat.query(columns="id, thumb")}
    rows = [(f"{teacher.class_names[g['class']]} ({len(g['ids'])})",
             [(thumbs[i], "keep" if i == g["keep"] else "reject") for i in g["ids"]]) for g in res["groups"][:16]]
    _write(out / "duplicates.png", montage_png(a.project, rows or [("no near-duplicates", [])]))
    print(ev.message + (" (Ctrl+Z in the app, or the curation journal, undoes it)" if res.get("action") else ""))
    print(f"duplicates -> {out / 'duplicates.json'}, {out / 'duplicates.png'}")
    return 0


def cmd_holes(rest):
    from prism_gui.engine.analysis.holes import DEFAULT_K, DEFAULT_REGIONS

    p = argparse.ArgumentParser(prog="prism holes", description="Where the synthetic set misses what the teacher "
                                "knows: per-class coverage of the real reference set (or of the teacher's class "
                                "prototypes with --reference none), uncovered regions and the prompts proposed for "
                                "them; with --fill N, generate N more images per class for every region. Writes "
                                "holes.json and holes.png.")
    _common(p)
    p.add_argument("--k", type=int, default=DEFAULT_K, help="neighbours of the coverage balls")
    p.add_argument("--regions", type=int, default=DEFAULT_REGIONS, help="regions per class at most")
    p.add_argument("--fill", type=int, metavar="N", help="generate N more images per class with holes (a new run "
                                                         "'fill-K' with the latest run's settings)")
    p.add_argument("--fill-classes", nargs="+", help="with --fill: only these classes (names or indices)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(rest)
    if a.k < 1 or a.regions < 1:
        raise SystemExit(f"prism holes: --k and --regions must be at least 1 (got {a.k} and {a.regions})")
    if a.fill is not None and a.fill < 1:
        raise SystemExit(f"prism holes: --fill must be at least 1, not {a.fill}")
    teacher, reference, mapping = _open(a, "prism holes")
    from prism_gui.engine.analysis.holes import holes_job, holes_json
    from prism_gui.engine.analysis.plots import coverage_png

    ev = _progress(holes_job(a.project, teacher, reference=reference, mapping=mapping, runs=a.runs, k=a.k,
                             regions=a.regions, seed=a.seed))[-1]
    res = ev.data["result"]
    out = _out(a)
    _write(out / "holes.json", json.dumps(holes_json(res), indent=1))
    _write(out / "holes.png", coverage_png(res["per_class"], title=f"coverage per class against "
                                           f"{'the real set' if res['reference'] == 'real' else 'class prototypes'}"))
    print(ev.message)
    for g in res["regions"][:5]:
        print(f"  {g['class_name']}: {g['size']} uncovered; proposed: "
              + "; ".join(p_["prompt"] for p_ in g["prompts"][:2]))
    print(f"holes -> {out / 'holes.json'}, {out / 'holes.png'}")
    if a.fill:
        regions = res["regions"]
        if a.fill_classes:
            names = list(teacher.class_names)
            want = set()
            for c in a.fill_classes:
                if c.isdigit() and int(c) < len(names):
                    want.add(int(c))
                elif c in names:
                    want.add(names.index(c))
                else:
                    raise SystemExit(f"prism holes: --fill-classes '{c}' is not a class of the teacher (a name or "
                                     f"an index 0-{len(names) - 1})")
            regions = [g for g in regions if g["class"] in want]
        if not regions:
            print("no uncovered region to fill")
            return 0
        from prism_gui.engine.project.actions import fill_holes_job

        evs = _progress(fill_holes_job(a.project, teacher, regions, per_class=a.fill))
        run = next((e.data.get("run") for e in reversed(evs) if e.data.get("run")), None)
        print(f"generated {a.fill} more per class for {len({g['class'] for g in regions})} classes"
              + (f" into run '{run}'" if run else ""))
    return 0


COMMANDS = {"map": cmd_map, "duplicates": cmd_duplicates, "holes": cmd_holes}
