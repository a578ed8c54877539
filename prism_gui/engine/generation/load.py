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
    family: str = "sd"  # see families.py: sd | sdxl
    text_encoder_2: Any = None  # SDXL's second text encoder (with projection) and its tokenizer
    tokenizer_2: Any = None
    force_zeros_for_empty_prompt: bool = False  # SDXL: an empty negative prompt is the zero embedding

    @property
    def vae_scale(self) -> int:
        """Pixels per latent cell (8 for Stable Diffusion's VAE, 1 for pixel-space priors)."""
        return 1 if self.vae is None else 2 ** (len(self.vae.config.block_out_channels) - 1)

    offload_device: Any = None  # set by enable_offload: where the models run; between calls they wait on the CPU
    _offload_hooks: list = dataclasses.field(default_factory=list, repr=False)

    @property
    def device(self):
        """Where the sampler puts its tensors: the models' device, or the execution device of an offload."""
        if self.offload_device is not None:
            return self.offload_device
        return next(self.unet.parameters()).device

    def models(self) -> list:
        return [m for m in (self.text_encoder, self.text_encoder_2, self.unet, self.vae) if m is not None]

    def enable_offload(self, device) -> DiffusionComponents:
        """Model CPU offload (accelerate's hooks, as diffusers' ``enable_model_cpu_offload``): each
        model moves to ``device`` when it runs and the one before it goes back to the CPU, so the
        GPU holds one model at a time (the UNet is the largest) for some time per step."""
        import torch
        from accelerate import cpu_offload_with_hook

        device = torch.device(device)
        if self.offload_device == device:
            return self
        self.disable_offload()
        hook = None
        for m in self.models():
            m.to("cpu")
            _, hook = cpu_offload_with_hook(m, device, prev_module_hook=hook)
            self._offload_hooks.append(hook)
        self.offload_device = device
        return self

    def disable_offload(self) -> DiffusionComponents:
        for h in self._offload_hooks:
            h.remove()
        self._offload_hooks.clear()
        self.offload_device = None
        return self

    @property
    def dtype(self):
        return next(self.unet.parameters()).dtype

    def to(self, device=None, dtype=None):
        import torch

        if self.offload_device is not None:
            device = None  # offloaded models stay on the CPU between calls; only the dtype changes
        if (device is None or self.device == torch.device(device)) and (dtype is None or self.dtype == dtype):
            return self  # already there (and diffusers would log its float32 notice again)
        for m in (self.unet, self.text_encoder, self.text_encoder_2):
            if m is not None:
                m.to(device=device, dtype=dtype)
        if self.vae is not None:
            # a VAE that overflows in fp16 (SDXL's: ``force_upcast``) stays in float32, as the
            # pipelines upcast it; latents are cast to its dtype when decoding
            upcast = dtype == torch.float16 and getattr(self.vae.config, "force_upcast", False)
            self.vae.to(device=device, dtype=torch.float32 if upcast else dtype)
        return self


def looks_like_hub_id(source) -> bool:
    """``org/name``, not a (missing) path: how a source that is not on disk is read."""
    text = str(source)
    return not text.startswith((".", "/", "~")) and text.count("/") == 1


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
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import AutoTokenizer

    if source is None or str(source) == "digits":
        source = builtin_prior_path()
    path = Path(str(source)).expanduser()
    local = path.exists()
    if not local and not looks_like_hub_id(source):
        raise GeneratorLoadError(
            f"Generator '{source}' not found: give a diffusers folder (with unet/, scheduler/, "
            "text_encoder/, tokenizer/) or a Hugging Face id such as "
            "'stable-diffusion-v1-5/stable-diffusion-v1-5' that is in your local cache."
        )
    if not local and not allow_download:
        # a cached hub id loads from its snapshot folder: the cache holds the files that
        # `huggingface-cli download` stored, without the "not found" markers that an online
        # load leaves and that per-file offline lookups need
        snapshot = _cached_snapshot(str(source))
        if snapshot is not None:
            comp = load_generator(snapshot, device=device, dtype=dtype)
            comp.source = str(source)
            return comp
    if local and path.is_file():
        comp = _load_single_file(path)
        if device is not None or dtype is not None:
            comp.to(device, dtype)
        return comp
    where = str(path) if local else str(source)
    kw = {} if local else {"local_files_only": not allow_download}
    try:
        index = _local_index(path) if local else _hub_model_index(where, kw)
        unet = UNet2DConditionModel.from_pretrained(where, subfolder="unet", **kw)
        sched_cfg = _scheduler_config(where, kw)
        # the pipeline's index names the scheduler class, as diffusers reads it
        scheduler = _scheduler_from_config(sched_cfg, (index.get("scheduler") or [None, None])[1])
        text_encoder = _text_encoder_class(index, "text_encoder").from_pretrained(where, subfolder="text_encoder", **kw)
        tokenizer = AutoTokenizer.from_pretrained(where, subfolder="tokenizer", **kw)
        text_encoder_2 = tokenizer_2 = None
        if (index.get("text_encoder_2") or [None])[0] is not None:
            text_encoder_2 = _text_encoder_class(index, "text_encoder_2").from_pretrained(
                where, subfolder="text_encoder_2", **kw)
            tokenizer_2 = AutoTokenizer.from_pretrained(where, subfolder="tokenizer_2", **kw)
        vae = None
        has_vae = (path / "vae").is_dir() if local else index.get("vae", [None])[0] is not None
        if not local:
            has_vae = True
        if has_vae:
            vae = AutoencoderKL.from_pretrained(where, subfolder="vae", **kw)
    except GeneratorLoadError:
        raise
    except (OSError, ValueError, RuntimeError) as e:  # incl. damaged JSON and weights the checks above miss
        hint = ("It is not in the local Hugging Face cache and downloads are off: download it "
                "once with `huggingface-cli download ID` or point to a local folder."
                if not local else "The folder is incomplete or corrupt: re-save it with "
                "`save_pretrained`.")
        raise GeneratorLoadError(f"Could not load generator '{source}': {e}. {hint}") from e
    comp = _assemble(dict(unet=unet, scheduler=scheduler, text_encoder=text_encoder, tokenizer=tokenizer, vae=vae,
                          text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2), source, index)
    if device is not None or dtype is not None:
        comp.to(device, dtype)
    return comp


def _local_index(path: Path) -> dict:
    """A local diffusers folder's ``model_index.json`` ({} without one), after the checks the app's
    menu makes: a folder without ``unet/``, or with missing or damaged parts, is refused, saying why."""
    if not (path / "unet").is_dir():
        raise GeneratorLoadError(f"'{path}' is not a diffusers folder: it has no unet/ subfolder. Point to the "
                                 "folder that holds model_index.json.")
    from prism_gui.engine.generation.local_models import describe_path

    problem = describe_path(path).problem  # what the app's menu says: missing, damaged or other parts
    if problem:
        raise GeneratorLoadError(f"Generator folder '{path}' cannot be used: {problem}")
    return json.loads((path / "model_index.json").read_text()) if (path / "model_index.json").exists() else {}


def _assemble(parts: dict, source, index: dict) -> DiffusionComponents:
    from prism_gui.engine.generation.families import family_of

    unet, vae = parts["unet"], parts.get("vae")
    prism = index.get("prism", {})
    if vae is not None:
        scale = 2 ** (len(vae.config.block_out_channels) - 1)
        resolution = unet.config.sample_size * scale
        channels = vae.config.out_channels
    else:
        resolution = prism.get("resolution", unet.config.sample_size)
        channels = prism.get("channels", unet.config.out_channels)
    comp = DiffusionComponents(**parts, source=str(source), resolution=int(resolution), channels=int(channels),
                               world=prism.get("world", "custom"), family=family_of(unet.config),
                               force_zeros_for_empty_prompt=bool(index.get("force_zeros_for_empty_prompt", False)))
    if comp.family == "sdxl" and comp.text_encoder_2 is None:
        raise GeneratorLoadError(f"'{source}' has an SDXL UNet but no text_encoder_2/: SDXL needs both text "
                                 "encoders; point to the complete diffusers folder")
    for m in (comp.unet, comp.text_encoder, comp.text_encoder_2, comp.vae):
        if m is not None:
            m.eval().requires_grad_(False)
    return comp


def _load_single_file(path: Path) -> DiffusionComponents:
    """An A1111/Civitai-style one-file checkpoint, with the architecture configs the project ships
    (:mod:`.single_file`); the family is read from its tensors."""
    from prism_gui.engine.generation.single_file import load_single_file, shipped_config

    parts = load_single_file(path)  # refuses a file that is not a checkpoint, saying what it expects
    family = "sdxl" if parts.get("text_encoder_2") is not None else "sd15"
    index = json.loads((shipped_config(family) / "model_index.json").read_text())
    return _assemble({"text_encoder_2": None, "tokenizer_2": None, **parts}, path, index)


def _cached_snapshot(repo_id: str) -> Path | None:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (OSError, ValueError):  # not cached: the per-file path below says so with the fix
        return None


def _hub_model_index(where: str, kw: dict) -> dict:
    from huggingface_hub import hf_hub_download

    try:
        return json.loads(Path(hf_hub_download(where, "model_index.json", local_files_only=kw.get(
            "local_files_only", True))).read_text())
    except (OSError, ValueError):  # an older cache without the index: the components still load by name
        return {}


def _text_encoder_class(index: dict, key: str):
    """The text encoder's transformers class as ``model_index.json`` names it (CLIPTextModel for
    SD, CLIPTextModelWithProjection for SDXL's second encoder)."""
    import transformers

    name = (index.get(key) or [None, None])[1]
    if key == "text_encoder_2" and not name:
        name = "CLIPTextModelWithProjection"
    cls = getattr(transformers, name or "CLIPTextModel", None)
    if cls is None:
        raise GeneratorLoadError(f"the generator's {key} is a '{name}', which this version of transformers "
                                 "does not have: update transformers")
    return cls


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
