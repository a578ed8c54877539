"""``prism import`` and ``prism export-metrics``: the doors between a project and the other
tools of the field (images made elsewhere in; a run's curves out as CSV)."""

from __future__ import annotations

import argparse
from pathlib import Path

from prism_gui.cli.common import progress as _progress
from prism_gui.cli.common import project_teacher, require_project
from prism_gui.engine.data.layout import RunPaths


def cmd_import(rest):
    p = argparse.ArgumentParser(
        prog="prism import", description="Bring a folder of images made elsewhere into a project as a new run: "
        "classes from subfolders (class names, WordNet ids or --mapping) or else the teacher's prediction; prompt, "
        "seed and settings from Stable Diffusion web-UI/ComfyUI PNG metadata; every image scored by the teacher. "
        "Importing the same folder again adds only new images.")
    p.add_argument("project", type=Path, help="the project folder (created if it does not exist)")
    p.add_argument("folder", type=Path, help="the folder of images (and class subfolders)")
    p.add_argument("--run", help="the run's name (default: import-<folder name>)")
    p.add_argument("--mapping", help="a folder -> class mapping file (JSON or CSV), as for evaluation folders")
    p.add_argument("--teacher", help="the teacher (default: the project's, from its project.json)")
    p.add_argument("--batch-size", type=int, default=32)
    a = p.parse_args(rest)
    from prism_gui.engine.project.importer import import_job
    from prism_gui.engine.project.project import SPEC_FILE, Project

    if a.run is not None:
        from prism_gui.engine.data.guard import check_run_name

        check_run_name(a.run, "--run name")
    if a.batch_size < 1:
        raise SystemExit(f"prism import: --batch-size must be at least 1, not {a.batch_size}")
    if a.project.exists() and not a.project.is_dir():
        raise SystemExit(f"prism import: '{a.project}' is a file: give a project folder (a new one is created)")
    if not (a.project / SPEC_FILE).exists():
        if a.project.exists() and any(a.project.iterdir()) and not (a.project / "catalog.sqlite").exists():
            raise SystemExit(f"prism import: '{a.project}' is a folder that is not a PRISM project: give a project "
                             "folder, or a new one to create")
        Project.create(a.project)
        if a.teacher:
            p_ = Project.open(a.project)
            p_.section("teacher").update({"kind": "digits" if a.teacher == "digits" else "timm", "source": a.teacher})
            p_.save()
    teacher = project_teacher(a.project, a.teacher, "prism import")
    events = _progress(import_job(a.project, a.folder, teacher, run=a.run, mapping=a.mapping,
                                     batch_size=a.batch_size))
    res = events[-1].data["result"]
    print(f"imported {res['added']} of {res['files']} image files into run '{res['run']}' of {a.project} "
          f"({res['duplicates']} already in the project; classes from "
          + ("the subfolders" if res["classes_from"] == "folders" else "the teacher's predictions")
          + (f", {res['teacher_labelled']} labelled by the teacher" if res["teacher_labelled"] else "") + ")")
    for rel, why in res["unreadable"]:
        print(f"  skipped {rel}: {why}")
    return 0


def cmd_export_metrics(rest):
    p = argparse.ArgumentParser(prog="prism export-metrics", description="A run's logged metrics as CSV (a row per "
                                "step, a column per metric: loss, learning rate, accuracy, agreement; images/s and "
                                "mean energy for a generation). TensorBoard reads the same curves from the project: "
                                "tensorboard --logdir PROJECT.")
    p.add_argument("project", type=Path)
    p.add_argument("run")
    p.add_argument("--out", type=Path, help="the CSV file (default: PROJECT/runs/RUN/metrics.csv)")
    a = p.parse_args(rest)
    from prism_gui.engine.data.catalog import Catalog
    from prism_gui.engine.data.guard import check_output, check_run_name

    require_project(a.project, "prism export-metrics")
    out = check_output(a.out or RunPaths.of(a.project, check_run_name(a.run)).dir / "metrics.csv", what="--out")
    with Catalog(a.project, create=False) as cat:
        n = cat.export_metrics_csv(a.run, out)
    print(f"wrote {n} rows of run '{a.run}' to {out}")
    return 0


COMMANDS = {"import": cmd_import, "export-metrics": cmd_export_metrics}
