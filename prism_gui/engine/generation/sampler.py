"""The sampler: one explicit denoising loop over diffusers components, with energy guidance.

Read top to bottom (:func:`sample_steps`): encode prompts, draw per-image seeded noise, then
at every timestep run the UNet on the unconditional and conditional halves and combine them
with classifier-free guidance.  Where energy guidance (EDA) acts, the predicted clean sample
``x0`` is decoded (VAE or identity), handed to the teacher, and the gradient of its energy
moves ``x0`` downhill; the scheduler then steps with the noise prediction that matches the
moved ``x0``.  Latent models decode through their VAE at the end; pixel models (the Digits
prior) are already images.  Images come out in [-1, 1].

Guidance modes: ``cheap`` differentiates the energy with respect to ``x0`` only; ``exact``
differentiates through the UNet with respect to the noisy sample.  ``recurrence`` re-noises
and repeats each guided step (as training-free guidance methods do); it needs DDIM.  The
guided step is written down in ``docs/SAMPLING.md``; x̂0 and the model output it implies come
from :mod:`~prism_gui.engine.generation.parametrization` for every scheduler and prediction type.

Every random draw of an image's trajectory (its initial noise, every stochastic step's noise,
the recurrence's re-noising) comes from that image's own generator, seeded with its seed, as
``StableDiffusionPipeline`` does with a list of generators: an image depends on its seed,
prompt and settings only, never on its batch, batch size, process or a resume.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from prism_gui.engine.generation.decoders import decode_with, decoder_checkpointing, final_decode, guidance_vae
from prism_gui.engine.generation.energies import EnergySpec, compute_energies
from prism_gui.engine.generation.families import Conditioning, family
from prism_gui.engine.generation.load import DiffusionComponents, make_scheduler
from prism_gui.engine.generation.parametrization import check_guidable, noise_level, output_for_x0, predicted_x0
from prism_gui.engine.jobs import CancelToken, Event


@dataclasses.dataclass
class SamplerSettings:
    steps: int = 30
    cfg: float = 3.0  # classifier-free guidance; the guidance embedding's scale for LCM UNets; <= 1: off
    scheduler: str | None = "ddim"  # None or "default": the generator's own (LCM's, Turbo's trailing Euler)
    eta: float = 0.0
    resolution: int | None = None  # square image size in pixels; None or 0: the generator's native size
    # memory of the final decode (the stored images): one image at a time; in tiles (blended seams)
    vae_slicing: bool = False
    vae_tiling: bool = False

    def __post_init__(self):
        if self.scheduler in ("", "default"):  # spec files (TOML has no null): the generator's own scheduler
            self.scheduler = None
        if self.resolution == 0:
            self.resolution = None
        if self.steps < 1:
            raise ValueError(f"sampler steps must be at least 1, not {self.steps}")
        if self.resolution is not None and self.resolution < 8:
            raise ValueError(f"resolution {self.resolution} is too small: give a size in pixels, e.g. 256 or 512")


@dataclasses.dataclass
class GuidanceSpec:
    """Energy-guided distribution alignment during sampling (``scale`` 0 switches it off)."""

    energy: EnergySpec = dataclasses.field(default_factory=EnergySpec)
    scale: float = 0.0
    normalize: bool = True  # scale is the RMS size of the x0 step, in [-1, 1] pixel units
    mode: str = "cheap"  # cheap | exact
    window: tuple[float, float] = (0.0, 1.0)  # fraction of the trajectory where guidance acts
    # or, for few-step models (LCM, Turbo), the first and last step (0-based, inclusive) it acts at
    window_steps: tuple[int, int] | None = None
    every: int = 1
    recurrence: int = 1
    # memory: the gradient is taken over micro-batches of this many images (0: the whole batch),
    # and optionally with activation checkpointing through the VAE decoder; neither changes the result
    micro_batch: int = 0
    checkpoint_decoder: bool = False
    # a tiny decoder (AutoencoderTiny folder or cached hub id) for the guidance gradient only; "" = the VAE
    decoder: str = ""
    # per-class multipliers of ``scale`` (by class index; None: every class gets ``scale``), e.g.
    # from :func:`adaptive_class_scale` (stronger guidance where the prior's renders fit the teacher worst)
    class_scale: tuple[float, ...] | None = None

    def __post_init__(self):
        if isinstance(self.energy, dict):
            self.energy = EnergySpec(**self.energy)
        if self.mode not in ("cheap", "exact"):
            raise ValueError(f"guidance mode must be 'cheap' or 'exact', not {self.mode!r}")
        lo, hi = self.window
        if not (0.0 <= lo <= hi <= 1.0):
            raise ValueError(f"guidance window {self.window} must satisfy 0 <= start <= end <= 1")
        if self.every < 1 or self.recurrence < 1:
            raise ValueError("guidance 'every' and 'recurrence' must be at least 1")
        if self.window_steps is not None:
            self.window_steps = (int(self.window_steps[0]), int(self.window_steps[1]))
            if not 0 <= self.window_steps[0] <= self.window_steps[1]:
                raise ValueError(f"guidance window_steps {self.window_steps} must be 0 <= first <= last")
        if self.micro_batch < 0:
            raise ValueError("guidance micro_batch must be 0 (the whole batch) or a positive number of images")
        if self.class_scale is not None:
            self.class_scale = tuple(float(v) for v in self.class_scale)
            if not self.class_scale or any(not (v >= 0 and np.isfinite(v)) for v in self.class_scale):
                raise ValueError("guidance class_scale must be a list of one finite multiplier >= 0 per class")

    @property
    def on(self) -> bool:
        return self.scale > 0 and bool(self.energy.active)

    def guided_steps(self, n: int) -> list[int]:
        """The steps (0-based, of ``n``) where guidance acts.  A fractional window that falls
        between the steps of a short schedule (e.g. 0.1-0.3 of 2 steps) acts at the step nearest
        its middle, so a window never silently means no guidance."""
        if not self.on:
            return []
        if self.window_steps is not None:
            span = [i for i in range(n) if self.window_steps[0] <= i <= self.window_steps[1]]
        else:
            lo, hi = self.window
            span = [i for i in range(n) if lo <= i / max(1, n - 1) <= hi]
            if not span:
                span = [min(range(n), key=lambda i: abs(i / max(1, n - 1) - (lo + hi) / 2))]
        return span[:: self.every]


def image_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per image, seeded with its seed: the source of every random draw of
    that image's trajectory (CPU, so results match across devices)."""
    return [torch.Generator("cpu").manual_seed(int(sd)) for sd in seeds]


def latent_size(comp: DiffusionComponents, resolution: int | None) -> int:
    """Latent cells per side for an image of ``resolution`` pixels (the generator's own size if None)."""
    if resolution is None:
        return comp.unet.config.sample_size
    if resolution % comp.vae_scale:
        raise ValueError(f"resolution {resolution} is not a multiple of {comp.vae_scale}, the generator's "
                         f"latent cell: use {resolution // comp.vae_scale * comp.vae_scale} or "
                         f"{(resolution // comp.vae_scale + 1) * comp.vae_scale}")
    return resolution // comp.vae_scale


def initial_noise(comp: DiffusionComponents, gens: Sequence[torch.Generator],
                  resolution: int | None = None) -> torch.Tensor:
    """One noise tensor per image, the first draw of its generator (this is what
    ``StableDiffusionPipeline`` draws for a list of CPU generators)."""
    c = comp.unet.config.in_channels
    s = latent_size(comp, resolution)
    noise = [torch.randn((1, c, s, s), generator=g, dtype=torch.float32) for g in gens]
    return torch.cat(noise).to(comp.device, comp.dtype)


def adaptive_class_scale(class_accuracy, lo: float = 0.5, hi: float = 2.0) -> tuple[float, ...]:
    """Per-class guidance multipliers from how often the teacher recognises the prior's unguided
    pilot samples of each class (``class_accuracy``, e.g. from prompt scoring): a class the
    teacher misreads twice as often as the average gets twice the guidance, clipped to [lo, hi];
    the mean misreading keeps ``scale`` as it is."""
    miss = 1.0 - np.clip(np.asarray(class_accuracy, float), 0.0, 1.0)
    mean = float(miss.mean())
    if mean <= 0:
        return tuple(1.0 for _ in miss)
    return tuple(float(v) for v in np.clip(miss / mean, lo, hi))


def _rms(g: torch.Tensor) -> torch.Tensor:
    return g.flatten(1).pow(2).mean(1).sqrt().clamp_min(1e-12).view(-1, *([1] * (g.dim() - 1)))


def _cfg_eps(comp, x, t, sched, cond: Conditioning, cfg):
    inp = sched.scale_model_input(torch.cat([x, x]) if cond.doubled else x, t)
    eps = comp.unet(inp, t, cond.embeds, **cond.unet_kwargs()).sample
    if cond.doubled:
        eps_u, eps_c = eps.chunk(2)
        eps = eps_u + cfg * (eps_c - eps_u)
    return eps


def sample_steps(comp: DiffusionComponents, prompts: Sequence[str], seeds: Sequence[int],
                 settings: SamplerSettings | None = None, *, guidance: GuidanceSpec | None = None,
                 teacher=None, targets: Sequence[int] | None = None,
                 negative_prompts: Sequence[str] | None = None,
                 cancel: CancelToken | None = None) -> Iterator[Event]:
    """Yields one ``Event("sample", i, steps)`` per denoising step; the last event carries
    ``data["images"]`` ([-1, 1], (N, C, H, W), on the CPU).  A cancelled run raises
    :class:`~prism_gui.engine.jobs.Cancelled` within one step and returns nothing."""
    settings = settings or SamplerSettings()
    guidance = guidance or GuidanceSpec()
    cancel = cancel or CancelToken()
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds: give one seed per prompt.")
    if guidance.on and (teacher is None or targets is None or len(targets) != len(prompts)):
        raise ValueError("energy guidance needs a teacher and one target class per prompt")
    sched = make_scheduler(comp, settings.scheduler)
    if guidance.on:
        check_guidable(sched)  # refuse what cannot be guided exactly, before any work
    if guidance.recurrence > 1 and type(sched).__name__ != "DDIMScheduler":
        raise ValueError("guidance recurrence re-noises between repeats and needs the DDIM scheduler: "
                         "choose scheduler 'ddim' or set recurrence to 1")
    sched.set_timesteps(settings.steps, device=comp.device)
    fam = family(comp)
    if fam.begin_at_first_step and hasattr(sched, "set_begin_index"):
        sched.set_begin_index(0)
    cfg = settings.cfg
    size = latent_size(comp, settings.resolution)
    embeds = fam.encode(comp, prompts, negative_prompts, cfg, size * comp.vae_scale)
    gens = image_generators(seeds)
    latents = initial_noise(comp, gens, settings.resolution) * sched.init_noise_sigma
    tgt = torch.as_tensor(list(targets), device=comp.device) if targets is not None else None
    accepted = set(inspect.signature(sched.step).parameters)  # as StableDiffusionPipeline does
    step_kwargs = {k: v for k, v in (("eta", settings.eta), ("generator", gens)) if k in accepted}
    n = len(sched.timesteps)
    guided_steps = set(guidance.guided_steps(n))
    for i, t in enumerate(sched.timesteps):
        cancel.raise_if_cancelled()
        guided = i in guided_steps
        energy_mean = None
        for r in range(guidance.recurrence if guided else 1):
            if guided:
                eps, energy_mean = _guided_eps(comp, latents, t, sched, embeds, cfg, guidance, teacher, tgt)
            else:
                with torch.no_grad():
                    eps = _cfg_eps(comp, latents, t, sched, embeds, cfg)
            with torch.no_grad():
                prev = sched.step(eps, t, latents, **step_kwargs).prev_sample
            if r + 1 < (guidance.recurrence if guided else 1):
                latents = _renoise(sched, prev, t, settings.steps, gens)
            else:
                latents = prev
        data = {"mean_energy": energy_mean} if energy_mean is not None else {}
        if i + 1 == n:
            with torch.no_grad():
                data["images"] = final_decode(comp, latents, slicing=settings.vae_slicing,
                                              tiling=settings.vae_tiling).clamp(-1, 1).float().cpu()
        yield Event("sample", i + 1, n, f"step {i + 1}/{n}", data)


def _renoise(sched, prev, t, steps, gens):
    """Go back from the previous timestep to ``t`` with fresh noise from each image's own
    generator (DDIM recurrence)."""
    t_prev = int(t) - sched.config.num_train_timesteps // steps
    a_t = sched.alphas_cumprod[int(t)]
    a_p = sched.alphas_cumprod[t_prev] if t_prev >= 0 else sched.final_alpha_cumprod
    ratio = (a_t / a_p).to(prev.dtype)
    z = torch.cat([torch.randn((1, *prev.shape[1:]), generator=g, dtype=torch.float32) for g in gens])
    z = z.to(prev.device, prev.dtype)
    return ratio.sqrt() * prev + (1 - ratio).sqrt() * z


def _guided_eps(comp, latents, t, sched, embeds, cfg, guidance: GuidanceSpec, teacher, tgt):
    """Model output whose implied x̂0 has moved down the teacher's energy (docs/SAMPLING.md).

    Each image's step depends on its own energy only, so the gradient is taken over
    micro-batches (``guidance.micro_batch``) to bound the activations kept for it."""
    level = noise_level(sched, t)
    ptype = sched.config.get("prediction_type", "epsilon")
    n = len(latents)
    size = guidance.micro_batch or n
    x0s, grads, energies = [], [], []
    vae = guidance_vae(comp, guidance.decoder)
    with decoder_checkpointing(vae, guidance.checkpoint_decoder):
        for a in range(0, n, size):
            b = min(n, a + size)
            lat = latents[a:b]
            emb = embeds if size >= n else embeds.rows(a, b)
            if guidance.mode == "exact":
                with torch.enable_grad():
                    x = lat.detach().requires_grad_(True)
                    out = _cfg_eps(comp, x, t, sched, emb, cfg)
                    x0 = predicted_x0(out, x, level, ptype)
                    energy, _, _ = compute_energies(teacher, decode_with(vae, x0), tgt[a:b], guidance.energy,
                                                    all_terms=False)
                    (grad,) = torch.autograd.grad(energy.sum(), x)
                x0 = x0.detach()
            else:
                with torch.no_grad():
                    out = _cfg_eps(comp, lat, t, sched, emb, cfg)
                x0 = predicted_x0(out, lat, level, ptype).detach()
                with torch.enable_grad():
                    x0g = x0.clone().requires_grad_(True)
                    energy, _, _ = compute_energies(teacher, decode_with(vae, x0g), tgt[a:b], guidance.energy,
                                                    all_terms=False)
                    (grad,) = torch.autograd.grad(energy.sum(), x0g)
            x0s.append(x0)
            grads.append(grad)
            energies.append(energy.detach())
    x0, grad = torch.cat(x0s), torch.cat(grads).to(latents.dtype)
    step = guidance.scale * (grad / _rms(grad) if guidance.normalize else grad)
    if guidance.class_scale is not None:
        if int(tgt.max()) >= len(guidance.class_scale):
            raise ValueError(f"guidance class_scale has {len(guidance.class_scale)} multipliers but the teacher has "
                             f"class index {int(tgt.max())}: give one per class")
        mult = torch.tensor(guidance.class_scale, dtype=step.dtype, device=step.device)[tgt.to(step.device).long()]
        step = step * mult.view(-1, *([1] * (step.dim() - 1)))
    out_new = output_for_x0(x0 - step, latents, level, ptype)
    return out_new.to(latents.dtype), float(torch.cat(energies).mean())


def sample(comp: DiffusionComponents, prompts: Sequence[str], seeds: Sequence[int], *,
           steps: int = SamplerSettings.steps, cfg: float = SamplerSettings.cfg,
           scheduler: str | None = SamplerSettings.scheduler, negative_prompts: Sequence[str] | None = None,
           guidance: GuidanceSpec | None = None, teacher=None, targets=None,
           cancel: CancelToken | None = None) -> torch.Tensor:
    """Run :func:`sample_steps` to the end and return the images ([-1, 1], on the CPU)."""
    events = sample_steps(comp, prompts, seeds, SamplerSettings(steps=steps, cfg=cfg, scheduler=scheduler),
                          guidance=guidance, teacher=teacher, targets=targets,
                          negative_prompts=negative_prompts, cancel=cancel)
    last = None
    for ev in events:
        last = ev
    return last.data["images"]


# ------------------------------------------------------------------------- scoring
@torch.no_grad()
def score_images(teacher, images: torch.Tensor, targets: Sequence[int], energy: EnergySpec,
                 batch_size: int = 256) -> list[dict]:
    """Every energy term, the weighted total, teacher top-5, entropy and correctness per image."""
    rows: list[dict] = []
    dev = teacher.device
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size].to(dev)
        tg = torch.as_tensor(list(targets[i : i + batch_size]), device=dev)
        with torch.enable_grad():  # some terms (bn) use hooks; no grad is taken
            total, terms, logits = compute_energies(teacher, x, tg, energy, all_terms=True)
        bad = ~torch.isfinite(total.detach())
        if bool(bad.any()):  # NaN sorts as nothing and would be stored as "no energy": never score it as best
            from prism_gui.engine.teachers.errors import TeacherLoadError

            what = "the images are NaN (the guidance diverged)" if not bool(torch.isfinite(x).all()) else \
                "its outputs are NaN or infinite on these images"
            raise TeacherLoadError(
                f"The teacher '{getattr(teacher, 'source', '') or 'teacher'}' gave non-finite energies for "
                f"{int(bad.sum())} of {len(x)} images ({what}): the teacher is degenerate or the guidance scale too "
                "high. Nothing of this batch was stored; check the teacher's checkpoint, or lower the guidance scale.")
        probs = logits.softmax(-1)
        top_p, top_i = probs.topk(min(5, probs.shape[-1]), dim=-1)
        ent = -(probs * probs.clamp_min(1e-12).log()).sum(-1)
        for j in range(len(x)):
            rows.append({
                "energy": float(total[j]),
                "energies": {k: float(v[j]) for k, v in terms.items()},
                "top5": [[int(c), float(p)] for c, p in zip(top_i[j].tolist(), top_p[j].tolist(), strict=True)],
                "confidence": float(top_p[j, 0]),
                "entropy": float(ent[j]),
                "correct": bool(int(top_i[j, 0]) == int(tg[j])),
            })
    return rows
