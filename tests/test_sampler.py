"""The guided sampler: equals StableDiffusionPipeline at guidance 0; guidance lowers energy."""

import dataclasses

import numpy as np
import pytest
import torch

from prism_gui.engine.generation.energies import EnergySpec
from prism_gui.engine.generation.load import load_generator
from prism_gui.engine.generation.sampler import GuidanceSpec, SamplerSettings, sample, sample_steps, score_images
from prism_gui.engine.jobs import Cancelled, CancelToken


@pytest.mark.parametrize("cfg", [1.0, 5.0])
def test_unguided_sampler_reproduces_stable_diffusion_pipeline(tiny_sd, cfg):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd, safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    prompts, seeds = ["a red cat", "a blue car"], [11, 12]
    ref = pipe(prompts, num_inference_steps=6, guidance_scale=cfg, output_type="pt",
               generator=[torch.Generator().manual_seed(s) for s in seeds]).images
    comp = load_generator(tiny_sd)
    assert comp.vae is not None and comp.resolution == 16
    ours = sample(comp, prompts, seeds, steps=6, cfg=cfg, scheduler=None)
    torch.testing.assert_close((ours + 1) / 2, ref, atol=1e-5, rtol=1e-4)


def test_guidance_runs_through_a_vae_with_a_timm_teacher(tiny_sd):
    import timm

    from prism_gui.engine.teachers.teacher import Teacher

    model = timm.create_model("test_resnet", num_classes=3).eval()
    teacher = Teacher(model, (3, 32, 32), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), ["cat", "car", "dog"])
    comp = load_generator(tiny_sd)
    plain = sample(comp, ["a cat", "a car"], [1, 2], steps=4, cfg=2.0, scheduler=None)
    outs = {}
    for mode in ("cheap", "exact"):
        g = GuidanceSpec(EnergySpec({"class": 1.0, "bn": 0.1}), scale=0.2, mode=mode)
        out = sample(comp, ["a cat", "a car"], [1, 2], steps=4, cfg=2.0, scheduler=None, guidance=g,
                     teacher=teacher, targets=[0, 1])
        assert out.shape == (2, 3, 16, 16) and torch.isfinite(out).all()
        assert not torch.allclose(out, plain, atol=1e-4), mode  # the teacher's gradient reached the latents
        outs[mode] = out
    assert not torch.allclose(outs["cheap"], outs["exact"], atol=1e-5)  # two different gradients


def _class_energy(teacher, images, targets):
    return np.array([r["energies"]["class"] for r in score_images(teacher, images, targets, EnergySpec())])


@pytest.mark.parametrize("mode", ["cheap", "exact"])
def test_energy_guidance_lowers_the_teacher_energy_at_the_same_seeds(digits_prior, digits_teacher, mode):
    targets = [i % 10 for i in range(30)]
    prompts = [f"the digit {k}" for k in targets]
    seeds = list(range(100, 130))
    plain = sample(digits_prior, prompts, seeds, steps=12, cfg=2.0)
    g = GuidanceSpec(EnergySpec({"class": 1.0}), scale=0.15, mode=mode, window=(0.0, 1.0))
    guided = sample(digits_prior, prompts, seeds, steps=12, cfg=2.0, guidance=g, teacher=digits_teacher,
                    targets=targets)
    e0, e1 = _class_energy(digits_teacher, plain, targets), _class_energy(digits_teacher, guided, targets)
    assert e1.mean() < e0.mean()
    assert (e1 < e0).mean() > 0.6


def test_window_every_and_recurrence(digits_prior, digits_teacher):
    g = GuidanceSpec(EnergySpec({"class": 1.0}), scale=0.1, window=(0.5, 1.0), every=2)
    assert g.guided_steps(10) == [5, 7, 9]
    g = GuidanceSpec(EnergySpec({"class": 1.0}), scale=0.1, recurrence=2)
    kw = dict(steps=5, teacher=digits_teacher, targets=[1, 1])
    out = sample(digits_prior, ["the digit 1"] * 2, [1, 2], guidance=g, **kw)
    once = sample(digits_prior, ["the digit 1"] * 2, [1, 2], guidance=dataclasses.replace(g, recurrence=1), **kw)
    assert out.shape == (2, 1, 8, 8) and not torch.allclose(out, once, atol=1e-4)  # the step was redone
    every = sample(digits_prior, ["the digit 1"] * 2, [1, 2], steps=10, teacher=digits_teacher, targets=[1, 1],
                   guidance=dataclasses.replace(g, recurrence=1, window=(0.5, 1.0), every=2))
    late = sample(digits_prior, ["the digit 1"] * 2, [1, 2], steps=10, teacher=digits_teacher, targets=[1, 1],
                  guidance=dataclasses.replace(g, recurrence=1, window=(0.5, 1.0)))
    assert not torch.allclose(every, late, atol=1e-4)  # skipping every other step changes the samples
    with pytest.raises(ValueError, match="needs the DDIM scheduler"):
        sample(digits_prior, ["the digit 1"], [1], steps=5, guidance=g, teacher=digits_teacher, targets=[1],
               scheduler="dpm++")


@pytest.mark.parametrize("scheduler", ["ddpm", "euler", "dpm++", "unipc", "pndm"])
def test_guidance_works_with_any_scheduler(digits_prior, digits_teacher, scheduler):
    """On every scheduler, guidance moves the samples and lowers the class energy on average.  At
    this scale (0.05): multistep solvers weigh the newest step more (PLMS by 55/24), and at 0.15 PNDM
    overshoots and raises the energy (docs/SAMPLING.md, "Guidance and multistep schedulers")."""
    targets = [i % 10 for i in range(20)]
    prompts = [f"the digit {k}" for k in targets]
    seeds = list(range(300, 320))
    g = GuidanceSpec(EnergySpec({"class": 1.0, "free": 0.5}), scale=0.05, window=(0.0, 1.0))
    out = sample(digits_prior, prompts, seeds, steps=8, scheduler=scheduler, guidance=g,
                 teacher=digits_teacher, targets=targets)
    plain = sample(digits_prior, prompts, seeds, steps=8, scheduler=scheduler)
    assert out.shape == (20, 1, 8, 8) and torch.isfinite(out).all()
    assert _class_energy(digits_teacher, out, targets).mean() < _class_energy(digits_teacher, plain, targets).mean()


def test_class_scale_multiplies_each_class_guidance(digits_prior, digits_teacher):
    targets = [1, 1, 7, 7]
    prompts = [f"the digit {k}" for k in targets]
    kw = dict(steps=6, cfg=2.0, teacher=digits_teacher, targets=targets)
    g = GuidanceSpec(EnergySpec({"class": 1.0}), scale=0.3, window=(0.0, 1.0))
    base = sample(digits_prior, prompts, [5, 6, 7, 8], guidance=g, **kw)
    ones = sample(digits_prior, prompts, [5, 6, 7, 8], guidance=dataclasses.replace(g, class_scale=(1.0,) * 10), **kw)
    assert torch.equal(base, ones)
    off7 = dataclasses.replace(g, class_scale=tuple(0.0 if k == 7 else 1.0 for k in range(10)))
    out = sample(digits_prior, prompts, [5, 6, 7, 8], guidance=off7, **kw)
    plain = sample(digits_prior, prompts, [5, 6, 7, 8], steps=6, cfg=2.0)
    assert torch.equal(out[:2], base[:2])  # class 1: full guidance
    assert torch.allclose(out[2:], plain[2:], atol=1e-4) and not torch.allclose(base[2:], plain[2:], atol=1e-2)
    with pytest.raises(ValueError, match="one per class"):
        sample(digits_prior, prompts, [5, 6, 7, 8], guidance=dataclasses.replace(g, class_scale=(1.0, 1.0)), **kw)
    with pytest.raises(ValueError, match="finite multiplier >= 0"):
        GuidanceSpec(class_scale=(1.0, -1.0))


def test_adaptive_class_scale_guides_the_misread_classes_harder():
    from prism_gui.engine.generation.sampler import adaptive_class_scale

    assert adaptive_class_scale([0.9, 0.8, 0.7]) == pytest.approx((0.5, 1.0, 1.5))
    assert adaptive_class_scale([1.0, 0.0]) == (0.5, 2.0)  # clipped
    assert adaptive_class_scale([1.0, 1.0]) == (1.0, 1.0)


def test_bad_guidance_settings_are_clear_errors():
    with pytest.raises(ValueError, match="window"):
        GuidanceSpec(window=(0.8, 0.2))
    with pytest.raises(ValueError, match="'cheap' or 'exact'"):
        GuidanceSpec(mode="fast")
    with pytest.raises(KeyError, match="unknown energy term 'nope'"):
        EnergySpec({"nope": 1.0})


def test_sampler_yields_per_step_and_cancels_within_one_step(digits_prior):
    token = CancelToken()
    events = []
    with pytest.raises(Cancelled):
        for ev in sample_steps(digits_prior, ["the digit 2"], [0], SamplerSettings(steps=10), cancel=token):
            events.append(ev)
            if ev.step == 3:
                token.cancel()
    assert [e.step for e in events] == [1, 2, 3]
    assert all("images" not in e.data for e in events)


def test_scores_hold_every_term_top5_entropy_and_correctness(digits_prior, digits_teacher):
    imgs = sample(digits_prior, ["the digit 7", "the digit 0"], [5, 6], steps=10)
    rows = score_images(digits_teacher, imgs, [7, 0], EnergySpec({"class": 1.0, "bn": 0.5}))
    for r in rows:
        assert set(r["energies"]) == {"class", "free", "bn"}
        assert r["energy"] == pytest.approx(r["energies"]["class"] + 0.5 * r["energies"]["bn"], rel=1e-5)
        assert len(r["top5"]) == 5 and r["top5"][0][1] == pytest.approx(r["confidence"])
        assert r["entropy"] >= 0 and isinstance(r["correct"], bool)
