"""Exact sampling: the guided step equals the docs' reference on every scheduler the app offers,
every prediction type it supports, cheap and exact modes; every image is a function of its seed."""

from __future__ import annotations

import pytest
import torch

from prism_gui.engine.generation.energies import EnergySpec
from prism_gui.engine.generation.load import SCHEDULERS, load_generator
from prism_gui.engine.generation.parametrization import PREDICTION_TYPES, UnsupportedScheduler
from prism_gui.engine.generation.sampler import GuidanceSpec, SamplerSettings, sample, sample_steps
from tests.guidance_reference import reference_guided_images, smooth_teacher

PROMPTS = ["a cat", "a red car", "a dog"]
SEEDS = [7, 8, 9]
TARGETS = [0, 1, 2]
STEPS = 5
SCALE = 0.3  # a normalized x̂0 step of 0.3 RMS latent units: guidance visibly changes every image
CFG = 2.5
STOCHASTIC = [("euler_a", 0.0), ("ddpm", 0.0), ("ddim", 0.7)]


def _u8(images01: torch.Tensor) -> torch.Tensor:
    return (images01.clamp(0, 1) * 255).round().to(torch.int16)


def _max_8bit_diff(a01, b01) -> int:
    return int((_u8(a01) - _u8(b01)).abs().max())


@pytest.fixture(scope="module")
def teacher():
    return smooth_teacher()


def _with(comp_or_pipe_sched, scheduler: str, ptype: str):
    import diffusers

    cls = getattr(diffusers, SCHEDULERS[scheduler])
    return cls.from_config(comp_or_pipe_sched.config, prediction_type=ptype)


@pytest.fixture(scope="module")
def pipe(tiny_sd):
    from diffusers import StableDiffusionPipeline

    p = StableDiffusionPipeline.from_pretrained(tiny_sd, safety_checker=None, requires_safety_checker=False)
    p.set_progress_bar_config(disable=True)
    return p


@pytest.fixture(scope="module")
def comp(tiny_sd):
    return load_generator(tiny_sd)


def _setup(comp, pipe, scheduler, ptype):
    base = pipe.components["scheduler"]
    pipe.scheduler = _with(base, scheduler, ptype)
    comp.scheduler = _with(base, scheduler, ptype)


MATRIX = [(s, p, m) for s in SCHEDULERS for p in PREDICTION_TYPES[SCHEDULERS[s]] for m in ("cheap", "exact")]


@pytest.mark.parametrize(("scheduler", "ptype", "mode"), MATRIX, ids=["-".join(c) for c in MATRIX])
def test_guided_images_equal_the_reference(comp, pipe, teacher, scheduler, ptype, mode):
    base = pipe.scheduler
    try:
        _setup(comp, pipe, scheduler, ptype)
        ref = reference_guided_images(pipe, PROMPTS, SEEDS, steps=STEPS, cfg=CFG, scale=SCALE, teacher=teacher,
                                      targets=TARGETS, mode=mode)
        g = GuidanceSpec(EnergySpec({"class": 1.0}), scale=SCALE, mode=mode)
        ours = sample(comp, PROMPTS, SEEDS, steps=STEPS, cfg=CFG, scheduler=scheduler, guidance=g,
                      teacher=teacher, targets=TARGETS)
        plain = sample(comp, PROMPTS, SEEDS, steps=STEPS, cfg=CFG, scheduler=scheduler)
    finally:
        pipe.scheduler = base
        comp.scheduler = base
    assert _max_8bit_diff((ours + 1) / 2, ref) <= 1
    assert _max_8bit_diff((plain + 1) / 2, ref) > 1, "guidance must visibly change the images in this test"


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_guidance_scale_zero_equals_the_unguided_pipeline(comp, pipe, scheduler):
    base = pipe.scheduler
    try:
        _setup(comp, pipe, scheduler, "epsilon")
        ref = pipe(PROMPTS, num_inference_steps=STEPS, guidance_scale=CFG, output_type="pt",
                   generator=[torch.Generator().manual_seed(s) for s in SEEDS]).images
        g = GuidanceSpec(EnergySpec({"class": 1.0}), scale=0.0)
        ours = sample(comp, PROMPTS, SEEDS, steps=STEPS, cfg=CFG, scheduler=scheduler, guidance=g)
    finally:
        pipe.scheduler = base
        comp.scheduler = base
    assert _max_8bit_diff((ours + 1) / 2, ref) <= 1


def _images(comp, prompts, seeds, targets, settings, guidance, teacher, batch):
    out = []
    for b in range(0, len(prompts), batch):
        for ev in sample_steps(comp, prompts[b : b + batch], seeds[b : b + batch], settings, guidance=guidance,
                               teacher=teacher, targets=targets[b : b + batch]):
            if "images" in ev.data:
                out.append(ev.data["images"])
    return torch.cat(out)


@pytest.mark.parametrize(("scheduler", "eta"), STOCHASTIC, ids=[f"{s}-eta{e}" for s, e in STOCHASTIC])
@pytest.mark.parametrize("guided", [False, True], ids=["plain", "guided"])
def test_stochastic_images_do_not_depend_on_the_batch(comp, teacher, scheduler, eta, guided):
    prompts = [PROMPTS[i % 3] for i in range(8)]
    targets = [i % 3 for i in range(8)]
    seeds = [100 + 17 * i for i in range(8)]
    settings = SamplerSettings(steps=STEPS, cfg=CFG, scheduler=scheduler, eta=eta)
    g = GuidanceSpec(EnergySpec({"class": 1.0, "bn": 0.1}), scale=SCALE if guided else 0.0)
    runs = {bs: _images(comp, prompts, seeds, targets, settings, g, teacher, bs) for bs in (1, 3, 8)}
    for bs in (1, 3):
        assert _max_8bit_diff((runs[bs] + 1) / 2, (runs[8] + 1) / 2) <= 1, f"batch size {bs} vs 8"
    # and the seeds matter: the step noise really is drawn (two seeds, same prompt -> different images)
    assert not torch.equal(runs[8][0], runs[8][3])


def test_the_reference_and_product_disagree_when_the_parametrization_is_wrong(comp, pipe, teacher, monkeypatch):
    """The matrix can fail: treating v as epsilon (the old bug) is caught by it."""
    from prism_gui.engine.generation import parametrization as par

    real_x0, real_out = par.predicted_x0, par.output_for_x0
    monkeypatch.setattr("prism_gui.engine.generation.sampler.predicted_x0",
                        lambda o, x, lv, pt: real_x0(o, x, lv, "epsilon"))
    monkeypatch.setattr("prism_gui.engine.generation.sampler.output_for_x0",
                        lambda x0, x, lv, pt: real_out(x0, x, lv, "epsilon"))
    base = pipe.scheduler
    try:
        _setup(comp, pipe, "ddim", "v_prediction")
        ref = reference_guided_images(pipe, PROMPTS, SEEDS, steps=STEPS, cfg=CFG, scale=SCALE, teacher=teacher,
                                      targets=TARGETS)
        g = GuidanceSpec(EnergySpec({"class": 1.0}), scale=SCALE)
        ours = sample(comp, PROMPTS, SEEDS, steps=STEPS, cfg=CFG, scheduler="ddim", guidance=g, teacher=teacher,
                      targets=TARGETS)
    finally:
        pipe.scheduler = base
        comp.scheduler = base
    assert _max_8bit_diff((ours + 1) / 2, ref) > 1


def test_unknown_schedulers_and_prediction_types_are_refused_for_guidance(comp, teacher):
    from diffusers import HeunDiscreteScheduler

    g = GuidanceSpec(EnergySpec({"class": 1.0}), scale=SCALE)
    base = comp.scheduler
    try:
        comp.scheduler = HeunDiscreteScheduler.from_config(base.config)
        with pytest.raises(UnsupportedScheduler, match="cannot guide it correctly"):
            sample(comp, PROMPTS, SEEDS, steps=3, cfg=CFG, scheduler=None, guidance=g, teacher=teacher,
                   targets=TARGETS)
        # unguided sampling with it still works
        out = sample(comp, PROMPTS[:1], SEEDS[:1], steps=3, cfg=CFG, scheduler=None)
        assert torch.isfinite(out).all()
        comp.scheduler = _with(base, "pndm", "sample")
        with pytest.raises(UnsupportedScheduler, match="does not support prediction type 'sample'"):
            sample(comp, PROMPTS, SEEDS, steps=3, cfg=CFG, scheduler=None, guidance=g, teacher=teacher,
                   targets=TARGETS)
    finally:
        comp.scheduler = base


@pytest.mark.parametrize(("scheduler", "mode"), [("ddim", "cheap"), ("euler", "exact"), ("dpm++", "exact")])
def test_guidance_micro_batches_and_decoder_checkpointing_change_nothing(comp, pipe, teacher, scheduler, mode):
    """Memory options: the gradient over micro-batches of 1 image, through a checkpointed VAE
    decoder, gives the images of the whole-batch step (and of the reference)."""
    base = pipe.scheduler
    try:
        _setup(comp, pipe, scheduler, "epsilon")
        ref = reference_guided_images(pipe, PROMPTS, SEEDS, steps=STEPS, cfg=CFG, scale=SCALE, teacher=teacher,
                                      targets=TARGETS, mode=mode)
        whole = sample(comp, PROMPTS, SEEDS, steps=STEPS, cfg=CFG, scheduler=scheduler, teacher=teacher,
                       targets=TARGETS, guidance=GuidanceSpec(EnergySpec({"class": 1.0}), scale=SCALE, mode=mode))
        small = sample(comp, PROMPTS, SEEDS, steps=STEPS, cfg=CFG, scheduler=scheduler, teacher=teacher,
                       targets=TARGETS, guidance=GuidanceSpec(EnergySpec({"class": 1.0}), scale=SCALE, mode=mode,
                                                              micro_batch=1, checkpoint_decoder=True))
    finally:
        pipe.scheduler = base
        comp.scheduler = base
    assert not comp.vae.is_gradient_checkpointing  # switched back off after each guided step
    assert _max_8bit_diff((small + 1) / 2, (whole + 1) / 2) <= 1
    assert _max_8bit_diff((small + 1) / 2, ref) <= 1
    with pytest.raises(ValueError, match="micro_batch"):
        GuidanceSpec(micro_batch=-1)
