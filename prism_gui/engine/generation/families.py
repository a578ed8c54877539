"""Model families: what differs between Stable Diffusion 1.x/2.x, SDXL and the few-step models,
as small adapters beside the one sampler loop (:mod:`.sampler`).

A family supplies the *conditioning* of the UNet, nothing else; the loop, the schedulers and the
x̂0/noise algebra (:mod:`.parametrization`) are shared.  Each adapter reproduces what the matching
diffusers pipeline feeds its UNet, and a parity test holds it to that pipeline:

- ``sd`` (``StableDiffusionPipeline``; SD 1.x, SD 2.x with epsilon or v-prediction, SD-Turbo):
  one CLIP text encoder, its last hidden state.
- ``sdxl`` (``StableDiffusionXLPipeline``; SDXL, SDXL-Turbo): two text encoders whose
  penultimate hidden states are concatenated, the second encoder's pooled projection and the
  size/crop "time ids" as ``added_cond_kwargs``; an empty negative prompt is all zeros where the
  model asks for it (``force_zeros_for_empty_prompt``).

A UNet with a guidance embedding (``time_cond_proj_dim``: LCM, LCM-distilled SD/SDXL) takes the
guidance scale as ``timestep_cond`` (an embedding of ``cfg - 1``) and runs once per step,
as ``LatentConsistencyModelPipeline`` and the SD/SDXL pipelines do; other UNets use
classifier-free guidance when ``cfg > 1`` (Turbo models: ``cfg <= 1``, one pass).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from prism_gui.engine.registry import Registry

FAMILIES = Registry("generator family")


@dataclasses.dataclass
class Conditioning:
    """Everything the UNet takes besides the sample and the timestep, for a batch of ``n`` images.

    With classifier-free guidance (``doubled``) the rows are ``[unconditional; conditional]``,
    as the pipelines order them; ``timestep_cond`` (guidance embedding) has one row per image."""

    embeds: torch.Tensor
    added: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)
    timestep_cond: torch.Tensor | None = None
    doubled: bool = False

    @property
    def n(self) -> int:
        return len(self.embeds) // (2 if self.doubled else 1)

    def unet_kwargs(self) -> dict:
        kw: dict = {}
        if self.added:
            kw["added_cond_kwargs"] = self.added
        if self.timestep_cond is not None:
            kw["timestep_cond"] = self.timestep_cond
        return kw

    def rows(self, a: int, b: int) -> Conditioning:
        """The conditioning of images ``a:b`` (both halves when doubled)."""
        n = self.n

        def take(t: torch.Tensor) -> torch.Tensor:
            return torch.cat([t[a:b], t[n + a : n + b]]) if self.doubled else t[a:b]

        return Conditioning(take(self.embeds), {k: take(v) for k, v in self.added.items()},
                            None if self.timestep_cond is None else self.timestep_cond[a:b], self.doubled)


def uses_guidance_embedding(comp) -> bool:
    return getattr(comp.unet.config, "time_cond_proj_dim", None) is not None


def uses_cfg(comp, cfg: float) -> bool:
    """Classifier-free guidance doubles the batch when ``cfg > 1``, unless the UNet embeds the
    guidance scale (the rule of diffusers' SD, SDXL and LCM pipelines)."""
    return cfg > 1 and not uses_guidance_embedding(comp)


def guidance_embedding(comp, cfg: float, n: int) -> torch.Tensor | None:
    """``timestep_cond`` for a UNet with a guidance embedding: diffusers' own sinusoidal
    embedding of ``cfg - 1`` (the pipelines' ``get_guidance_scale_embedding``)."""
    if not uses_guidance_embedding(comp):
        return None
    from diffusers import LatentConsistencyModelPipeline

    w = torch.full((n,), float(cfg) - 1.0)
    # the method uses no pipeline state; it is diffusers' definition of the embedding
    emb = LatentConsistencyModelPipeline.get_guidance_scale_embedding(
        None, w, embedding_dim=comp.unet.config.time_cond_proj_dim)
    return emb.to(comp.device, comp.dtype)


def _tokens(tokenizer, prompts: Sequence[str], device) -> torch.Tensor:
    tok = tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt")
    return tok.input_ids.to(device)


class Family:
    name = ""
    label = ""
    # the pipeline pins the scheduler's first step index (SDXL's does; SD's finds it from the timestep)
    begin_at_first_step = False

    def encode(self, comp, prompts: Sequence[str], negatives: Sequence[str] | None, cfg: float,
               size: int) -> Conditioning:
        raise NotImplementedError


@FAMILIES.register("sd", "Stable Diffusion 1.x / 2.x (epsilon or v-prediction), SD-Turbo, LCM-SD")
class SDFamily(Family):
    name = "sd"
    label = "Stable Diffusion 1.x/2.x"

    @torch.no_grad()
    def text(self, comp, prompts: Sequence[str]) -> torch.Tensor:
        ids = _tokens(comp.tokenizer, prompts, comp.device)
        return comp.text_encoder(ids)[0].to(comp.dtype)

    def encode(self, comp, prompts, negatives, cfg, size):
        cond = self.text(comp, prompts)
        if not uses_cfg(comp, cfg):
            return Conditioning(cond, timestep_cond=guidance_embedding(comp, cfg, len(prompts)))
        uncond = self.text(comp, list(negatives) if negatives else [""] * len(prompts))
        return Conditioning(torch.cat([uncond, cond]), doubled=True)


@FAMILIES.register("sdxl", "Stable Diffusion XL (base, Turbo, LCM-SDXL): two text encoders, size conditioning")
class SDXLFamily(Family):
    name = "sdxl"
    label = "Stable Diffusion XL"
    begin_at_first_step = True

    @torch.no_grad()
    def text(self, comp, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Penultimate hidden states of both encoders, concatenated, and the second's pooled
        projection (``StableDiffusionXLPipeline.encode_prompt`` with ``clip_skip=None``)."""
        states, pooled = [], None
        for tokenizer, encoder in ((comp.tokenizer, comp.text_encoder), (comp.tokenizer_2, comp.text_encoder_2)):
            out = encoder(_tokens(tokenizer, prompts, comp.device), output_hidden_states=True)
            pooled = out[0]
            states.append(out.hidden_states[-2])
        return torch.cat(states, dim=-1).to(comp.dtype), pooled.to(comp.dtype)

    def time_ids(self, comp, size: int, n: int) -> torch.Tensor:
        """(original size, crop top-left, target size), as the pipeline builds them."""
        ids = torch.tensor([[size, size, 0, 0, size, size]], dtype=comp.dtype, device=comp.device)
        return ids.repeat(n, 1)

    def encode(self, comp, prompts, negatives, cfg, size):
        n = len(prompts)
        cond, pooled = self.text(comp, prompts)
        time_ids = self.time_ids(comp, size, n)
        if not uses_cfg(comp, cfg):
            return Conditioning(cond, {"text_embeds": pooled, "time_ids": time_ids},
                                timestep_cond=guidance_embedding(comp, cfg, n))
        negatives = list(negatives) if negatives else [""] * n
        u_cond, u_pooled = self.text(comp, negatives)
        if comp.force_zeros_for_empty_prompt:
            # an image without a negative prompt gets the zero negative, as the pipeline gives it
            empty = torch.tensor([not (s or "").strip() for s in negatives], device=comp.device)
            u_cond = torch.where(empty[:, None, None], torch.zeros_like(u_cond), u_cond)
            u_pooled = torch.where(empty[:, None], torch.zeros_like(u_pooled), u_pooled)
        return Conditioning(torch.cat([u_cond, cond]),
                            {"text_embeds": torch.cat([u_pooled, pooled]), "time_ids": torch.cat([time_ids, time_ids])},
                            doubled=True)


def family_of(unet_config) -> str:
    """The family a UNet belongs to, from its configuration (SDXL's UNet conditions on text and
    size embeddings: ``addition_embed_type == "text_time"``)."""
    return "sdxl" if getattr(unet_config, "addition_embed_type", None) == "text_time" else "sd"


def family(comp) -> Family:
    return FAMILIES.get(comp.family)()


def describe(comp) -> str:
    """One line for menus and logs: family, prediction type, native size, few-step traits."""
    fam = FAMILIES.get(comp.family)
    ptype = comp.scheduler.config.get("prediction_type", "epsilon")
    parts = [fam.label, ptype.replace("_", "-"), f"{comp.resolution} px"]
    if uses_guidance_embedding(comp):
        parts.append("guidance embedding (LCM)")
    return ", ".join(parts)
