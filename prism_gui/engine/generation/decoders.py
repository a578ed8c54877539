"""Decoders: latents to images for the guidance step and for the stored images.

- The **guidance step** differentiates the teacher's energy through a decoder.  It is the
  generator's VAE by default; ``GuidanceSpec.decoder`` names a tiny one instead (diffusers'
  ``AutoencoderTiny``, TAESD-style: a folder or a Hugging Face id in the local cache), whose
  activations are a small fraction of the VAE's.  The stored images are always decoded by the
  full VAE.  ``checkpoint_decoder`` recomputes the decoder's activations in the backward pass
  instead of keeping them (diffusers' own gradient-checkpointing switch).
- The **final decode** can go one image at a time (``vae_slicing``) or in overlapping tiles
  (``vae_tiling``, diffusers' tiled decode: bounded memory at any resolution, with blended seams).
"""

from __future__ import annotations

import threading

import torch

_TINY: dict[tuple, object] = {}
_TINY_LOCK = threading.Lock()


def load_tiny_decoder(source: str, device=None, dtype=None, *, allow_download: bool = False):
    """An ``AutoencoderTiny`` from a local folder or the Hugging Face cache (never downloaded
    unless asked), kept once per (source, device, dtype)."""
    from pathlib import Path

    from diffusers import AutoencoderTiny

    from prism_gui.engine.generation.load import GeneratorLoadError, looks_like_hub_id

    key = (str(source), str(device), str(dtype))
    with _TINY_LOCK:
        if key in _TINY:
            return _TINY[key]
        local = Path(str(source)).expanduser().exists()
        if not local and not looks_like_hub_id(source):
            raise GeneratorLoadError(
                f"The tiny guidance decoder '{source}' was not found: give a folder with an AutoencoderTiny "
                "(config.json and weights) or a Hugging Face id in your local cache (e.g. madebyollin/taesd).")
        try:
            tiny = AutoencoderTiny.from_pretrained(str(Path(str(source)).expanduser()) if local else str(source),
                                                   **({} if local else {"local_files_only": not allow_download}))
        except (OSError, ValueError) as e:
            raise GeneratorLoadError(
                f"Could not load the tiny guidance decoder '{source}': {e}. Give a folder with an AutoencoderTiny "
                "(config.json and weights, e.g. a saved copy of madebyollin/taesd for SD 1.x/2.x or "
                "madebyollin/taesdxl for SDXL) or a Hugging Face id in your local cache.") from e
        tiny.eval().requires_grad_(False).to(device=device)
        if dtype is not None and dtype != tiny.dtype:
            tiny.to(dtype=dtype)
        _TINY[key] = tiny
        return tiny


def check_tiny_decoder(tiny, comp) -> None:
    if comp.vae is None:
        raise ValueError("a tiny guidance decoder needs a latent generator (with a VAE); this one makes pixels")
    want = comp.unet.config.out_channels
    if tiny.config.latent_channels != want:
        raise ValueError(f"the tiny decoder takes {tiny.config.latent_channels}-channel latents but the generator "
                         f"makes {want}-channel ones: use the tiny decoder made for this generator's VAE "
                         "(taesd for SD 1.x/2.x, taesdxl for SDXL)")


def guidance_vae(comp, source: str = ""):
    """The decoder the guidance gradient goes through: the tiny one named by ``source``, else the
    generator's VAE (``None`` for a pixel model)."""
    if not source:
        return comp.vae
    tiny = load_tiny_decoder(source, comp.device, comp.dtype)
    check_tiny_decoder(tiny, comp)
    return tiny


def decode_with(vae, latents: torch.Tensor) -> torch.Tensor:
    """Latents -> images in [-1, 1], unclamped (differentiable); a pixel model's samples as they are."""
    if vae is None:
        return latents
    return vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor).sample.to(latents.dtype)


def decode(comp, latents: torch.Tensor) -> torch.Tensor:
    return decode_with(comp.vae, latents)


@torch.no_grad()
def final_decode(comp, latents: torch.Tensor, *, slicing: bool = False, tiling: bool = False) -> torch.Tensor:
    """The stored images: the full VAE, one image at a time (``slicing``) and/or in tiles (``tiling``)."""
    if comp.vae is None:
        return latents
    with _switch(comp.vae, "tiling", tiling and hasattr(comp.vae, "enable_tiling")):
        if slicing:
            return torch.cat([decode(comp, latents[i : i + 1]) for i in range(len(latents))])
        return decode(comp, latents)


class _switch:
    """Turn one of a diffusers model's own switches on for a block and back off after it."""

    def __init__(self, model, name: str, on: bool):
        self.model, self.name, self.on = model, name, on

    def __enter__(self):
        if self.on:
            getattr(self.model, f"enable_{self.name}")()
        return self

    def __exit__(self, *exc):
        if self.on:
            getattr(self.model, f"disable_{self.name}")()
        return False


class decoder_checkpointing:
    """Activation checkpointing through the guidance decoder while the gradient is taken: its
    blocks are recomputed in the backward pass, not stored (a no-op for ``None`` or off)."""

    def __init__(self, vae, on: bool):
        self.vae = vae if on and vae is not None and getattr(vae, "_supports_gradient_checkpointing", False) else None
        self.enabled_here = False

    def __enter__(self):
        if self.vae is not None and not self.vae.is_gradient_checkpointing:
            self.vae.enable_gradient_checkpointing()
            self.enabled_here = True
        return self

    def __exit__(self, *exc):
        if self.enabled_here:
            self.vae.disable_gradient_checkpointing()
        return False
