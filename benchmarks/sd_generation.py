"""Stable Diffusion 1.5 at 512 px: what guidance costs in time and memory, and whether storing
images hides behind sampling (issue 10).  Part of ``benchmarks/perf.py`` (``sd_512``).

The models have SD 1.5's real architecture (UNet, VAE, CLIP text encoder, built from the configs
the project ships in ``resources/generator_configs/sd15``) with random weights, the teacher is
timm's ResNet-50 with random weights, the tiny decoder has TAESD's architecture (diffusers'
``AutoencoderTiny()``): cost and memory depend on the architecture, not on the weights.

- time per denoising step of one image (CFG, so the UNet sees two), unguided and with cheap
  guidance through the full VAE, the checkpointed VAE and the tiny decoder; ratios to unguided;
- memory of the guidance gradient per image for each option, from ``memory.estimate`` (meta
  device), with the reduction factors;
- storing: the wall time of a generation job (sampling, scoring and storing 512-px PNGs and
  thumbnails through the writer thread) against sampling the same images alone.

``--quick`` runs the same code on tiny random components (the test suite's smoke run).
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def sd15_components(quick: bool, tmp: Path):
    from transformers import CLIPTokenizer

    from prism_gui.engine.generation.load import DiffusionComponents, load_generator

    if quick:
        from tests.tiny_sd import build_tiny_sd

        return load_generator(build_tiny_sd(tmp, real_tokenizer=True))
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    cfg = ROOT / "resources" / "generator_configs" / "sd15"
    bpe = ROOT / "resources" / "generator_configs" / "clip_bpe"
    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(cfg / "unet"))
    vae = AutoencoderKL.from_config(AutoencoderKL.load_config(cfg / "vae"))
    te = CLIPTextModel(CLIPTextConfig.from_pretrained(cfg / "text_encoder"))
    tok = CLIPTokenizer(str(bpe / "vocab.json"), str(bpe / "merges.txt"), model_max_length=77)
    sched = DDIMScheduler.from_config(DDIMScheduler.load_config(cfg / "scheduler"))
    for m in (unet, vae, te):
        m.eval().requires_grad_(False)
    return DiffusionComponents(unet=unet, scheduler=sched, text_encoder=te, tokenizer=tok, vae=vae,
                               source="sd15 architecture, random weights", resolution=512)


def tiny_decoder(quick: bool, tmp: Path) -> Path:
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    if quick:
        d = AutoencoderTiny(latent_channels=4, encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8),
                            num_encoder_blocks=(1, 1), num_decoder_blocks=(1, 1), upsampling_scaling_factor=2)
    else:
        d = AutoencoderTiny()  # TAESD's architecture
    d.save_pretrained(tmp / "taesd")
    return tmp / "taesd"


def teacher_model(quick: bool):
    import timm

    from prism_gui.engine.teachers.teacher import Teacher

    torch.manual_seed(0)
    arch, size = ("resnet18", 64) if quick else ("resnet50", 224)
    model = timm.create_model(arch, num_classes=1000).eval().requires_grad_(False)
    return Teacher(model, (3, size, size), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
                   [f"class {i}" for i in range(1000)])


def bench_sd_generation(quick: bool) -> dict:
    from prism_gui.engine.generation.energies import EnergySpec
    from prism_gui.engine.generation.memory import MiB, estimate
    from prism_gui.engine.generation.sampler import GuidanceSpec, SamplerSettings, sample_steps

    tmp = Path(tempfile.mkdtemp(prefix="prism-sd512-"))
    t0 = time.perf_counter()
    comp = sd15_components(quick, tmp)
    teacher = teacher_model(quick)
    taesd = tiny_decoder(quick, tmp)
    build_s = time.perf_counter() - t0
    steps = 2
    settings = SamplerSettings(steps=steps, cfg=3.0)
    energy = EnergySpec({"class": 1.0})
    options = {
        "unguided": GuidanceSpec(energy, scale=0.0),
        "cheap, full VAE": GuidanceSpec(energy, scale=0.3),
        "cheap, full VAE checkpointed": GuidanceSpec(energy, scale=0.3, checkpoint_decoder=True),
        "cheap, tiny decoder": GuidanceSpec(energy, scale=0.3, decoder=str(taesd)),
    }

    def run(g):
        for _ in sample_steps(comp, ["a photo of a goldfish"], [0], settings, guidance=g, teacher=teacher,
                              targets=[1]):
            pass

    run(options["unguided"])  # warm-up
    times: dict[str, list[float]] = {k: [] for k in options}
    for _ in range(1 if not quick else 2):
        for name, g in options.items():
            t = time.perf_counter()
            run(g)
            times[name].append((time.perf_counter() - t) / steps)
    per_step = {k: statistics.median(v) for k, v in times.items()}
    base = per_step["unguided"]
    res: dict = {"models": comp.source if not quick else "tiny random SD", "teacher": "resnet50" if not quick
                 else "resnet18", "resolution": comp.resolution, "cfg": 3.0, "build_seconds": round(build_s, 1),
                 "seconds_per_step": {k: round(v, 3) for k, v in per_step.items()},
                 "ratio_to_unguided": {k: round(v / base, 2) for k, v in per_step.items()}}
    mem = {k: estimate(comp, teacher, settings, g, 1) for k, g in options.items() if g.on}
    full = mem["cheap, full VAE"].guidance_per_image
    res["guidance_memory_per_image_mib"] = {k: round(m.guidance_per_image / MiB, 1) for k, m in mem.items()}
    res["guidance_memory_reduction"] = {k: round(full / m.guidance_per_image, 1) for k, m in mem.items()}
    res["weights_mib"] = round(mem["cheap, full VAE"].weights / MiB, 1)
    res["by_resolution"] = bench_resolution(comp, teacher, options["cheap, full VAE"])
    res["storing"] = bench_storing(comp, teacher, tmp)
    return res


def bench_resolution(comp, teacher, guided) -> dict:
    """What generating below the native size saves: an unguided step's time and the guidance
    gradient's memory per image, at the native size and smaller ones."""
    from prism_gui.engine.generation.memory import MiB, estimate
    from prism_gui.engine.generation.sampler import SamplerSettings, sample_steps

    sizes = [comp.resolution, comp.resolution * 3 // 4, comp.resolution // 2]
    sizes = [s - s % comp.vae_scale for s in sizes]
    out = {}
    for size in sizes:
        settings = SamplerSettings(steps=1, cfg=3.0, resolution=size)
        runs = []
        for _ in range(2):
            t = time.perf_counter()
            for _ in sample_steps(comp, ["a photo of a goldfish"], [0], settings):
                pass
            runs.append(time.perf_counter() - t)
        est = estimate(comp, teacher, settings, guided, 1)
        out[str(size)] = {"unguided_1_step_and_decode_s": round(min(runs), 3),
                          "guidance_memory_per_image_mib": round(est.guidance_per_image / MiB, 1)}
    return out


def bench_storing(comp, teacher, tmp: Path) -> dict:
    """A generation job (sample, score, store PNG + thumbnail in the writer thread) against
    sampling the same images alone: storing is hidden when the two take the same time."""
    from prism_gui.engine.data.catalog import Catalog
    from prism_gui.engine.data.imaging import to_uint8
    from prism_gui.engine.generation.job import GenerateSpec, plan, run_generation
    from prism_gui.engine.generation.sampler import SamplerSettings, sample_steps
    from prism_gui.engine.prompts import load_bank, plain_prompts

    per_class = 2
    names = ["class 0", "class 1"]
    prompts = plain_prompts(names, load_bank("natural"))
    t2 = _two_class_teacher(teacher, names)
    settings = SamplerSettings(steps=1, cfg=3.0)
    spec = GenerateSpec(project=str(tmp / "proj"), run="store", generator="unused", teacher="digits",
                        images_per_class=per_class, batch_size=1, sampler=settings)
    items = plan(prompts, per_class, 0)

    def sample_only():
        for it in items:
            for _ in sample_steps(comp, [it[2]], [it[4]], settings):
                pass

    def job(i):
        for _ in run_generation(dataclasses.replace(spec, run=f"store-{i}"), prompts, teacher=t2, components=comp):
            pass

    sample_only()  # warm-up
    a, b = [], []
    for i in range(2):
        t = time.perf_counter()
        sample_only()
        a.append(time.perf_counter() - t)
        t = time.perf_counter()
        job(i)
        b.append(time.perf_counter() - t)
    sa, sb = statistics.median(a), statistics.median(b)
    with Catalog(tmp / "proj") as cat:
        u8 = to_uint8(cat.load_images(run="store-0")[0][:1])[0]
    with Catalog(tmp / "store-timing") as cat:
        cat.start_run("t", "generate", {}, {})
        t = time.perf_counter()
        for k in range(3):
            cat.add_image("t", k, u8, class_index=0, class_name=names[0], prompt="p", seed=k, generator="g",
                          settings={}, score={"energy": 0.0, "energies": {}, "top5": [], "confidence": 0.0,
                                              "entropy": 0.0, "correct": True})
    store_s = (time.perf_counter() - t) / 3
    return {"images": len(items), "image_size": int(u8.shape[0]), "sampling_alone_s": round(sa, 2),
            "job_with_scoring_and_storing_s": round(sb, 2), "ratio": round(sb / sa, 3),
            "store_seconds_per_image": round(store_s, 3)}


def _two_class_teacher(teacher, names):
    """The benchmark's teacher restricted to as many classes as the job's prompt set."""
    from prism_gui.engine.teachers.teacher import Teacher

    head = torch.nn.Sequential(teacher.model, _Take(len(names)))
    return Teacher(head.eval(), teacher.input_size, teacher.mean, teacher.std, names)


class _Take(torch.nn.Module):
    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def forward(self, x):
        return x[:, : self.k]


def bench_sdxl_memory(quick: bool) -> dict:
    """SDXL's memory, from its real architecture built on the meta device (no weights allocated,
    so it runs anywhere in seconds): the weights, and the guidance gradient's activations per image
    at 1024 (native), 768 and 512 px for the full VAE, the checkpointed VAE and a TAESDXL-shaped
    tiny decoder.  The time per step of SDXL is not measured on this 2-core CPU."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from prism_gui.engine.generation.energies import EnergySpec
    from prism_gui.engine.generation.load import DiffusionComponents
    from prism_gui.engine.generation.memory import MiB, estimate
    from prism_gui.engine.generation.sampler import GuidanceSpec, SamplerSettings

    if quick:
        return {"skipped": "quick run"}
    cfg = ROOT / "resources" / "generator_configs" / "sdxl"
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(cfg / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(cfg / "vae"))
        te = CLIPTextModel(CLIPTextConfig.from_pretrained(cfg / "text_encoder"))
        te2 = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(cfg / "text_encoder_2"))
    comp = DiffusionComponents(unet=unet, scheduler=EulerDiscreteScheduler.from_config(
        EulerDiscreteScheduler.load_config(cfg / "scheduler")), text_encoder=te, tokenizer=None, vae=vae,
        resolution=1024, family="sdxl", text_encoder_2=te2, tokenizer_2=None)
    tmp = Path(tempfile.mkdtemp(prefix="prism-sdxl-"))
    teacher = teacher_model(False)
    taesd = tiny_decoder(False, tmp)
    energy = EnergySpec({"class": 1.0})
    options = {"cheap, full VAE": GuidanceSpec(energy, scale=0.3),
               "cheap, full VAE checkpointed": GuidanceSpec(energy, scale=0.3, checkpoint_decoder=True),
               "cheap, tiny decoder": GuidanceSpec(energy, scale=0.3, decoder=str(taesd))}
    out: dict = {"models": "SDXL base architecture (shipped configs), meta device", "teacher": "resnet50"}
    for size in (1024, 768, 512):
        settings = SamplerSettings(steps=1, resolution=size)
        out[str(size)] = {k: round(estimate(comp, teacher, settings, g, 1).guidance_per_image / MiB, 1)
                          for k, g in options.items()}
    w = estimate(comp, teacher, SamplerSettings(steps=1), options["cheap, full VAE"], 1)
    out["weights_fp32_mib"] = round(w.weights / MiB, 1)
    out["generator_weights_fp16_mib"] = round(sum(p.numel() * 2 for m in comp.models()
                                                  for p in m.parameters()) / MiB, 1)
    return out


def main(argv=None) -> int:
    import argparse
    import json
    import os

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from benchmarks.perf import machine

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny random components (smoke test)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "sd_512.json")
    a = p.parse_args(argv)
    t0 = time.time()
    res = {"command": "python benchmarks/sd_generation.py" + (" --quick" if a.quick else ""), "machine": machine(),
           "date": time.strftime("%Y-%m-%d %H:%M"), "sd_512": bench_sd_generation(a.quick)}
    res["bench_seconds"] = round(time.time() - t0, 1)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
