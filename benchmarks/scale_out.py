"""Scale-out throughput (issue 11): measured here for the Digits world on 1 and 2 CPU processes,
projected for Stable Diffusion 1.5 on named GPUs from its measured cost in floating-point operations.

Measured (this machine, nothing else running):
- generation: the Digits demo's PRISM settings (30 DDIM steps, CFG 3, cheap class-energy guidance on
  the second half of the trajectory), ``prism generate --processes N`` from the command line, wall
  time including process start-up; images per hour, and per core-hour;
- distillation: ``prism distill --processes N`` on the Digits training split (1,078 images), wall time.
One process uses both cores (2 torch threads); N processes get one thread each (torchrun's default).

Projected (not measured: no GPU here):
- the operations of one SD 1.5 image at 512 px are counted with ``torch.utils.flop_counter`` on the
  real architectures built on the meta device (UNet with CFG per step; the guided steps' tiny-decoder
  and ResNet-50 forward and input-gradient passes; the VAE decode; scoring);
- images per GPU-hour = GPU peak dense bf16 FLOP/s x an assumed utilization / operations per image;
  the utilization is an assumption (a range is given), the peaks are the vendors' datasheet numbers;
- the same count divided by the measured CPU seconds of an unguided step (``results/sd_512.json``) gives
  the FLOP/s this CPU sustains: a check that the count and the measurement agree in scale.

Run: ``python benchmarks/scale_out.py`` (about 10 minutes; ``--quick``: tiny sizes, a smoke run).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

# vendor datasheet peaks, dense bf16 tensor-core FLOP/s (no sparsity)
GPUS = {"NVIDIA H100 SXM": 989.4e12, "NVIDIA A100 SXM": 312e12, "NVIDIA L40S": 362.05e12}
UTILIZATION = (0.25, 0.40, 0.50)  # assumed fraction of peak a UNet/VAE inference batch sustains


def _cli(args, env=None, timeout=3600) -> float:
    t0 = time.time()
    r = subprocess.run([sys.executable, "-m", "prism_gui.cli", *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}, cwd=ROOT)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-3000:])
    return time.time() - t0


def digits_throughput(quick: bool) -> dict:
    from prism_gui.engine.project.demo_settings import demo_settings

    s = demo_settings()
    per_class = 4 if quick else 40
    steps = 4 if quick else s["steps"]
    tmp = Path(tempfile.mkdtemp(prefix="prism-scale-"))
    (tmp / "p.toml").write_text(f'bank = "digits"\nper_class = 10\noutput = "{tmp / "prompts.json"}"\n')
    _cli(["prompts", tmp / "p.toml"])
    out: dict = {"generation": {}, "distillation": {}}
    for n in (1, 2):
        spec = {"project": str(tmp / f"gen{n}"), "run": "a", "images_per_class": per_class, "batch_size": 50,
                "prompts": str(tmp / "prompts.json"), "device": "cpu",
                "sampler": {"steps": steps, "cfg": s["cfg"], "scheduler": s["scheduler"]},
                "guidance": {"scale": s["guidance_scale"], "window": list(s["guidance_window"]),
                             "mode": s["guidance_mode"]}}
        (tmp / f"g{n}.json").write_text(json.dumps(spec))
        env = {} if n == 1 else {"OMP_NUM_THREADS": "1"}
        wall = _cli(["generate", tmp / f"g{n}.json", "--processes", n], env)
        images = 10 * per_class
        out["generation"][str(n)] = {"images": images, "wall_s": round(wall, 1),
                                     "images_per_hour": round(3600 * images / wall),
                                     "images_per_core_hour": round(3600 * images / wall / 2)}
        d = {"data": "digits-train", "eval": "digits-test", "epochs": 2 if quick else 20, "device": "cpu",
             "out_dir": str(tmp / f"d{n}"), "seed": 0}
        (tmp / f"d{n}.json").write_text(json.dumps(d))
        wall = _cli(["distill", tmp / f"d{n}.json", "--processes", n], env)
        res = json.loads((tmp / f"d{n}" / "result.json").read_text())
        out["distillation"][str(n)] = {"epochs": d["epochs"], "wall_s": round(wall, 1),
                                       "test_accuracy": round(res["test_accuracy"], 4)}
    for k in ("generation", "distillation"):
        out[k]["speedup_2_over_1"] = round(out[k]["1"]["wall_s"] / out[k]["2"]["wall_s"], 2)
    out["settings"] = {"steps": steps, "cfg": s["cfg"], "scheduler": s["scheduler"],
                       "guidance_scale": s["guidance_scale"], "guidance_window": list(s["guidance_window"])}
    return out


def sd15_flops(steps: int = 30, window: tuple[float, float] = (0.5, 1.0)) -> dict:
    """Operations of one SD 1.5 image at 512 px, counted on the meta device."""
    import timm
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, AutoencoderTiny, UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    cfg = ROOT / "resources" / "generator_configs" / "sd15"
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(cfg / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(cfg / "vae"))
        taesd = AutoencoderTiny()
    with torch.device("meta"):
        teacher = timm.create_model("resnet50", num_classes=1000).eval().requires_grad_(False)

        def count(fn) -> float:
            with FlopCounterMode(display=False) as fc:
                fn()
            return float(fc.get_total_flops())

        unet_cfg = count(lambda: unet(torch.zeros(2, 4, 64, 64), 500, encoder_hidden_states=torch.zeros(2, 77, 768)))

        def guidance():
            z = torch.zeros(1, 4, 64, 64, requires_grad=True)
            img = torch.nn.functional.interpolate(taesd.decode(z).sample, size=(224, 224), mode="bilinear")
            teacher(img).logsumexp(-1).sum().backward()

        guided = count(guidance)
        decode = count(lambda: vae.decode(torch.zeros(1, 4, 64, 64)))
        score = count(lambda: teacher(torch.zeros(1, 3, 224, 224)))
    guided_steps = round(steps * (window[1] - window[0]))
    per_image = steps * unet_cfg + guided_steps * guided + decode + score
    return {"unet_step_with_cfg": unet_cfg, "guidance_step_tiny_decoder_resnet50": guided, "vae_decode": decode,
            "score_resnet50": score, "steps": steps, "guided_steps": guided_steps, "per_image": per_image,
            "unguided_per_image": steps * unet_cfg + decode + score}


def projection(flops: dict) -> dict:
    out = {}
    for name, peak in GPUS.items():
        out[name] = {f"{int(u * 100)}% of peak": round(3600 * peak * u / flops["per_image"]) for u in UTILIZATION}
    return out


def cpu_check(flops: dict) -> dict | None:
    """FLOP/s this CPU sustained in the measured SD 1.5 step (results/sd_512.json)."""
    path = ROOT / "benchmarks" / "results" / "sd_512.json"
    if not path.exists():
        return None
    s = json.loads(path.read_text())["sd_512"]["seconds_per_step"]["unguided"]
    return {"unguided_step_s": s, "sustained_gflops": round(flops["unet_step_with_cfg"] / s / 1e9, 1)}


def main(argv=None) -> int:
    import argparse

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from benchmarks.perf import load_average, machine

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scale_out.json")
    a = p.parse_args(argv)
    t0 = time.time()
    res = {"command": "python benchmarks/scale_out.py" + (" --quick" if a.quick else ""), "machine": machine(),
           "date": time.strftime("%Y-%m-%d %H:%M"), "load_average_before": load_average(),
           "digits": digits_throughput(a.quick)}
    flops = sd15_flops()
    res["sd15_512"] = {"flops": flops, "tflop_per_image": round(flops["per_image"] / 1e12, 2),
                       "images_per_gpu_hour_projected": projection(flops), "cpu_check": cpu_check(flops),
                       "assumptions": "30 DDIM steps with CFG, cheap guidance through TAESD + ResNet-50 on the "
                                      "second half of the steps, batch large enough to keep the GPU busy, "
                                      "utilization as stated (not measured), dense bf16 datasheet peaks"}
    res["bench_seconds"] = round(time.time() - t0, 1)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
