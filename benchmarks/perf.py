"""Performance suite of the engine: ratios measured side by side in one run.

    python benchmarks/perf.py [--quick] [--out benchmarks/results/perf.json]

Each ratio compares two ways of doing the same work, interleaved (A, B, A, B, ...) and
summarized by the median, so the ratio holds on a noisy machine even when absolute numbers
move.  Run it on an idle machine all the same.

- ``guidance``: guided vs unguided sampling of the Digits prior, cheap mode and exact mode
  (goal: cheap at most 1.5x unguided);
- ``sampler_vs_pipeline``: the engine's sampler at guidance 0 vs ``StableDiffusionPipeline``
  on the same tiny random components, scheduler, steps and CFG (goal: at most 1.05x);
- ``distill``: distillation throughput (images/s) of ``run_distillation`` vs a bare PyTorch
  loop doing the same work (goal: at most 1.1x); and its speed options (issue 10) off and on,
  each alone and all together: fp32 vs bf16 autocast vs channels_last vs ``torch.compile``, on
  the Digits student and (not with ``--quick``) a ResNet-18 student of a ResNet-50 teacher at
  224 px (random weights), in steady-state images/s on this machine's device;
- ``catalog``: insert rate of :meth:`Catalog.add_image` (files + row), and filter/sort query
  times at 100,000 rows (goal: under 100 ms);
- ``sd_512``: Stable Diffusion 1.5's real architecture at 512 px (``benchmarks/sd_generation.py``,
  ~16 min here; also runnable alone): guided vs unguided step time with the full VAE, the
  checkpointed VAE and the tiny decoder (goals: tiny decoder at most 1.3x, full VAE at most 2x),
  guidance memory per image for each, storing behind sampling (goal: within 5%), and by resolution;
- ``sdxl_memory``: SDXL's weights and guidance memory per image at 1024/768/512 px per option, from
  its real architecture on the meta device (seconds; SDXL's time per step is not measured here).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def interleaved(fns: dict, repeat: int) -> dict[str, float]:
    """Median seconds of each callable, run alternately after one warm-up each."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def bench_guidance(quick: bool) -> dict:
    from prism_gui.engine.generation.energies import EnergySpec
    from prism_gui.engine.generation.load import load_generator
    from prism_gui.engine.generation.sampler import GuidanceSpec, sample
    from prism_gui.engine.teachers.load import load_teacher

    comp, teacher = load_generator("digits"), load_teacher("digits")
    n, steps = (20, 10) if quick else (100, 30)
    prompts = [f"the digit {i % 10}" for i in range(n)]
    seeds = list(range(n))
    targets = [i % 10 for i in range(n)]

    def run(mode):
        g = GuidanceSpec(energy=EnergySpec({"class": 1.0}), scale=0.05, mode=mode) if mode else None
        return lambda: sample(comp, prompts, seeds, steps=steps, cfg=3.0, guidance=g, teacher=teacher,
                              targets=targets)

    t = interleaved({"unguided": run(None), "cheap": run("cheap"), "exact": run("exact")}, 2 if quick else 5)
    return {"images": n, "steps": steps, "seconds": t, "cheap_over_unguided": t["cheap"] / t["unguided"],
            "exact_over_unguided": t["exact"] / t["unguided"], "goal_cheap_over_unguided": 1.5}


def bench_sampler_vs_pipeline(quick: bool) -> dict:
    from diffusers import StableDiffusionPipeline

    from prism_gui.engine.generation.load import load_generator
    from prism_gui.engine.generation.sampler import sample
    from tests.tiny_sd import build_tiny_sd

    folder = build_tiny_sd(Path(tempfile.mkdtemp(prefix="prism-perf-sd-")))
    comp = load_generator(folder)
    pipe = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    n, steps = (4, 10) if quick else (16, 30)
    prompts = ["a photo of a cat"] * n
    seeds = list(range(n))

    def engine():
        sample(comp, prompts, seeds, steps=steps, cfg=5.0, scheduler=None)

    def pipeline():
        gens = [torch.Generator("cpu").manual_seed(s) for s in seeds]
        pipe(prompts, num_inference_steps=steps, guidance_scale=5.0, generator=gens, output_type="pt")

    t = interleaved({"engine": engine, "pipeline": pipeline}, 3 if quick else 11)
    return {"images": n, "steps": steps, "seconds": t, "engine_over_pipeline": t["engine"] / t["pipeline"],
            "goal": 1.05}


def bench_distill(quick: bool) -> dict:
    from prism_gui.engine.teachers.load import load_teacher
    from prism_gui.engine.training.distill import DistillSpec, kd_loss, make_student, run_distillation

    teacher = load_teacher("digits")
    n, epochs, bs = (512, 1, 64) if quick else (2000, 3, 64)
    x = torch.rand(n, 1, 8, 8) * 2 - 1
    spec = DistillSpec(epochs=epochs, batch_size=bs, eval="", augment=False, device="cpu")

    def engine():
        for _ in run_distillation(spec, teacher=teacher, images=x):
            pass

    def bare():  # the same work, written as the shortest plain PyTorch loop
        torch.manual_seed(0)
        student = make_student("digits_student", teacher)
        opt = torch.optim.AdamW(student.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=spec.lr, total_steps=epochs * -(-n // bs),
                                                    pct_start=0.15)
        gen = torch.Generator().manual_seed(0)
        for _ in range(epochs):
            student.train()
            perm = torch.randperm(n, generator=gen)
            for i in range(0, n, bs):
                xb = teacher.preprocess(x[perm[i : i + bs]])
                with torch.no_grad():
                    t = teacher.model(xb)
                loss = kd_loss(student(xb), t, spec.temperature)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                loss.item()

    t = interleaved({"engine": engine, "bare": bare}, 2 if quick else 5)
    ips = {k: n * epochs / v for k, v in t.items()}
    res = {"images": n, "epochs": epochs, "batch_size": bs, "seconds": t, "images_per_s": ips,
           "engine_time_over_bare": t["engine"] / t["bare"], "goal": 1.1}
    res["speed_options"] = bench_distill_speed(quick, teacher)
    return res


# the speed options of DistillSpec, each alone and all together (fp16 needs a CUDA GPU: not on the CPU)
SPEED_CONFIGS = {"fp32": {"precision": "fp32", "channels_last": False}, "bf16": {"precision": "bf16"},
                 "channels_last": {"channels_last": True}, "compile": {"compile": True},
                 "all": {"precision": "bf16", "channels_last": True, "compile": True}}


def _step_seconds(spec, teacher, x) -> list[float]:
    from prism_gui.engine.training.distill import run_distillation

    stamps = [time.perf_counter()]
    for ev in run_distillation(spec, teacher=teacher, images=x):
        if "loss" in ev.data:
            stamps.append(time.perf_counter())
    return np.diff(stamps).tolist()


def speed_options(student: str, teacher, x: torch.Tensor, batch_size: int, configs: dict, rounds: int,
                  warm: int) -> dict:
    """Steady-state images/s of each speed setting: median step time over ``rounds`` runs per
    setting, interleaved, without each run's first ``warm`` steps (``first_step_s``: the first
    step of the first run, compilation included)."""
    from prism_gui.engine.devices import pick_device
    from prism_gui.engine.training.distill import DistillSpec

    device = pick_device("auto")
    steps: dict[str, list[float]] = {k: [] for k in configs}
    first: dict[str, float] = {}
    for r in range(rounds):
        for k, kw in configs.items():
            base = {"precision": "fp32", "channels_last": False, "compile": False}
            spec = DistillSpec(student=student, epochs=1, batch_size=batch_size, eval="", augment=False,
                               device=device.type, **{**base, **kw})
            d = _step_seconds(spec, teacher, x)
            if r == 0:
                first[k] = round(d[0], 3)
            steps[k] += d[warm:]
            print(f"  {student} {k} round {r + 1}/{rounds}: first step {d[0]:.2f} s, then "
                  f"{batch_size / statistics.median(d[warm:]):.1f} images/s", flush=True)
    ips = {k: batch_size / statistics.median(v) for k, v in steps.items()}
    return {"student": student, "teacher": teacher.architecture or teacher.source,
            "input_size": list(teacher.input_size), "batch_size": batch_size, "steps_per_run": len(x) // batch_size,
            "warm_steps": warm, "rounds": rounds, "device": str(device), "settings": configs,
            "images_per_s": {k: round(v, 1) for k, v in ips.items()},
            "over_fp32": {k: round(v / ips["fp32"], 3) for k, v in ips.items()}, "first_step_s": first}


def bench_distill_speed(quick: bool, digits_teacher) -> dict:
    import timm

    from prism_gui.engine.devices import pick_device
    from prism_gui.engine.teachers.teacher import Teacher

    g = torch.Generator().manual_seed(0)
    cuda = pick_device("auto").type == "cuda"
    configs = {**SPEED_CONFIGS, **({"fp16": {"precision": "fp16"}} if cuda else {})}
    # --quick: no compile (its first step compiles for ~30 s on the CPU) and no ResNet
    configs = {k: v for k, v in configs.items() if not (quick and v.get("compile"))}
    n = 512 if quick else 2048
    res = {"digits": speed_options("digits_student", digits_teacher, torch.rand(n, 1, 8, 8, generator=g) * 2 - 1,
                                   64, configs, 1 if quick else 3, 2 if quick else 4)}
    if not quick:
        torch.manual_seed(0)
        model = timm.create_model("resnet50", num_classes=1000).eval().requires_grad_(False)
        teacher = Teacher(model, (3, 224, 224), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
                          [f"class {i}" for i in range(1000)], architecture="resnet50")
        bs, steps = 16, 6
        x = torch.rand(bs * steps, 3, 224, 224, generator=g) * 2 - 1
        res["resnet18_224"] = speed_options("resnet18", teacher, x, bs, configs, 2, 2)
    res["compiler_cache"] = COMPILER_CACHE
    if not cuda:
        res["note"] = ("measured on the CPU: they say what the settings do on this machine only; the GPU gains "
                       "(AMP and channels_last on tensor cores, compile) can only be confirmed on a GPU")
    return res


def bench_catalog(quick: bool) -> dict:
    from prism_gui.engine.data.catalog import Catalog

    root = Path(tempfile.mkdtemp(prefix="prism-perf-cat-"))
    n_files = 100 if quick else 1000
    n_rows = 5_000 if quick else 100_000
    rng = np.random.default_rng(0)
    score = {"energy": 1.0, "energies": {"class": 1.0, "free": -3.0, "bn": 0.5}, "top5": [[1, 0.9]],
             "confidence": 0.9, "entropy": 0.3, "correct": True}
    with Catalog(root) as cat:
        img = (rng.random((8, 8, 1)) * 255).astype(np.uint8)
        t0 = time.perf_counter()
        for i in range(n_files):
            cat.add_image("files", i, img, class_index=i % 10, class_name=str(i % 10), prompt="the digit 1",
                          seed=i, generator="digits", settings={"steps": 30}, score=score)
        insert_rate = n_files / (time.perf_counter() - t0)
        # the remaining rows in bulk (same columns, no files): the query benchmark needs their count only
        now = time.time()
        rows = [("bulk", i, i % 10, str(i % 10), f"a {'bold' if i % 3 else 'thin'} digit {i % 10}", "", 10**7 + i,
                 "digits", "{}", float(rng.normal()), float(rng.normal()), float(rng.normal()), 0.0, "{}", "[]",
                 float(rng.random()), 0.5, i % 2, f"images/bulk/{i}.png", f"thumbs/bulk/{i}.png", 8, 8, now, now)
                for i in range(n_rows - n_files)]
        with cat._conn:
            cat._conn.executemany(
                "INSERT INTO images (run, item, class_index, class_name, prompt, negative_prompt, seed, generator,"
                " settings, energy, energy_class, energy_free, energy_bn, energies, top5, confidence, entropy,"
                " correct, path, thumb, width, height, created, updated) VALUES "
                "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        queries = {
            "sort_by_energy_ids": lambda: cat.ids(sort="energy"),
            "class_filter_sorted_by_energy_ids": lambda: cat.ids(classes=[3], sort="energy"),
            "status_and_energy_filter_ids": lambda: cat.ids(statuses=["unreviewed"], energy_max=0.0,
                                                            sort="confidence", descending=True),
            "prompt_text_filter_ids": lambda: cat.ids(text="bold", sort="energy"),
            "confidence_range_sorted_by_entropy_ids": lambda: cat.ids(confidence_min=0.2, confidence_max=0.9,
                                                                      sort="entropy"),
            "first_page_sorted_by_confidence": lambda: cat.query(sort="confidence", limit=200),
            "count_class_filter": lambda: cat.count(classes=[3, 4], statuses=["unreviewed", "keep"]),
        }
        ms = {k: 1000 * v for k, v in interleaved(queries, 3 if quick else 7).items()}
        total = cat.count()
    return {"rows": total, "files_written": n_files, "insert_images_per_s": insert_rate, "query_ms": ms,
            "slowest_query_ms": max(ms.values()), "goal_ms": 100}


def machine() -> dict:
    return {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "processor": platform.processor() or platform.machine()}


COMPILER_CACHE = "torch.compile's usual cache folder (--quick compiles nothing)"


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none)."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def bench_sd_512(quick: bool) -> dict:
    from benchmarks.sd_generation import bench_sd_generation

    return bench_sd_generation(quick)


def bench_sdxl_memory(quick: bool) -> dict:
    from benchmarks.sd_generation import bench_sdxl_memory as run

    return run(quick)


BENCHES = {"guidance": bench_guidance, "sampler_vs_pipeline": bench_sampler_vs_pipeline, "distill": bench_distill,
           "catalog": bench_catalog, "sd_512": bench_sd_512, "sdxl_memory": bench_sdxl_memory}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes (used by the test suite)")
    p.add_argument("--only", nargs="*", choices=sorted(BENCHES), help="run only these")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "perf.json")
    a = p.parse_args(argv)
    global COMPILER_CACHE
    if "TORCHINDUCTOR_CACHE_DIR" in os.environ:
        COMPILER_CACHE = f"given: {os.environ['TORCHINDUCTOR_CACHE_DIR']}"
    elif not a.quick:  # before anything compiles or reads the cache
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="prism-perf-inductor-")
        COMPILER_CACHE = "cold: a new TORCHINDUCTOR_CACHE_DIR, so first_step_s is a first run's compilation"
    args = sys.argv[1:] if argv is None else list(argv)
    res = {"command": " ".join(["python benchmarks/perf.py", *args]), "machine": machine(),
           "date": time.strftime("%Y-%m-%d %H:%M")}
    for name in a.only or BENCHES:
        t0 = time.time()
        load = load_average()  # other work on the machine slows every number here: this says how much there was
        res[name] = BENCHES[name](a.quick)
        res[name]["bench_seconds"] = round(time.time() - t0, 1)
        res[name]["load_average_1min"] = {"start": load, "end": load_average()}
        print(name, json.dumps(res[name], indent=1), flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2))
    print("wrote", a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
