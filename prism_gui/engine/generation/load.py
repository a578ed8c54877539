"""Loading text-to-image generators: the Digits prior and Stable Diffusion, one code path.

A generator is a diffusers-style folder (``unet/``, ``scheduler/``, ``text_encoder/``,
``tokenizer/`` and, for latent models, ``vae/``) or a Hugging Face hub id already in the local
cache.  Nothing is ever downloaded behind the user's back: hub ids resolve with
``local_files_only=True`` unless the caller explicitly allows downloads.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any


class GeneratorLoadError(RuntimeError):
    """A generator folder or id could not be loaded; the message says what to fix."""


@dataclasses.dataclass
class DiffusionComponents:
    unet: Any
    scheduler: Any
    text_encoder: Any
    tokenizer: Any
    vae: Any = None
    source: str = ""
    resolution: int = 512
    channels: int = 3
    world: str = "custom"

    @property
    def device(self):
        return next(self.unet.parameters()).device

    @property
    def dtype(self):
        return next(self.unet.parameters()).dtype

    def to(self, device=None, dtype=None):
        import torch

        if (device is None or self.device == torch.device(device)) and (dtype is None or self.dtype == dtype):
            return self  # already there (and diffusers would log its float32 notice again)
        for m in (self.unet, self.text_encoder, self.vae):
            if m is not None:
                m.to(device=device, dtype=dtype)
        return self


def builtin_prior_path() -> Path:
    from prism_gui.resources import resource_path

    return resource_path("digits_prior")


def load_generator(source: str | Path | None = None, *, allow_download: bool = False,
                   device: str | None = None, dtype=None) -> DiffusionComponents:
    """Load the components of a generator.

    ``source``: ``None`` or ``"digits"`` for the built-in Digits prior, a local diffusers
    folder, or a hub id (read from the local Hugging Face cache only, unless
    ``allow_download``).
    """
    from diffusers import AutoencoderKL, SchedulerMixin, UNet2DConditionModel  # noqa: F401
    from transformers import AutoTokenizer, CLIPTextModel

    if source is None or str(source) == "digits":
        source = builtin_prior_path()
    path = Path(str(source)).expanduser()
    local = path.exists()
    if not local and (str(source).startswith((".", "/", "~")) or str(source).count("/") != 1):
        raise GeneratorLoadError(
            f"Generator '{source}' not found: give a diffusers folder (with unet/, scheduler/, "
            "text_encoder/, tokenizer/) or a Hugging Face id such as "
            "'stable-diffusion-v1-5/stable-diffusion-v1-5' that is in your local cache."
        )
    where = str(path) if local else str(source)
    kw = {} if local else {"local_files_only": not allow_download}
    index: dict = {}
    try:
        if local:
            if not (path / "unet").is_dir():
                raise GeneratorLoadError(
                    f"'{path}' is not a diffusers folder: it has no unet/ subfolder. Point to the "
                    "folder that holds model_index.json.")
            if (path / "model_index.json").exists():
                index = json.loads((path / "model_index.json").read_text())
        unet = UNet2DConditionModel.from_pretrained(where, subfolder="unet", **kw)
        sched_cfg = _scheduler_config(where, kw)
        scheduler = _scheduler_from_config(sched_cfg)
        text_encoder = CLIPTextModel.from_pretrained(where, subfolder="text_encoder", **kw)
        tokenizer = AutoTokenizer.from_pretrained(where, subfolder="tokenizer", **kw)
        vae = None
        has_vae = (path / "vae").is_dir() if local else index.get("vae", [None])[0] is not None
        if not local:
            has_vae = True
        if has_vae:
            vae = AutoencoderKL.from_pretrained(where, subfolder="vae", **kw)
    except GeneratorLoadError:
        raise
    except OSError as e:
        hint = ("It is not in the local Hugging Face cache and downloads are off: download it "
                "once with `huggingface-cli download ID` or point to a local folder."
                if not local else "The folder is incomplete or corrupt: re-save it with "
                "`save_pretrained`.")
        raise GeneratorLoadError(f"Could not load generator '{source}': {e}. {hint}") from e
    prism = index.get("prism", {})
    if vae is not None:
        scale = 2 ** (len(vae.config.block_out_channels) - 1)
        resolution = unet.config.sample_size * scale
        channels = vae.config.out_channels
    else:
        resolution = prism.get("resolution", unet.config.sample_size)
        channels = prism.get("channels", unet.config.out_channels)
    comp = DiffusionComponents(unet=unet, scheduler=scheduler, text_encoder=text_encoder,
                               tokenizer=tokenizer, vae=vae, source=str(source),
                               resolution=int(resolution), channels=int(channels),
                               world=prism.get("world", "custom"))
    for m in (unet, text_encoder, vae):
        if m is not None:
            m.eval().requires_grad_(False)
    if device is not None or dtype is not None:
        comp.to(device, dtype)
    return comp


def _scheduler_config(where: str, kw: dict) -> dict:
    from diffusers import DDPMScheduler

    return DDPMScheduler.load_config(where, subfolder="scheduler", **kw)


SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "ddpm": "DDPMScheduler",
    "pndm": "PNDMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
}


def _scheduler_from_config(cfg: dict, name: str | None = None):
    import diffusers

    cls_name = SCHEDULERS.get(name, name) if name else cfg.get("_class_name", "DDPMScheduler")
    cls = getattr(diffusers, cls_name, None)
    if cls is None:
        raise GeneratorLoadError(f"Unknown scheduler '{name}'. Choose one of {sorted(SCHEDULERS)}.")
    return cls.from_config(cfg)


def make_scheduler(components: DiffusionComponents, name: str | None):
    """A fresh scheduler of type ``name`` (see ``SCHEDULERS``) from the generator's config."""
    return _scheduler_from_config(dict(components.scheduler.config), name)
