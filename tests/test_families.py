"""Generator families beside the one sampler: SD v-prediction, SDXL, LCM, Turbo.

Each family's unguided images equal its diffusers pipeline's at the same seeds (tiny random
components of the real structure), and energy guidance lowers the teacher's energy on it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from prism_gui.engine.generation.energies import EnergySpec
from prism_gui.engine.generation.families import describe, uses_cfg
from prism_gui.engine.generation.load import load_generator
from prism_gui.engine.generation.sampler import GuidanceSpec, sample
from tests.guidance_reference import smooth_teacher
from tests.tiny_sd import build_tiny_lcm, build_tiny_sd, build_tiny_sdxl, build_tiny_turbo

PROMPTS = ["a cat", "a red car", "a dog"]
SEEDS = [7, 8, 9]
TARGETS = [0, 1, 2]


def _gens():
    return [torch.Generator().manual_seed(s) for s in SEEDS]


def _max_8bit_diff(ours, ref01) -> int:
    a = (((ours + 1) / 2).clamp(0, 1) * 255).round()
    b = (ref01.clamp(0, 1) * 255).round()
    return int((a - b).abs().max())


@pytest.fixture(scope="module")
def teacher():
    return smooth_teacher()


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory):
    return build_tiny_sdxl(tmp_path_factory.mktemp("sdxl"))


@pytest.fixture(scope="module")
def lcm(tmp_path_factory):
    return build_tiny_lcm(tmp_path_factory.mktemp("lcm"))


@pytest.fixture(scope="module")
def turbo(tmp_path_factory):
    return build_tiny_turbo(tmp_path_factory.mktemp("turbo"))


@pytest.fixture(scope="module")
def sd_v(tmp_path_factory):
    """SD 2.x-shaped: v-prediction in the generator's own scheduler config."""
    import json

    src = build_tiny_sd(tmp_path_factory.mktemp("sdv"))
    p = src / "scheduler" / "scheduler_config.json"
    p.write_text(json.dumps({**json.loads(p.read_text()), "prediction_type": "v_prediction"}))
    return src


def _pipe(cls_name, folder):
    import diffusers

    kw = {"safety_checker": None, "requires_safety_checker": False} if cls_name != "StableDiffusionXLPipeline" else {}
    p = getattr(diffusers, cls_name).from_pretrained(folder, **kw)
    p.set_progress_bar_config(disable=True)
    return p


def _class_energy(teacher, images):
    return F.cross_entropy(teacher.logits(images), torch.as_tensor(TARGETS), reduction="none")


# ------------------------------------------------------------------ parity with the pipelines
def test_sd_v_prediction_equals_its_pipeline(sd_v):
    comp = load_generator(sd_v)
    assert comp.family == "sd" and "v-prediction" in describe(comp)
    ref = _pipe("StableDiffusionPipeline", sd_v)(PROMPTS, num_inference_steps=5, guidance_scale=2.5,
                                                   output_type="pt", generator=_gens()).images
    ours = sample(comp, PROMPTS, SEEDS, steps=5, cfg=2.5, scheduler=None)
    assert _max_8bit_diff(ours, ref) <= 1


@pytest.mark.parametrize("negative", [None, ["blurry", "", "a dark photo"]], ids=["zero-negatives", "negatives"])
def test_sdxl_equals_its_pipeline(sdxl, negative):
    comp = load_generator(sdxl)
    assert comp.family == "sdxl" and comp.text_encoder_2 is not None and comp.force_zeros_for_empty_prompt
    pipe = _pipe("StableDiffusionXLPipeline", sdxl)
    if negative is None:
        ref = pipe(PROMPTS, num_inference_steps=4, guidance_scale=3.0, output_type="pt", generator=_gens()).images
    else:  # the pipeline encodes an explicit "" (no zeroing), so compare row by row as a user runs it
        ref = torch.cat([pipe(p, negative_prompt=(n or None), num_inference_steps=4, guidance_scale=3.0,
                              output_type="pt", generator=torch.Generator().manual_seed(s)).images
                         for p, n, s in zip(PROMPTS, negative, SEEDS, strict=True)])
    ours = sample(comp, PROMPTS, SEEDS, steps=4, cfg=3.0, scheduler=None, negative_prompts=negative)
    assert _max_8bit_diff(ours, ref) <= 1


def test_sdxl_size_conditioning_follows_the_chosen_resolution(sdxl):
    comp = load_generator(sdxl)
    pipe = _pipe("StableDiffusionXLPipeline", sdxl)
    ref = pipe(PROMPTS, height=24, width=24, num_inference_steps=3, guidance_scale=3.0, output_type="pt",
               generator=_gens()).images
    from prism_gui.engine.generation.sampler import SamplerSettings, sample_steps

    *_, last = sample_steps(comp, PROMPTS, SEEDS, SamplerSettings(steps=3, cfg=3.0, scheduler=None, resolution=24))
    ours = last.data["images"]
    assert ours.shape[-1] == 24 and _max_8bit_diff(ours, ref) <= 1


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_lcm_equals_its_pipeline(lcm, steps):
    comp = load_generator(lcm)
    assert not uses_cfg(comp, 8.0) and "LCM" in describe(comp)
    ref = _pipe("LatentConsistencyModelPipeline", lcm)(PROMPTS, num_inference_steps=steps, guidance_scale=8.0,
                                                       output_type="pt", generator=_gens()).images
    ours = sample(comp, PROMPTS, SEEDS, steps=steps, cfg=8.0, scheduler=None)
    assert _max_8bit_diff(ours, ref) <= 1
    # the guidance scale is embedded, not ignored: another scale gives other images
    other = sample(comp, PROMPTS, SEEDS, steps=steps, cfg=2.0, scheduler=None)
    assert _max_8bit_diff(other, ref) > 1


@pytest.mark.parametrize("steps", [1, 4])
def test_turbo_without_cfg_equals_its_pipeline(turbo, steps):
    comp = load_generator(turbo)
    ref = _pipe("StableDiffusionPipeline", turbo)(PROMPTS, num_inference_steps=steps, guidance_scale=0.0,
                                                  output_type="pt", generator=_gens()).images
    ours = sample(comp, PROMPTS, SEEDS, steps=steps, cfg=0.0, scheduler=None)
    assert _max_8bit_diff(ours, ref) <= 1


def test_generation_at_a_smaller_resolution_equals_the_pipeline_at_that_size(tiny_sd):
    comp = load_generator(tiny_sd)
    ref = _pipe("StableDiffusionPipeline", tiny_sd)(PROMPTS, height=8, width=8, num_inference_steps=3,
                                                    guidance_scale=2.0, output_type="pt", generator=_gens()).images
    from prism_gui.engine.generation.sampler import SamplerSettings, sample_steps

    *_, last = sample_steps(comp, PROMPTS, SEEDS, SamplerSettings(steps=3, cfg=2.0, resolution=8))
    assert last.data["images"].shape[-2:] == (8, 8)
    assert _max_8bit_diff(last.data["images"], ref) <= 1
    with pytest.raises(ValueError, match="not a multiple of 2"):
        list(sample_steps(comp, PROMPTS, SEEDS, SamplerSettings(steps=3, resolution=9)))


# ------------------------------------------------------------------ guidance on every family
FAMILY_RUNS = {  # (fixture, steps, cfg, guidance window in steps)
    "sdxl": ("sdxl", 4, 3.0, None),
    "lcm-4-steps": ("lcm", 4, 8.0, None),
    "lcm-2-steps": ("lcm", 2, 8.0, None),
    "turbo-1-step": ("turbo", 1, 0.0, None),
    "sd-v": ("sd_v", 5, 2.5, None),
}


@pytest.mark.parametrize("run", list(FAMILY_RUNS))
@pytest.mark.parametrize("mode", ["cheap", "exact"])
def test_energy_guidance_lowers_the_teacher_energy_on_every_family(request, teacher, run, mode):
    fixture, steps, cfg, _ = FAMILY_RUNS[run]
    comp = load_generator(request.getfixturevalue(fixture))
    plain = sample(comp, PROMPTS, SEEDS, steps=steps, cfg=cfg, scheduler=None)
    g = GuidanceSpec(EnergySpec({"class": 1.0}), scale=0.5, mode=mode)
    guided = sample(comp, PROMPTS, SEEDS, steps=steps, cfg=cfg, scheduler=None, guidance=g, teacher=teacher,
                    targets=TARGETS)
    e_plain, e_guided = _class_energy(teacher, plain), _class_energy(teacher, guided)
    assert bool((e_guided < e_plain).all()), (e_plain, e_guided)


def test_a_fractional_window_never_means_no_guidance_on_few_steps():
    g = GuidanceSpec(EnergySpec({"class": 1.0}), scale=0.3, window=(0.1, 0.3))
    assert g.guided_steps(30) == [3, 4, 5, 6, 7, 8]  # many steps: the fractions, as before
    assert g.guided_steps(2) == [0]  # 0.1-0.3 of 2 steps holds no step: the nearest to its middle
    assert g.guided_steps(1) == [0]
    assert GuidanceSpec(EnergySpec({"class": 1.0}), scale=0.3, window_steps=(1, 2)).guided_steps(4) == [1, 2]
    assert GuidanceSpec(EnergySpec({"class": 1.0}), scale=0.3, window_steps=(1, 9), every=2).guided_steps(4) == [1, 3]
    assert GuidanceSpec(EnergySpec({"class": 1.0}), scale=0.0, window_steps=(0, 3)).guided_steps(4) == []
    with pytest.raises(ValueError, match="window_steps"):
        GuidanceSpec(scale=0.3, window_steps=(2, 1))


def test_the_step_window_chooses_where_few_step_guidance_acts(lcm, teacher):
    comp = load_generator(lcm)
    runs = {}
    for name, ws in (("first", (0, 0)), ("last", (3, 3)), ("all", (0, 3))):
        g = GuidanceSpec(EnergySpec({"class": 1.0}), scale=0.5, window_steps=ws)
        runs[name] = sample(comp, PROMPTS, SEEDS, steps=4, cfg=8.0, scheduler=None, guidance=g, teacher=teacher,
                            targets=TARGETS)
    assert _max_8bit_diff(runs["first"], (runs["last"] + 1) / 2) > 1
    assert float(_class_energy(teacher, runs["all"]).mean()) < float(_class_energy(teacher, runs["first"]).mean())


def test_sdxl_vae_stays_float32_when_the_model_is_cast_to_fp16(sdxl):
    comp = load_generator(sdxl)
    comp.to("cpu", torch.float16)
    assert comp.unet.dtype == torch.float16 and comp.text_encoder_2.dtype == torch.float16
    assert comp.vae.dtype == torch.float32  # force_upcast: SDXL's VAE overflows in fp16


def test_an_sdxl_folder_without_its_second_encoder_is_refused(tmp_path, sdxl):
    import shutil

    from prism_gui.engine.generation.load import GeneratorLoadError

    broken = tmp_path / "broken"
    shutil.copytree(sdxl, broken)
    shutil.rmtree(broken / "text_encoder_2")
    idx = broken / "model_index.json"
    idx.write_text(idx.read_text().replace('"CLIPTextModelWithProjection"', "null").replace(
        '"text_encoder_2": [\n    "transformers",\n    null\n  ]', '"text_encoder_2": [null, null]'))
    with pytest.raises(GeneratorLoadError, match="text_encoder_2"):
        load_generator(broken)


def test_attention_runs_on_pytorch_sdpa_by_default(sdxl, tiny_sd):
    """diffusers' default processor uses torch's scaled_dot_product_attention (flash / memory-efficient
    kernels on a GPU); nothing in loading switches it back to the quadratic-memory path."""
    for folder in (sdxl, tiny_sd):
        comp = load_generator(folder)
        kinds = {type(p).__name__ for p in comp.unet.attn_processors.values()}
        kinds |= {type(p).__name__ for p in comp.vae.attn_processors.values()}
        assert kinds == {"AttnProcessor2_0"}, kinds
