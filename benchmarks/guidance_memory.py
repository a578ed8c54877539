"""Peak memory of one guided step through Stable Diffusion 1.5's VAE decoder (issue 10, memory).

The cheap guided step back-propagates the teacher's energy through the whole VAE decoder; its
saved activations grow 4x per doubling of the image side.  This measures, for one guided step
of a batch of images, the peak resident memory above the loaded models for three settings:
the whole batch at once; ``micro_batch = 1``; ``micro_batch = 1`` with activation checkpointing
through the decoder (``checkpoint_decoder``).  The VAE has SD 1.5's real architecture with random
weights (memory depends on the architecture, not the weights); the UNet and text encoder are tiny
(they do not take part in the cheap step's gradient).  Each setting runs in a fresh process.

    python benchmarks/guidance_memory.py --out benchmarks/results/guidance_memory.json   # ~5 min here
    python benchmarks/guidance_memory.py --quick --out /tmp/g.json                       # smoke test
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SETTINGS = {"whole batch": {}, "micro-batch 1": {"micro_batch": 1},
            "micro-batch 1 + checkpointed decoder": {"micro_batch": 1, "checkpoint_decoder": True}}


def sd15_vae(tiny: bool):
    from diffusers import AutoencoderKL

    if tiny:
        return AutoencoderKL(block_out_channels=(8, 16), down_block_types=["DownEncoderBlock2D"] * 2,
                             up_block_types=["UpDecoderBlock2D"] * 2, latent_channels=4, norm_num_groups=4)
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=32, layers_per_block=2,
                         block_out_channels=(128, 256, 512, 512), down_block_types=["DownEncoderBlock2D"] * 4,
                         up_block_types=["UpDecoderBlock2D"] * 4, sample_size=512)


def run_one(args) -> dict:
    import timm
    import torch
    from diffusers import DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from prism_gui.engine.generation.energies import EnergySpec
    from prism_gui.engine.generation.load import DiffusionComponents
    from prism_gui.engine.generation.sampler import GuidanceSpec, sample
    from prism_gui.engine.teachers.teacher import Teacher
    from tests.tiny_sd import write_tiny_clip_tokenizer

    torch.manual_seed(0)
    torch.set_num_threads(2)
    vae = sd15_vae(args.quick).eval().requires_grad_(False)
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    latent = args.size // factor
    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=latent, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16,
                                attention_head_dim=4, norm_num_groups=4).eval().requires_grad_(False)
    tok_dir = write_tiny_clip_tokenizer(Path(tempfile.mkdtemp()) / "tok")
    tok = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=16)
    te = CLIPTextModel(CLIPTextConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, max_position_embeddings=16, bos_token_id=0,
                                      eos_token_id=1, pad_token_id=1)).eval()
    sched = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False)
    comp = DiffusionComponents(unet=unet, scheduler=sched, text_encoder=te, tokenizer=tok, vae=vae,
                               resolution=args.size)
    model = timm.create_model("test_resnet", num_classes=10).eval().requires_grad_(False)
    teacher = Teacher(model, (3, 160, 160), (0.5,) * 3, (0.5,) * 3, [str(i) for i in range(10)])
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    g = GuidanceSpec(EnergySpec({"class": 1.0}), scale=0.3, **SETTINGS[args.setting])
    t0 = time.time()
    sample(comp, ["a cat"] * args.batch, list(range(args.batch)), steps=1, cfg=1.0, guidance=g, teacher=teacher,
           targets=[1] * args.batch)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"setting": args.setting, "size": args.size, "batch": args.batch, "base_mb": round(base, 1),
            "peak_mb": round(peak, 1), "guided_step_mb": round(peak - base, 1), "seconds": round(time.time() - t0, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "guidance_memory.json")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--size", type=int, default=0)
    p.add_argument("--batch", type=int, default=0)
    p.add_argument("--setting")
    a = p.parse_args(argv)
    if a.setting:
        print(json.dumps(run_one(a)), flush=True)
        return 0
    size = a.size or (32 if a.quick else 256)
    batch = a.batch or (2 if a.quick else 4)
    rows = []
    for name in SETTINGS:
        cmd = [sys.executable, __file__, "--setting", name, "--size", str(size), "--batch", str(batch)]
        r = subprocess.run(cmd + (["--quick"] if a.quick else []), cwd=ROOT, capture_output=True, text=True,
                           env={**os.environ, "HF_HUB_OFFLINE": "1"})
        if r.returncode != 0:
            raise SystemExit(r.stdout + r.stderr)
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    whole = rows[0]["guided_step_mb"]
    for r in rows:
        r["reduction"] = round(whole / max(r["guided_step_mb"], 1e-9), 2)
    out = {"command": "python benchmarks/guidance_memory.py" + (" --quick" if a.quick else ""),
           "vae": "tiny" if a.quick else "SD 1.5 architecture, random weights", "rows": rows,
           "date": time.strftime("%Y-%m-%d")}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2))
    print("written", a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
