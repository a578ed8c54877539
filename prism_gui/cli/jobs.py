"""The commands that run a job from a spec file: ``prism generate``, ``distill``, ``cluster``,
``evaluate`` and ``metrics`` (docs/CLI.md lists every setting)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from prism_gui.cli.common import progress as _progress
from prism_gui.cli.common import read_job_spec

EVALUATE_SETTINGS = {"student_dir": str, "student": str | None, "eval": str, "eval_mapping": str | None,
                     "per_class": bool, "output": str, "batch_size": int, "workers": int | None, "device": str}


METRICS_SETTINGS = {"project": str, "runs": list[str] | str | None, "reference": str, "statuses": list[str], "k": int,
                    "mapping": str | None, "max_real": int | None, "seed": int, "output": str}


PROCESSES_HELP = ("processes on this machine, one per GPU (torchrun starts them; 1: this process). Under "
                  "torchrun / accelerate launch leave it out: each started process runs its share")


def cmd_generate(rest):
    p = argparse.ArgumentParser(prog="prism generate", description="Generate, score and catalog images.")
    p.add_argument("spec", help="JSON/TOML with the GenerateSpec settings plus 'prompts' (a prompt file)")
    p.add_argument("--estimate", action="store_true", help="print the job's memory estimate and stop")
    p.add_argument("--processes", type=int, default=1, help=PROCESSES_HELP)
    a = p.parse_args(rest)
    from prism_gui.engine.generation.job import load_generate_file, run_generation
    from prism_gui.engine.prompts import PromptSet
    from prism_gui.engine.scale.ranks import launched

    spec, prompts_path, tspec = load_generate_file(a.spec)
    from prism_gui.engine.scale.launch import check_processes

    check_processes(a.processes, spec.device)
    if a.processes > 1 and not launched():
        from prism_gui.engine.scale.launch import launch, merge_after

        tspec.load()  # a bad teacher is reported here, before processes start
        try:
            events = _progress(launch(["generate", a.spec], a.processes))
        finally:
            merge_after(spec.project, spec.run)
        print(f"{events[-1].step}/{events[-1].total} images in {spec.project} (run '{spec.run}', "
              f"{a.processes} processes)")
        return 0
    teacher = tspec.load()
    if a.estimate:
        return _print_estimate(spec, teacher)
    prompts = PromptSet.load(prompts_path, teacher.class_names, match_classes=True)
    if launched():
        from prism_gui.engine.scale.worker import run_rank

        return run_rank(lambda ranks, cancel: run_generation(spec, prompts, teacher=teacher, ranks=ranks,
                                                             cancel=cancel), spec.device)
    events = _progress(run_generation(spec, prompts, teacher=teacher))
    print(f"{events[-1].step}/{events[-1].total} images in {spec.project} (run '{spec.run}')")
    return 0


def _print_estimate(spec, teacher) -> int:
    from prism_gui.engine.devices import pick_device, pick_dtype
    from prism_gui.engine.generation.families import describe
    from prism_gui.engine.generation.load import load_generator
    from prism_gui.engine.generation.memory import MiB, estimate

    device = pick_device(spec.device)
    comp = load_generator(spec.generator).to(device, pick_dtype(device, spec.precision))
    est = estimate(comp, teacher.to(device), spec.sampler, spec.guidance, spec.batch_size, offload=spec.offload)
    size = spec.sampler.resolution or comp.resolution
    print(f"{spec.generator}: {describe(comp)}; generating at {size} px on {device.type}")
    print(f"memory: {est.describe()}")
    print(json.dumps({k: (round(v / MiB, 1) if k in ("weights", "guidance_per_image", "peak") else v)
                      for k, v in est.to_dict().items()} | {"unit": "MiB"}))
    return 0


def cmd_distill(rest):
    p = argparse.ArgumentParser(prog="prism distill", description="Distill a student from the teacher.")
    p.add_argument("spec", help="JSON/TOML with DistillSpec settings (+ 'teacher')")
    p.add_argument("--processes", type=int, default=1, help=PROCESSES_HELP)
    a = p.parse_args(rest)
    from prism_gui.engine.scale.ranks import launched
    from prism_gui.engine.training.distill import load_distill_file, run_distillation

    spec, tspec = load_distill_file(a.spec)
    from prism_gui.engine.scale.launch import check_processes

    check_processes(a.processes, spec.device)
    if a.processes > 1 and not launched():
        from prism_gui.engine.scale.launch import launch

        tspec.load()
        events = _progress(launch(["distill", a.spec], a.processes))
        print(json.dumps(events[-1].data["result"], indent=2))
        return 0
    teacher = tspec.load()
    if launched():
        from prism_gui.engine.scale.worker import run_rank

        return run_rank(lambda ranks, cancel: run_distillation(spec, teacher=teacher, ranks=ranks, cancel=cancel),
                        spec.device)
    events = _progress(run_distillation(spec, teacher=teacher))
    res = events[-1].data["result"]
    print(json.dumps(res, indent=2))
    return 0


def cmd_cluster(rest):
    p = argparse.ArgumentParser(prog="prism cluster", description="Export a generation or distillation for a "
                                "cluster: the spec plus torchrun, accelerate and SLURM launch scripts.")
    p.add_argument("kind", choices=["generate", "distill"])
    p.add_argument("spec", help="the job's spec file (as for `prism generate` / `prism distill`)")
    p.add_argument("--out", required=True, help="folder to write the spec and scripts into")
    p.add_argument("--nodes", type=int, default=1)
    p.add_argument("--gpus-per-node", type=int, default=1)
    p.add_argument("--cpus-per-task", type=int, default=8, help="CPU cores per node for SLURM")
    p.add_argument("--time", default="24:00:00", help="SLURM time limit")
    a = p.parse_args(rest)
    from prism_gui.engine.generation.job import load_generate_file
    from prism_gui.engine.scale.cluster import export_cluster
    from prism_gui.engine.specs import load_spec
    from prism_gui.engine.training.distill import load_distill_file

    (load_generate_file if a.kind == "generate" else load_distill_file)(a.spec)  # refuse a bad spec now
    paths = export_cluster(a.kind, load_spec(a.spec), a.out, nodes=a.nodes, gpus_per_node=a.gpus_per_node,
                           cpus_per_task=a.cpus_per_task, time=a.time)
    print("\n".join(str(x) for x in paths))
    print(f"edit 'project' in {Path(a.out) / 'spec.json'} to the path the cluster sees, then: sbatch slurm.sbatch")
    return 0


def cmd_evaluate(rest):
    p = argparse.ArgumentParser(prog="prism evaluate", description="Accuracy of a student (or of the teacher) "
                                "on a real held-out set.")
    p.add_argument("spec", help="JSON/TOML: teacher keys, eval (digits-test or a labelled folder), "
                                "[student_dir, eval_mapping, per_class, output, batch_size, workers, device]")
    a = p.parse_args(rest)
    from prism_gui.engine.devices import pick_device
    from prism_gui.engine.specs import SpecError
    from prism_gui.engine.training.evaluate import eval_dataset, evaluate
    from prism_gui.engine.training.export import load_student

    s, tspec = read_job_spec(a.spec, EVALUATE_SETTINGS)
    _check_output_setting(s, a.spec)
    teacher = tspec.load()
    device = pick_device(s.get("device", "auto"))
    teacher.to(device)
    data = eval_dataset(s.get("eval", "digits-test"), teacher, s.get("eval_mapping"))
    if data is None:
        raise SpecError(f"{a.spec}: 'eval' names no set: give 'digits-test' or a labelled image folder")
    student = None
    if s.get("student_dir"):
        student = load_student(s["student_dir"], teacher, s.get("student")).to(device)
    res = evaluate(student, teacher, data, batch_size=s.get("batch_size", 256), workers=s.get("workers"),
                   per_class=bool(s.get("per_class", False)))
    res = {"evaluated": "student" if student is not None else "teacher", **res}
    if s.get("per_class"):  # classes with images only; names can repeat (ImageNet's two "crane"), so keyed rows
        ids = teacher.class_ids or [None] * teacher.num_classes
        res["per_class"] = [{"class": c, "name": teacher.class_names[c], "id": ids[c], "accuracy": acc, "images": n}
                            for c, (acc, n) in enumerate(zip(res.pop("per_class_accuracy"),
                                                             res.pop("per_class_images"), strict=True)) if n]
    print(json.dumps(res, indent=2))
    if s.get("output"):
        Path(s["output"]).write_text(json.dumps(res, indent=2))
    return 0


def _check_output_setting(s: dict, spec_path) -> None:
    """A spec's ``output`` file, refused before the job runs when it would overwrite a project's file
    or the spec itself."""
    from prism_gui.engine.data.guard import check_output

    if s.get("output"):
        check_output(s["output"], inputs=[spec_path], what=f"{spec_path}: 'output'")


def cmd_metrics(rest):
    p = argparse.ArgumentParser(prog="prism metrics", description="Precision/recall of a synthetic set.")
    p.add_argument("spec", help="JSON/TOML: project, reference (digits-test or a labelled folder), teacher keys, "
                                "[runs, statuses, k, mapping, max_real, seed, output]")
    a = p.parse_args(rest)
    from prism_gui.engine.analysis.prdc import catalog_prdc_job
    from prism_gui.engine.specs import SpecError

    s, tspec = read_job_spec(a.spec, METRICS_SETTINGS)
    _check_output_setting(s, a.spec)
    if "project" not in s:
        raise SpecError(f"{a.spec}: needs 'project', the folder of a project with generated images")
    teacher = tspec.load()
    runs = s.get("runs")
    events = _progress(catalog_prdc_job(teacher, s.get("reference", "digits-test"), s["project"],
                                    [runs] if isinstance(runs, str) else runs,
                                    statuses=s.get("statuses", ["unreviewed", "keep"]), k=s.get("k", 5),
                                    mapping=s.get("mapping"), max_real=s.get("max_real"), seed=s.get("seed", 0)))
    res = events[-1].data["results"]
    print(json.dumps(res, indent=2))
    if s.get("output"):
        Path(s["output"]).write_text(json.dumps(res, indent=2))
    return 0


COMMANDS = {"generate": cmd_generate, "distill": cmd_distill, "cluster": cmd_cluster, "evaluate": cmd_evaluate,
            "metrics": cmd_metrics}
