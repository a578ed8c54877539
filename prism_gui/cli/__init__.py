"""``prism``: the headless command line of PRISM Studio.

    prism demo [--quick] [--json FILE]   the whole method on the Digits world, with baselines
    prism prompts SPEC                   build a prompt set (DPE), optionally pilot-score it, and save it
    prism generate SPEC                  guided generation into a project's catalog (resumable)
    prism distill SPEC                   distill a student on a project's curated images
    prism evaluate SPEC                  accuracy of an exported student on a real held-out set
    prism metrics SPEC                   precision/recall/density/coverage of a synthetic set
    prism select PROJECT --per-class N   oversample-and-select: keep N images per class, reject the rest
    prism map PROJECT                    a 2-D map of the images (and real ones) in the teacher's features
    prism duplicates PROJECT [--reject]  near-duplicate groups; keep the lowest-energy image of each
    prism holes PROJECT [--fill N]       per-class coverage, uncovered regions, and generate more there
    prism export PROJECT DEST            curated images as a Hugging Face imagefolder dataset (+ dataset card)
    prism import PROJECT FOLDER          images made elsewhere into a project as a run, scored by the teacher
    prism export-metrics PROJECT RUN     a run's curves as CSV (TensorBoard: tensorboard --logdir PROJECT)
    prism report PROJECT [--out FILE]    the project's stakeholder report as one HTML file
    prism world                          sample the Digits prior and score it with the teacher
    prism train-teacher | train-prior | evaluate-prior   rebuild the Digits world

SPEC is a JSON or TOML file; see docs/CLI.md for every setting.  Every run writes a
manifest (spec, seeds, package versions, git revision).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from prism_gui.cli.common import progress as _progress
from prism_gui.cli.common import project_teacher, read_job_spec, require_project, require_runs


def cmd_demo(rest):
    p = argparse.ArgumentParser(prog="prism demo", description="Run PRISM on the Digits world against baselines.")
    p.add_argument("--quick", action="store_true", help="small settings that finish in under 2 minutes")
    p.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    p.add_argument("--project", help="keep the generated project in this folder (default: a temp folder)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(rest)
    from prism_gui.engine.data.guard import check_output
    from prism_gui.engine.project.demo import DemoSpec, run_demo

    if a.json:
        check_output(a.json, what="--json")

    spec = DemoSpec.quick(project=a.project, seed=a.seed) if a.quick else DemoSpec(project=a.project, seed=a.seed)
    events = _progress(run_demo(spec))
    res = events[-1].data["results"]
    print(res["table"])
    if a.json:
        a.json.write_text(json.dumps(res, indent=2))
        print(f"results written to {a.json}")
    return 0


def cmd_prompts(rest):
    p = argparse.ArgumentParser(prog="prism prompts", description="Build a DPE prompt set from a spec.")
    p.add_argument("spec", help="JSON/TOML: teacher, bank, per_class, seed, output, "
                                "[descriptions, axes, plain_only, llm_model]")
    a = p.parse_args(rest)
    from prism_gui.engine.prompts import class_phrases, expand, llm_expand, load_bank, plain_prompts

    s, tspec = read_job_spec(a.spec, PROMPTS_SETTINGS)
    teacher = tspec.load()
    bank = load_bank(s.get("bank", "digits"))
    phrases = class_phrases(teacher.class_names, teacher.class_descriptions, bank.get("disambiguation", "name"),
                            s.get("descriptions"))
    if s.get("llm_model"):
        ps = llm_expand(s["llm_model"], teacher.class_names, phrases, per_class=s.get("per_class", 5),
                        seed=s.get("seed", 0))
    elif s.get("plain_only"):
        ps = plain_prompts(teacher.class_names, bank, phrases)
    else:
        ps = expand(teacher.class_names, bank, per_class=s.get("per_class", 20), seed=s.get("seed", 0),
                    phrases=phrases, axes=s.get("axes"))
    from prism_gui.engine.data.guard import check_output

    out = Path(s.get("output", "prompts.json"))
    check_output(out, inputs=[a.spec, s.get("descriptions")], what=f"{a.spec}: 'output'", allow=("prompts.json",))
    if s.get("score"):
        ps = _score(ps, s["score"], teacher, a.spec)
    ps.save(out)
    print(f"{len(ps.prompts)} prompts for {len(ps.class_names)} classes -> {out}"
          + (f" ({len(ps.active())} kept by pilot scoring)" if s.get("score") else ""))
    for issue in ps.validate():
        print("warning:", issue)
    return 0


def _score(ps, settings, teacher, source):
    """Precision-aware diversity (``score`` in a prompts spec: true, or a table of ScoreSpec's
    settings): pilot samples per prompt, scored by the teacher's class energy; the worst prompts
    are disabled."""
    from prism_gui.engine.project.app_jobs import score_prompts_job
    from prism_gui.engine.prompts import ScoreSpec
    from prism_gui.engine.specs import SpecError, build

    if settings is True:
        settings = {}
    if not isinstance(settings, dict):
        names = ", ".join(f.name for f in dataclasses.fields(ScoreSpec))
        raise SpecError(f"{source}: 'score' must be true or a table of settings ({names})")
    spec = build(ScoreSpec, settings, f"{source} (score)")
    events = _progress(score_prompts_job(ps, teacher, spec))
    return events[-1].data["prompts"]


def cmd_report(rest):
    p = argparse.ArgumentParser(prog="prism report", description="Write a project's stakeholder report (HTML).")
    p.add_argument("project", type=Path, help="the project folder")
    p.add_argument("--out", type=Path, help="the HTML file (default: PROJECT/report.html)")
    a = p.parse_args(rest)
    from prism_gui.engine.data.guard import check_output
    from prism_gui.engine.project.report import report_job

    out = check_output(a.out or a.project / "report.html", what="--out")
    events = _progress(report_job(a.project))
    out = events[-1].data["report"].save_html(out)
    print(f"report -> {out}")
    return 0


def cmd_select(rest):
    from prism_gui.engine.analysis.selection import DESCRIPTIONS, NEEDS_FEATURES, STRATEGIES
    from prism_gui.engine.project.demo_settings import FULL

    p = argparse.ArgumentParser(prog="prism select", description="Oversample-and-select: per class keep N of a "
                                "project's images and reject the rest, in one undoable curation step.",
                                epilog="strategies: " + "; ".join(f"{k}: {v}" for k, v in DESCRIPTIONS.items()))
    p.add_argument("project", type=Path, help="the project folder")
    p.add_argument("--per-class", type=int, required=True, help="images to keep per class")
    p.add_argument("--by", choices=list(STRATEGIES), default=FULL["select"],
                   help=f"how to choose them (default: {FULL['select']}, the demo's)")
    p.add_argument("--run", help="only this generation run (default: every run)")
    p.add_argument("--seed", type=int, default=0, help="seed of the clustering strategies")
    p.add_argument("--teacher", help="with a coverage strategy: the teacher (a name, folder or checkpoint; default: "
                                     "the project's, from its project.json)")
    a = p.parse_args(rest)
    from prism_gui.engine.project.app_jobs import select_job

    require_project(a.project, "prism select")
    if a.per_class < 1:
        raise SystemExit(f"prism select: --per-class must be at least 1, not {a.per_class}")
    require_runs(a.project, a.run, "prism select")
    teacher = None
    if a.by in NEEDS_FEATURES:
        teacher = project_teacher(a.project, a.teacher, "prism select",
                                  why=f"'--by {a.by}' compares images in the teacher's features and ")
    ev = _progress(select_job(a.project, a.per_class, a.by, a.run, teacher, seed=a.seed))[-1]
    print(f"kept {a.per_class} per class ({DESCRIPTIONS[a.by]}), rejected {ev.data['rejected']}")
    return 0


PROMPTS_SETTINGS = {"bank": str, "per_class": int, "seed": int, "axes": list[str] | None,
                    "descriptions": dict[str, str],
                    "plain_only": bool, "llm_model": str, "output": str, "score": bool | dict}


def cmd_export(rest):
    p = argparse.ArgumentParser(prog="prism export", description="Export curated images as a Hugging Face "
                                "imagefolder dataset (class folders, metadata.jsonl, classes.json, a dataset card); "
                                "datasets.load_dataset('imagefolder', data_dir=DEST) loads it.")
    p.add_argument("project")
    p.add_argument("dest", help="a new or empty folder (an earlier export there is updated in place)")
    p.add_argument("--include-rejected", action="store_true")
    p.add_argument("--runs", nargs="+", help="only these runs (default: all)")
    a = p.parse_args(rest)
    from prism_gui.cli.common import project_class_names, require_project, require_runs
    from prism_gui.engine.data.catalog import STATUSES
    from prism_gui.engine.data.export import export_dataset_job

    root = Path(a.project)
    require_project(root, "prism export")
    require_runs(root, a.runs, "prism export")
    events = _progress(export_dataset_job(root, a.dest, runs=a.runs, class_names=project_class_names(root),
                                      statuses=STATUSES if a.include_rejected else ("unreviewed", "keep")))
    print(f"exported {events[-1].data['images']} images to {a.dest} (metadata.jsonl, classes.json, README.md): "
          f"datasets.load_dataset(\"imagefolder\", data_dir=\"{a.dest}\")")
    return 0


def cmd_repair_catalog(rest):
    p = argparse.ArgumentParser(prog="prism repair-catalog", description="Check a project's catalog and rebuild it "
                                "from the images (each PNG carries its row), the runs' manifests and the curation "
                                "journal. The old catalog file is kept beside the new one.")
    p.add_argument("project")
    p.add_argument("--check", action="store_true", help="only check; exit 1 when the catalog is damaged")
    a = p.parse_args(rest)
    from prism_gui.engine.data.recover import check_catalog, rebuild_catalog

    if not Path(a.project).is_dir():
        raise ValueError(f"'{a.project}' is not a folder: give a project folder")
    problem = check_catalog(a.project)
    print(f"catalog of {a.project}: " + ("ok" if problem is None else f"damaged ({problem})"))
    if a.check:
        return 0 if problem is None else 1
    print(json.dumps(rebuild_catalog(a.project), indent=2))
    return 0


def cmd_doctor(rest):
    p = argparse.ArgumentParser(prog="prism doctor", description="What this installation can do: versions, "
                                "devices, the built-in resources, and whether diffusers and transformers see torch.")
    p.parse_args(rest)
    import importlib.metadata

    import torch

    from prism_gui.engine.versions import package_versions
    from prism_gui.resources import resources_root

    checks = {}
    import diffusers.utils
    import transformers.utils

    checks["transformers sees torch"] = bool(transformers.utils.is_torch_available())
    checks["diffusers sees torch"] = bool(diffusers.utils.is_torch_available())
    checks["Digits world resources"] = (resources_root() / "digits_teacher").exists() and \
        (resources_root() / "digits_prior").exists()
    try:
        version = importlib.metadata.version("prism-gui")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown (no installed metadata)"
    report = {"prism-gui": version, "frozen": bool(getattr(sys, "frozen", False)), **package_versions(),
              "cuda": torch.cuda.is_available(), "gpus": torch.cuda.device_count(),
              "mps": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
              "resources": str(resources_root()), "checks": checks}
    print(json.dumps(report, indent=2))
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        print("prism doctor: failed: " + ", ".join(bad) + " (reinstall PRISM Studio, or rebuild the bundle)",
              file=sys.stderr)
        return 1
    return 0


def _world(rest):
    from prism_gui.app import main as app_main

    return app_main(["--headless", *rest])


def _delegate(module: str):
    def run(rest):
        import importlib

        importlib.import_module(module).main(rest)
        return 0

    return run


from prism_gui.cli.curation import COMMANDS as CURATION  # noqa: E402
from prism_gui.cli.jobs import COMMANDS as JOBS  # noqa: E402
from prism_gui.cli.toolchain import COMMANDS as TOOLCHAIN  # noqa: E402

COMMANDS = {
    "demo": cmd_demo,
    "select": cmd_select,
    **CURATION,
    "prompts": cmd_prompts,
    **JOBS,
    "export": cmd_export,
    **TOOLCHAIN,
    "report": cmd_report,
    "doctor": cmd_doctor,
    "repair-catalog": cmd_repair_catalog,
    "world": _world,
    "torchrun": _delegate("torch.distributed.run"),  # the launcher, also inside a frozen app (prism_gui.engine.scale)
    "train-teacher": _delegate("prism_gui.engine.digits.train_teacher"),
    "train-prior": _delegate("prism_gui.engine.digits.train_prior"),
    "evaluate-prior": _delegate("prism_gui.engine.digits.evaluate_prior"),
}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="prism", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=sorted(COMMANDS), help="what to run; `prism COMMAND -h` for its options")
    if not argv or argv[0] in ("-h", "--help"):
        p.print_help()
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        p.error(f"unknown command {argv[0]!r}; choose one of {', '.join(sorted(COMMANDS))}")
    from prism_gui.engine.data.catalog import CatalogError
    from prism_gui.engine.data.lock import ProjectLocked
    from prism_gui.engine.generation.load import GeneratorLoadError
    from prism_gui.engine.prompts import PromptError
    from prism_gui.engine.scale.launch import RunFailed
    from prism_gui.engine.specs import SpecError
    from prism_gui.engine.teachers.errors import TeacherLoadError

    try:
        return COMMANDS[argv[0]](argv[1:]) or 0
    except (SpecError, PromptError, TeacherLoadError, CatalogError, GeneratorLoadError, MemoryError, ValueError,
            OSError, ProjectLocked, RunFailed) as e:
        print(f"prism {argv[0]}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
