"""``prism``: the headless command line of PRISM Studio.

    prism demo [--quick] [--json FILE]   the whole method on the Digits world, with baselines
    prism prompts SPEC                   build a prompt set (DPE) and save it
    prism generate SPEC                  guided generation into a project's catalog (resumable)
    prism distill SPEC                   distill a student on a project's curated images
    prism evaluate SPEC                  accuracy of an exported student on a real held-out set
    prism metrics SPEC                   precision/recall/density/coverage of a synthetic set
    prism export PROJECT DEST            export a project's curated images as an ImageFolder
    prism world                          sample the Digits prior and score it with the teacher
    prism train-teacher | train-prior | evaluate-prior   rebuild the Digits world

SPEC is a JSON or TOML file; see docs/CLI.md for every setting.  Every run writes a
manifest (spec, seeds, package versions, git revision).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _progress(events):
    from prism_gui.engine.jobs import run_to_completion

    return run_to_completion(events)


def cmd_demo(rest):
    p = argparse.ArgumentParser(prog="prism demo", description="Run PRISM on the Digits world against baselines.")
    p.add_argument("--quick", action="store_true", help="small settings that finish in under 2 minutes")
    p.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    p.add_argument("--project", help="keep the generated project in this folder (default: a temp folder)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(rest)
    from prism_gui.engine.project.demo import DemoSpec, run_demo

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
    from prism_gui.engine.specs import load_spec
    from prism_gui.engine.teachers.load import load_teacher

    s = load_spec(a.spec)
    teacher = load_teacher(s.get("teacher", "digits"), checkpoint=s.get("checkpoint"),
                           class_names=s.get("class_names"))
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
    out = Path(s.get("output", "prompts.json"))
    ps.save(out)
    print(f"{len(ps.prompts)} prompts for {len(ps.class_names)} classes -> {out}")
    for issue in ps.validate():
        print("warning:", issue)
    return 0


def cmd_generate(rest):
    p = argparse.ArgumentParser(prog="prism generate", description="Generate, score and catalog images.")
    p.add_argument("spec", help="JSON/TOML with the GenerateSpec settings plus 'prompts' (a prompt file)")
    a = p.parse_args(rest)
    from prism_gui.engine.generation.job import GenerateSpec, run_generation
    from prism_gui.engine.prompts import PromptSet
    from prism_gui.engine.specs import SpecError, build, load_spec

    s = load_spec(a.spec)
    if "prompts" not in s:
        raise SpecError(f"{a.spec}: needs 'prompts', the path of a prompt file (make one with `prism prompts`)")
    prompts_path = s.pop("prompts")
    spec = build(GenerateSpec, s, a.spec)
    from prism_gui.engine.teachers.load import load_teacher

    teacher = load_teacher(spec.teacher)
    prompts = PromptSet.load(prompts_path, teacher.class_names)
    events = _progress(run_generation(spec, prompts, teacher=teacher))
    print(f"{events[-1].step}/{events[-1].total} images in {spec.project} (run '{spec.run}')")
    return 0


def cmd_distill(rest):
    p = argparse.ArgumentParser(prog="prism distill", description="Distill a student from the teacher.")
    p.add_argument("spec", help="JSON/TOML with DistillSpec settings (+ 'teacher')")
    a = p.parse_args(rest)
    from prism_gui.engine.specs import build, load_spec
    from prism_gui.engine.teachers.load import load_teacher
    from prism_gui.engine.training.distill import DistillSpec, run_distillation

    s = load_spec(a.spec)
    teacher = load_teacher(s.pop("teacher", "digits"))
    spec = build(DistillSpec, s, a.spec)
    events = _progress(run_distillation(spec, teacher=teacher))
    res = events[-1].data["result"]
    print(json.dumps(res, indent=2))
    return 0


def cmd_evaluate(rest):
    p = argparse.ArgumentParser(prog="prism evaluate", description="Evaluate an exported student.")
    p.add_argument("spec", help="JSON/TOML: student_dir (with student.safetensors/json), eval, teacher")
    a = p.parse_args(rest)
    import safetensors.torch

    from prism_gui.engine.specs import SpecError, load_spec
    from prism_gui.engine.teachers.load import load_teacher
    from prism_gui.engine.training.distill import evaluate, load_eval_set, make_student

    s = load_spec(a.spec)
    if "student_dir" not in s:
        raise SpecError(f"{a.spec}: needs 'student_dir', a folder written by `prism distill` (out_dir)")
    d = Path(s["student_dir"])
    teacher = load_teacher(s.get("teacher", "digits"))
    info = json.loads((d / "student.json").read_text())
    arch = s.get("student", info["architecture"])
    student = make_student(arch, teacher)
    student.load_state_dict(safetensors.torch.load_file(str(d / "student.safetensors")))
    res = evaluate(student, teacher, *load_eval_set(s.get("eval", "digits-test"), teacher))
    print(json.dumps(res, indent=2))
    return 0


def cmd_metrics(rest):
    p = argparse.ArgumentParser(prog="prism metrics", description="Precision/recall of a synthetic set.")
    p.add_argument("spec", help="JSON/TOML: project, runs, reference ('digits-test' or an ImageFolder), k, teacher")
    a = p.parse_args(rest)
    from prism_gui.engine.analysis.prdc import prdc_per_class, teacher_features
    from prism_gui.engine.data.catalog import Catalog
    from prism_gui.engine.specs import load_spec
    from prism_gui.engine.teachers.load import load_teacher
    from prism_gui.engine.training.distill import load_eval_set

    s = load_spec(a.spec)
    teacher = load_teacher(s.get("teacher", "digits"))
    xr, yr = load_eval_set(s.get("reference", "digits-test"), teacher)
    with Catalog(s["project"], create=False) as cat:
        x, y, _ = cat.load_images(run=s.get("runs"), statuses=s.get("statuses", ["unreviewed", "keep"]))
    m = prdc_per_class(teacher_features(teacher, xr), yr, teacher_features(teacher, x), y, k=s.get("k", 5),
                       class_names=teacher.class_names)
    print(json.dumps(m, indent=2))
    if s.get("output"):
        Path(s["output"]).write_text(json.dumps(m, indent=2))
    return 0


def cmd_export(rest):
    p = argparse.ArgumentParser(prog="prism export", description="Export curated images as an ImageFolder.")
    p.add_argument("project")
    p.add_argument("dest")
    p.add_argument("--include-rejected", action="store_true")
    a = p.parse_args(rest)
    from prism_gui.engine.data.catalog import STATUSES, Catalog

    with Catalog(a.project, create=False) as cat:
        n = cat.export_imagefolder(a.dest, statuses=STATUSES if a.include_rejected else ("unreviewed", "keep"))
    print(f"exported {n} images to {a.dest} (metadata.jsonl)")
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


COMMANDS = {
    "demo": cmd_demo,
    "prompts": cmd_prompts,
    "generate": cmd_generate,
    "distill": cmd_distill,
    "evaluate": cmd_evaluate,
    "metrics": cmd_metrics,
    "export": cmd_export,
    "world": _world,
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
    from prism_gui.engine.prompts import PromptError
    from prism_gui.engine.specs import SpecError
    from prism_gui.engine.teachers.load import TeacherLoadError

    try:
        return COMMANDS[argv[0]](argv[1:]) or 0
    except (SpecError, PromptError, TeacherLoadError, CatalogError, ValueError, FileNotFoundError) as e:
        print(f"prism {argv[0]}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
