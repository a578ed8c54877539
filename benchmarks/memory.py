"""Peak memory of distillation, evaluation and metrics as the catalog grows (streaming, issue 9).

Builds one project of 256-px RGB images in three runs (1,000 + 4,000 + 15,000), then runs each
stage in a fresh process on 1,000, 5,000 and 20,000 of them and records the peak resident memory
(``ru_maxrss``) and the resident memory after imports and model loading, so the growth is the
stage's own.  Teacher: a random 1,000-class timm ``test_resnet`` at 160 px (the shape of an
ImageNet job; weights do not change memory).  Student: ``test_resnet``.  Also measures the
chunked P/R/D/C on random features at growing sizes, for the 50,000 x 100,000 extrapolation.

    python benchmarks/memory.py --out benchmarks/results/memory.json        # ~25 min here
    python benchmarks/memory.py --quick --out /tmp/memory.json              # a smoke run (tests)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RUNS = (("a", 1000), ("b", 4000), ("c", 15000))


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def build_project(folder: Path, runs, size: int) -> None:
    from prism_gui.engine.data.catalog import Catalog

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    with Catalog(folder) as cat:
        item = 0
        for run, n in runs:
            cat.start_run(run, "generate", {"benchmark": True})
            for _ in range(n):
                c = rng.uniform(0, 255, 3)
                img = (c * (0.5 + 0.5 * np.sin(6 * xx[..., None] * rng.uniform(0.5, 2) + yy[..., None]))
                       ).astype(np.uint8)
                sc = {"energy": float(rng.uniform(0, 3)), "energies": {"class": 1.0}, "top5": [[0, 0.5]],
                      "confidence": 0.5, "entropy": 1.0, "correct": False}
                cat.add_image(run, item, img, class_index=int(rng.integers(1000)), class_name="c", prompt="p",
                              seed=item, generator="benchmark", settings={}, score=sc)
                item += 1
            cat.finish_run(run)


def teacher_files(folder: Path) -> Path:
    import safetensors.torch
    import timm
    import torch

    torch.manual_seed(0)
    m = timm.create_model("test_resnet", num_classes=1000)
    path = folder / "teacher.safetensors"
    safetensors.torch.save_file(m.state_dict(), str(path))
    return path


def stage(args) -> dict:
    """One stage in this (fresh) process; prints a JSON line."""
    import torch

    from prism_gui.engine.teachers.spec import TeacherSpec

    torch.set_num_threads(2)
    teacher = TeacherSpec("test_resnet", checkpoint=args.teacher).load()
    runs = args.runs.split(",")
    t0 = time.time()
    if args.stage == "distill":
        from prism_gui.engine.training.distill import DistillSpec, run_distillation

        spec = DistillSpec(teacher={"source": "test_resnet", "checkpoint": args.teacher}, student="test_resnet",
                           project=args.project, runs=runs, epochs=1, batch_size=64, eval="", workers=0,
                           augment=True, device="cpu")
        base = rss_mb()
        for _ in run_distillation(spec, teacher=teacher):
            pass
    elif args.stage == "evaluate":
        from prism_gui.engine.data.datasets import catalog_dataset
        from prism_gui.engine.training.evaluate import evaluate

        ds = catalog_dataset(args.project, teacher, run=runs)
        base = rss_mb()
        evaluate(None, teacher, ds, batch_size=128, workers=0)
    elif args.stage == "metrics":  # what catalog_prdc_job does, on the growing set as one synthetic set
        from prism_gui.engine.analysis.prdc import prdc_per_class, teacher_features
        from prism_gui.engine.data.datasets import catalog_dataset

        ref = catalog_dataset(args.project, teacher, run=["a"])  # the first run stands in for the real set
        fake = catalog_dataset(args.project, teacher, run=runs)
        base = rss_mb()
        prdc_per_class(teacher_features(teacher, ref, workers=0), ref.labels,
                       teacher_features(teacher, fake, workers=0), fake.labels, k=5)
    else:
        raise SystemExit(f"unknown stage {args.stage}")
    return {"stage": args.stage, "images": args.images, "base_mb": round(base, 1), "peak_mb": round(peak_mb(), 1),
            "seconds": round(time.time() - t0, 1)}


def prdc_scaling(sizes, dim: int) -> list[dict]:
    out = []
    for n_real, n_fake in sizes:
        code = (
            "import time, numpy as np, torch, resource, json\n"
            "from prism_gui.engine.analysis.prdc import prdc\n"
            f"rng = np.random.default_rng(0); r = rng.normal(size=({n_real}, {dim})).astype(np.float32)\n"
            f"f = rng.normal(size=({n_fake}, {dim})).astype(np.float32)\n"
            "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
            "t0 = time.time(); m = prdc(r, f, 5)\n"
            "print(json.dumps({'seconds': round(time.time() - t0, 1), 'base_mb': round(base, 1), "
            "'peak_mb': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))\n")
        r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
        res = json.loads(r.stdout.strip().splitlines()[-1])
        out.append({"real": n_real, "fake": n_fake, "dim": dim, **res})
        print(out[-1], flush=True)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "memory.json")
    p.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    p.add_argument("--stage")
    p.add_argument("--project")
    p.add_argument("--teacher")
    p.add_argument("--runs")
    p.add_argument("--images", type=int, default=0)
    a = p.parse_args(argv)
    if a.stage:
        print(json.dumps(stage(a)), flush=True)
        return 0
    runs = (("a", 12), ("b", 12), ("c", 24)) if a.quick else RUNS
    size = 32 if a.quick else 256
    with tempfile.TemporaryDirectory(prefix="prism-mem-") as tmp:
        tmp = Path(tmp)
        t0 = time.time()
        build_project(tmp / "proj", runs, size)
        build_s = time.time() - t0
        ck = teacher_files(tmp)
        results = []
        cumulative = []
        for i in range(len(runs)):
            names = ",".join(r for r, _ in runs[: i + 1])
            n = sum(k for _, k in runs[: i + 1])
            cumulative.append(n)
            for st in ("distill", "evaluate", "metrics"):
                r = subprocess.run([sys.executable, __file__, "--stage", st, "--project", str(tmp / "proj"),
                                    "--teacher", str(ck), "--runs", names, "--images", str(n)], cwd=ROOT,
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    raise SystemExit(r.stdout + r.stderr)
                results.append(json.loads(r.stdout.strip().splitlines()[-1]))
                print(results[-1], flush=True)
    sizes = [(200, 400), (400, 800)] if a.quick else [(2500, 5000), (5000, 10000), (10000, 20000)]
    scaling = prdc_scaling(sizes, 64 if a.quick else 512)
    out = {"command": "python benchmarks/memory.py" + (" --quick" if a.quick else ""), "image_size": size,
           "catalog_build_seconds": round(build_s, 1), "stages": results, "prdc": scaling,
           "machine": f"{os.cpu_count()} CPU cores", "date": time.strftime("%Y-%m-%d")}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2))
    print(f"written {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
