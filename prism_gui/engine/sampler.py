"""The sampler: an explicit denoising loop over diffusers components.

Read top to bottom: encode prompts, draw per-image seeded noise, then for every timestep
run the UNet on the conditional and unconditional halves, combine them with
classifier-free guidance, and let the scheduler step.  Latent models decode through their
VAE at the end; pixel models (the Digits prior) are already in image space.
Images come out in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from prism_gui.engine.generators import DiffusionComponents, make_scheduler


@torch.no_grad()
def encode_prompts(comp: DiffusionComponents, prompts: Sequence[str]) -> torch.Tensor:
    tok = comp.tokenizer(list(prompts), padding="max_length", max_length=comp.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt")
    ids = tok.input_ids.to(comp.device)
    return comp.text_encoder(ids)[0].to(comp.dtype)


def initial_noise(comp: DiffusionComponents, seeds: Sequence[int]) -> torch.Tensor:
    """One noise tensor per seed, drawn on the CPU so results match across devices."""
    c = comp.unet.config.in_channels
    s = comp.unet.config.sample_size
    noise = [torch.randn((1, c, s, s), generator=torch.Generator("cpu").manual_seed(int(sd)))
             for sd in seeds]
    return torch.cat(noise).to(comp.device, comp.dtype)


@torch.no_grad()
def sample(comp: DiffusionComponents, prompts: Sequence[str], seeds: Sequence[int], *,
           steps: int = 30, cfg: float = 4.0, scheduler: str | None = "ddim",
           negative_prompts: Sequence[str] | None = None) -> torch.Tensor:
    """Plain classifier-free-guided sampling; returns images in [-1, 1], shape (N, C, H, W)."""
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds: give one seed per prompt.")
    sched = make_scheduler(comp, scheduler)
    sched.set_timesteps(steps, device=comp.device)
    cond = encode_prompts(comp, prompts)
    uncond = encode_prompts(comp, negative_prompts or [""] * len(prompts))
    latents = initial_noise(comp, seeds) * sched.init_noise_sigma
    gen = torch.Generator("cpu").manual_seed(int(seeds[0]) if len(seeds) else 0)
    for t in sched.timesteps:
        inp = sched.scale_model_input(torch.cat([latents, latents]), t)
        eps = comp.unet(inp, t, torch.cat([uncond, cond])).sample
        eps_u, eps_c = eps.chunk(2)
        eps = eps_u + cfg * (eps_c - eps_u)
        latents = sched.step(eps, t, latents, generator=gen).prev_sample
    return decode(comp, latents)


def decode(comp: DiffusionComponents, latents: torch.Tensor) -> torch.Tensor:
    if comp.vae is None:
        return latents.clamp(-1, 1)
    img = comp.vae.decode(latents / comp.vae.config.scaling_factor).sample
    return img.clamp(-1, 1)
