"""A reference for the guided step of docs/SAMPLING.md, built on the diffusers pipeline itself.

It shares no code with the product's sampler: ``StableDiffusionPipeline`` runs its own loop, and
only its ``scheduler.step`` is wrapped.  Where the docs' step acts, the wrapper

1. reads the scheduler's own map from (sample, model output) to x̂0, by running the scheduler's
   x̂0 computation on a copy of it (``pred_original_sample`` of ``step``, or
   ``convert_model_output`` for the multistep solvers; PNDM, which exposes neither, by the
   DDIM formula with ``alphas_cumprod[t]``).  That map is affine, ``x̂0 = P·x + B·out``, so two
   probes give ``P`` and ``B``;
2. scores the class energy (cross-entropy of the teacher on the decoded x̂0 to the target) and
   takes its gradient: with respect to x̂0 (cheap) or to the sample through the UNet (exact);
3. moves x̂0 by ``scale · g / rms(g)`` per image and hands the original ``step`` the output
   ``(x̂0' − P·x) / B`` that predicts the moved x̂0.
"""

from __future__ import annotations

import copy
import functools

import torch
import torch.nn.functional as F


def _x0_of(sched, out, t, x):
    """The scheduler's own x̂0 for model output ``out`` on sample ``x`` at ``t`` (no state change)."""
    s = copy.deepcopy(sched)
    name = type(s).__name__
    if name in ("DPMSolverMultistepScheduler", "UniPCMultistepScheduler"):
        if s.step_index is None:
            s._init_step_index(t)
        return s.convert_model_output(out, sample=x)
    if name == "PNDMScheduler":
        a = s.alphas_cumprod[int(t)]
        ptype = s.config.prediction_type
        if ptype == "epsilon":
            return (x - (1 - a) ** 0.5 * out) / a**0.5
        return a**0.5 * x - (1 - a) ** 0.5 * out  # v_prediction
    kw = {"eta": 0.0} if name == "DDIMScheduler" else {}
    return type(s).step(s, out, t, x, generator=None, **kw).pred_original_sample  # the class's step, not the wrapper


def affine_x0(sched, t, x):
    """(P, B) with x̂0 = P·x + B·out, read off the scheduler by probing."""
    zeros, ones = torch.zeros_like(x), torch.ones_like(x)
    b0 = _x0_of(sched, zeros, t, zeros)
    p = float((_x0_of(sched, zeros, t, ones) - b0).mean())
    b = float((_x0_of(sched, ones, t, zeros) - b0).mean())
    return p, b


def reference_guided_images(pipe, prompts, seeds, *, steps, cfg, scale, teacher, targets, mode="cheap",
                            window=(0.0, 1.0), eta=0.0):
    """Images in [0, 1] from ``pipe`` with the docs' guided step wrapped around its scheduler."""
    sched = pipe.scheduler
    orig_step = sched.step
    tg = torch.as_tensor(targets)
    vae = pipe.vae
    state = {"i": 0}
    lo, hi = window

    def embeds():
        pos, neg = pipe.encode_prompt(list(prompts), pipe.device, 1, cfg > 1, None)
        return torch.cat([neg, pos]) if cfg > 1 else pos

    def model_out(x, t, emb):
        inp = torch.cat([x, x]) if cfg > 1 else x
        out = pipe.unet(sched.scale_model_input(inp, t), t, encoder_hidden_states=emb).sample
        if cfg > 1:
            u, c = out.chunk(2)
            out = u + cfg * (c - u)
        return out

    def energy(x0):
        img = vae.decode(x0 / vae.config.scaling_factor).sample
        return F.cross_entropy(teacher.logits(img), tg, reduction="none").sum()

    @functools.wraps(orig_step)  # the pipeline inspects step's signature to pass eta and generator
    def wrapped(model_output, timestep, sample, *args, **kwargs):
        i = state["i"]
        state["i"] += 1
        n = len(sched.timesteps)  # loop iterations (PNDM's Runge-Kutta warm-up adds some)
        frac = i / max(1, n - 1)
        if scale > 0 and lo <= frac <= hi:
            p, b = affine_x0(sched, timestep, sample)
            if mode == "cheap":
                x0 = (p * sample + b * model_output).detach().requires_grad_(True)
                with torch.enable_grad():
                    (g,) = torch.autograd.grad(energy(x0), x0)
                x0 = x0.detach()
            else:
                with torch.enable_grad():
                    x = sample.detach().requires_grad_(True)
                    x0 = p * x + b * model_out(x, timestep, embeds())
                    (g,) = torch.autograd.grad(energy(x0), x)
                x0 = x0.detach()
            rms = g.flatten(1).pow(2).mean(1).sqrt().clamp_min(1e-12).view(-1, 1, 1, 1)
            model_output = ((x0 - scale * g / rms) - p * sample) / b
        return orig_step(model_output, timestep, sample, *args, **kwargs)

    sched.step = wrapped
    try:
        return pipe(list(prompts), num_inference_steps=steps, guidance_scale=cfg, eta=eta, output_type="pt",
                    generator=[torch.Generator().manual_seed(s) for s in seeds]).images
    finally:
        sched.step = orig_step


def smooth_teacher():
    """A small random teacher with smooth activations (SiLU, average pooling, BatchNorm in eval):
    its energy gradient is a smooth function of the image, so two correct implementations that
    round differently stay within 8-bit rounding.  (ReLU and max-pooling teachers make the
    *normalized* gradient jump between directions on float noise, which no tolerance survives.)"""
    from torch import nn

    from prism_gui.engine.teachers.teacher import Teacher

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.SiLU(),
                          nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.SiLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(16, 3)).eval()
    with torch.no_grad():
        model[1].running_mean.normal_(0, 0.1)
        model[1].running_var.uniform_(0.5, 1.5)
    return Teacher(model, (3, 32, 32), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), ["cat", "car", "dog"])
