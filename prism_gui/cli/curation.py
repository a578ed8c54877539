"""``prism map``, ``prism duplicates``, ``prism holes``: curation at scale from the command line.

Each writes a JSON file and a PNG into ``--out`` (default: ``PROJECT/analysis/``) and prints
where; the same engine jobs back the app's Map tab.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from prism_gui.cli.common import progress as _progress
from prism_gui.cli.common import project_teacher, require_project, require_runs


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
    """(teacher, reference, mapping) for a command's arguments, after checking them."""
    from prism_gui.engine.project.project import SPEC_FILE, Project

    require_project(a.project, prog)
    teacher = project_teacher(a.project, a.teacher, prog)
    reference, mapping = getattr(a, "reference", "none"), getattr(a, "mapping", None)
    if reference == "project":
        has_spec = (a.project / SPEC_FILE).exists()
        reference, mapping = Project.open(a.project).evaluation() if has_spec else ("", None)
    elif reference not in ("none", "") and not Path(reference).is_dir():
        from prism_gui.engine.worlds import is_named_image_set

        if not is_named_image_set(reference):
            raise SystemExit(f"{prog}: --reference '{reference}' is neither a folder nor a built-in set: give a "
                             "labelled image folder, 'digits-test', 'project' or 'none'")
    require_runs(a.project, a.runs, prog)
    _out(a)  # refused before the job runs
    return teacher, (reference if reference != "none" else ""), mapping


def _out(a) -> Path:
    """The folder the JSON and PNG go to (made by the writes)."""
    from prism_gui.engine.analysis.features import ANALYSIS_DIR
    from prism_gui.engine.data.guard import check_output_folder

    return check_output_folder(a.out or a.project / ANALYSIS_DIR, what="--out")


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
    import numpy as np

    from prism_gui.engine.analysis.plots import energy_for_display, map_png
    from prism_gui.engine.data.files import atomic_write_bytes, atomic_write_text
    from prism_gui.engine.project.app_jobs import map_view_job

    ev = _progress(map_view_job(a.project, teacher, method=a.method, reference=reference, mapping=mapping,
                                runs=a.runs, seed=a.seed, refit=a.refit))[-1]
    pm, cols = ev.data["map"], ev.data["columns"]
    status = cols["status"].astype(str)
    kept = pm.real | (status != "reject")
    values, log = None, False
    if a.color == "energy":
        values, log = energy_for_display(cols["energy"])
    elif a.color == "confidence":
        values = cols["confidence"]
    elif a.color in ("run", "status"):
        cats = pm.runs if a.color == "run" else status
        names = sorted(set(cats.tolist()) - {""})
        values = np.array([names.index(c) if c in names else -1 for c in cats], float)
    out = _out(a)
    doc = pm.to_json()
    for pt, st in zip(doc["points"], status, strict=True):
        pt["status"] = st
    atomic_write_text(out / "map.json", json.dumps(doc))
    atomic_write_bytes(out / "map.png", map_png(
        pm.xy, pm.labels, pm.real, list(teacher.class_names), kept=kept, values=values,
        value_label="log10 energy" if log else a.color,
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
    from prism_gui.engine.data.files import atomic_write_bytes, atomic_write_text

    ev = _progress(duplicates_job(a.project, teacher, threshold=a.threshold, ratio=a.ratio, runs=a.runs,
                                  reject=a.reject))[-1]
    res = ev.data["result"]
    out = _out(a)
    doc = {k: v for k, v in res.items() if k not in ("density", "nn_distance", "ids")}
    doc["class_thresholds"] = {str(k): v for k, v in res["class_thresholds"].items()}
    doc["density"] = {str(int(i)): round(float(d), 4) for i, d in zip(res["ids"], res["density"], strict=True)}
    atomic_write_text(out / "duplicates.json", json.dumps(doc, indent=1))
    with Catalog(a.project, create=False) as cat:
        thumbs = {r["id"]: r["thumb"] for r in cat.query(columns="id, thumb")}
    rows = [(f"{teacher.class_names[g['class']]} ({len(g['ids'])})",
             [(thumbs[i], "keep" if i == g["keep"] else "reject") for i in g["ids"]]) for g in res["groups"][:16]]
    atomic_write_bytes(out / "duplicates.png", montage_png(a.project, rows or [("no near-duplicates", [])]))
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
    from prism_gui.engine.analysis.features import ANALYSIS_DIR
    from prism_gui.engine.analysis.holes import holes_job, holes_json
    from prism_gui.engine.analysis.plots import coverage_png
    from prism_gui.engine.data.files import atomic_write_bytes, atomic_write_text

    ev = _progress(holes_job(a.project, teacher, reference=reference, mapping=mapping, runs=a.runs, k=a.k,
                             regions=a.regions, seed=a.seed))[-1]
    res = ev.data["result"]
    out = _out(a)
    if out.resolve() != (a.project / ANALYSIS_DIR).resolve():  # the job saved it there for the report
        atomic_write_text(out / "holes.json", json.dumps(holes_json(res), indent=1))
    against = "the real set" if res["reference"] == "real" else "class prototypes"
    atomic_write_bytes(out / "holes.png", coverage_png(res["per_class"], title=f"coverage per class against {against}"))
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
        from prism_gui.engine.project.app_jobs import fill_holes_job

        run = _progress(fill_holes_job(a.project, teacher, regions, per_class=a.fill))[-1].data["run"]
        print(f"generated {a.fill} more per class for {len({g['class'] for g in regions})} classes into run '{run}'")
    return 0


COMMANDS = {"map": cmd_map, "duplicates": cmd_duplicates, "holes": cmd_holes}
