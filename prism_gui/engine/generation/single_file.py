"""Single-file Stable Diffusion checkpoints (A1111/Civitai ``.safetensors``/``.ckpt``), loaded offline.

A one-file checkpoint holds the weights in the original (LDM) key layout and nothing about the
architecture.  diffusers' ``from_single_file`` normally fetches that description (the diffusers
configs) from the Hub; here it comes from ``resources/generator_configs/<family>/``, which ships
the published configs (no weights) of three families:

========== ============================================== ============ ===============
family      configs of                                      resolution   prediction
========== ============================================== ============ ===============
sd15        stable-diffusion-v1-5/stable-diffusion-v1-5     512          epsilon
sd2         stabilityai/stable-diffusion-2-1                768          v_prediction
sd2-base    stabilityai/stable-diffusion-2-1-base           512          epsilon
sdxl        stabilityai/stable-diffusion-xl-base-1.0        1024         epsilon
========== ============================================== ============ ===============

The CLIP BPE vocabulary (``clip_bpe/vocab.json`` + ``merges.txt``) is shipped once and copied
into a temporary config folder at load time, beside each family's tokenizer configs.

The family is told from the tensor *names and shapes* alone (:func:`detect_family`); SD 2.x's
768-v and 512-base models share one architecture, so their prediction type comes from hints in or
beside the file (see :func:`_prediction_hint`), else the diffusers default (v-prediction, 768 px).
``family=`` and ``prediction_type=`` override both.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prism_gui.engine.generation.load import GeneratorLoadError

CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth")
PREDICTION_TYPES = ("epsilon", "v_prediction")

UNET = "model.diffusion_model."
VAE = "first_stage_model."
# the token embedding of each text encoder, per text-encoder layout of the original checkpoints
TEXT_ENCODERS = {
    "clip": {"text_encoder": "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"},
    "openclip": {"text_encoder": "cond_stage_model.model.token_embedding.weight"},
    "sdxl": {"text_encoder": "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight",
             "text_encoder_2": "conditioner.embedders.1.model.token_embedding.weight"},
}
# where each layout's transformer layers are numbered (to count them)
TEXT_LAYERS = {
    "cond_stage_model.transformer.": r"cond_stage_model\.transformer\.text_model\.encoder\.layers\.(\d+)\.",
    "cond_stage_model.model.": r"cond_stage_model\.model\.transformer\.resblocks\.(\d+)\.",
    "conditioner.embedders.0.": r"conditioner\.embedders\.0\.transformer\.text_model\.encoder\.layers\.(\d+)\.",
    "conditioner.embedders.1.": r"conditioner\.embedders\.1\.model\.transformer\.resblocks\.(\d+)\.",
}


@dataclass(frozen=True)
class Family:
    name: str
    title: str
    pipeline: str  # the diffusers pipeline class
    text_layout: str  # a key of TEXT_ENCODERS


FAMILIES = {
    f.name: f
    for f in (
        Family("sd15", "Stable Diffusion 1.x (1.5 and its fine-tunes)", "StableDiffusionPipeline", "clip"),
        Family("sd2", "Stable Diffusion 2.x, 768 px v-prediction (2.0-v, 2.1)", "StableDiffusionPipeline",
               "openclip"),
        Family("sd2-base", "Stable Diffusion 2.x base, 512 px epsilon (2.0-base, 2.1-base)",
               "StableDiffusionPipeline", "openclip"),
        Family("sdxl", "Stable Diffusion XL base 1.0 and its fine-tunes", "StableDiffusionXLPipeline", "sdxl"),
    )
}
ALIASES = {"sd1": "sd15", "sd1.5": "sd15", "sd-1.5": "sd15", "v1": "sd15", "sd21": "sd2", "sd2.1": "sd2",
           "sd2-768": "sd2", "v2": "sd2", "sd21-base": "sd2-base", "sd2.1-base": "sd2-base", "xl": "sdxl",
           "sd-xl": "sdxl"}


def configs_root() -> Path:
    from prism_gui.resources import resource_path

    return resource_path("generator_configs")


def shipped_config(family: str) -> Path:
    """The shipped diffusers config folder of ``family`` (configs only: no weights, no vocabulary)."""
    return configs_root() / _family(family).name


# --------------------------------------------------------------------------------------------
# reading a checkpoint's tensor names and shapes


@dataclass
class Header:
    """What a checkpoint says about itself without reading its weights."""

    path: Path
    shapes: dict[str, tuple[int, ...]]
    metadata: dict[str, str] = field(default_factory=dict)  # safetensors ``__metadata__``
    global_step: int | None = None  # .ckpt: the training step stored beside the state dict

    def has_prefix(self, prefix: str) -> bool:
        return any(k.startswith(prefix) for k in self.shapes)


def read_header(path: str | Path) -> Header:
    """Tensor names and shapes of a ``.safetensors`` or ``.ckpt`` file, without loading weights."""
    path = _checked_path(path)
    if path.suffix.lower() == ".safetensors":
        return _safetensors_header(path)
    return _torch_header(path)


def _checked_path(path: str | Path) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise GeneratorLoadError(f"Checkpoint '{path}' not found: check the path (a single-file Stable Diffusion "
                                 f"checkpoint ends in {', '.join(CHECKPOINT_SUFFIXES)}).")
    if path.is_dir():
        raise GeneratorLoadError(f"'{path}' is a folder, not a single-file checkpoint: load a diffusers folder "
                                 "(with model_index.json) as a generator folder instead.")
    if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
        raise GeneratorLoadError(f"'{path.name}' is not a single-file checkpoint: expected a file ending in "
                                 f"{', '.join(CHECKPOINT_SUFFIXES)}.")
    return path


def _safetensors_header(path: Path) -> Header:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
            metadata = dict(f.metadata() or {})
    except Exception as e:  # safetensors raises its own SafetensorError (and OSError)
        raise GeneratorLoadError(f"'{path}' is not a readable .safetensors checkpoint ({e}): the file is "
                                 "truncated or not a safetensors file; download it again.") from e
    return Header(path, shapes, metadata)


def _torch_header(path: Path) -> Header:
    import pickle

    import torch

    try:
        # on the meta device: names, shapes and plain values, no weights read into memory
        obj = torch.load(str(path), map_location="meta", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        if found is None:
            raise GeneratorLoadError(f"'{path}' is not a readable PyTorch checkpoint: the file is truncated or "
                                     "not a checkpoint.") from e
        raise GeneratorLoadError(
            f"'{path.name}' holds pickled Python objects besides its tensors ({found.group(1)}: a training "
            "checkpoint?), which are not loaded, as they could run code. If you trust its source, convert it once "
            "to .safetensors (load it with torch.load(weights_only=False), save its 'state_dict' tensors with "
            "safetensors.torch.save_file) and load that file.") from e
    except Exception as e:  # torch raises RuntimeError, KeyError, EOFError... on non-checkpoints
        raise GeneratorLoadError(f"'{path}' is not a readable PyTorch checkpoint ({type(e).__name__}: {e}): "
                                 "the file is truncated or not a checkpoint.") from e
    if not isinstance(obj, dict):
        raise GeneratorLoadError(f"'{path.name}' holds a {type(obj).__name__}, not a state dict: it is not a "
                                 "Stable Diffusion checkpoint.")
    step = obj.get("global_step")
    while isinstance(obj.get("state_dict"), dict):  # as diffusers unwraps it
        obj = obj["state_dict"]
    shapes = {k: tuple(v.shape) for k, v in obj.items() if isinstance(v, torch.Tensor)}
    return Header(path, shapes, global_step=step if isinstance(step, int) else None)


# --------------------------------------------------------------------------------------------
# which family


def supported_families() -> str:
    return ", ".join(f"'{f.name}' ({f.title})" for f in FAMILIES.values())


def _family(name: str) -> Family:
    key = ALIASES.get(str(name).strip().lower(), str(name).strip().lower())
    if key not in FAMILIES:
        raise GeneratorLoadError(f"Unknown generator family '{name}'. Supported families: {supported_families()}. "
                                 "Pass one of them as family=... (--family in the CLI), or leave it out to detect "
                                 "the family from the checkpoint.")
    return FAMILIES[key]


def detect_family(path: str | Path, *, prediction_type: str | None = None) -> str:
    """The family of a single-file checkpoint, told from its tensor names and shapes.

    SD 2.x 768-v and 512-base share one architecture: ``prediction_type`` (if given), then the hints
    of :func:`_prediction_hint`, choose between ``sd2`` and ``sd2-base``; the default is ``sd2``."""
    return identify(path, prediction_type=prediction_type)[0]


def identify(path: str | Path, *, prediction_type: str | None = None) -> tuple[str, str | None]:
    """The family of a single-file checkpoint and the prediction type it asks for (``prediction_type``,
    else its hints; ``None``: the family's default), from one read of its tensor names and shapes."""
    header = read_header(path)
    pred = _prediction(prediction_type) or _prediction_hint(header)
    return _detect(header, pred), pred


def _detect(header: Header, prediction: str | None = None) -> str:
    name = header.path.name
    if not header.has_prefix(UNET):
        raise GeneratorLoadError(f"'{name}' is not a full Stable Diffusion checkpoint: {_what_else(header)} "
                                 f"A single-file checkpoint has {UNET}* (UNet), {VAE}* (VAE) and text-encoder "
                                 "tensors.")
    conv_in = header.shapes.get(UNET + "input_blocks.0.0.weight")
    if conv_in is not None and len(conv_in) == 4 and conv_in[1] != 4:
        kind = {9: "an inpainting model", 8: "an InstructPix2Pix model"}.get(conv_in[1], "not a text-to-image model")
        raise GeneratorLoadError(f"'{name}' is {kind} (its UNet takes {conv_in[1]} input channels, a text-to-image "
                                 "model takes 4): only text-to-image checkpoints can generate a training set.")
    if header.has_prefix("conditioner.embedders.1.model."):
        return "sdxl"
    if header.has_prefix("conditioner.embedders.0.model."):
        raise GeneratorLoadError(f"'{name}' is an SDXL refiner (one OpenCLIP text encoder): it refines images, it "
                                 "does not generate them from text. Use an SDXL base checkpoint.")
    context = _cross_attention_dim(header)
    if context == 768:
        return "sd15"
    if context == 1024:
        return "sd2-base" if prediction == "epsilon" else "sd2"
    raise GeneratorLoadError(
        f"'{name}' has a UNet this loader does not know (cross-attention width {context}). Supported families: "
        f"{supported_families()}. If it is one of them, pass family=... explicitly.")


def _what_else(header: Header) -> str:
    keys = list(header.shapes)
    if not keys:
        return "it holds no tensors."
    if any("lora" in k.lower() for k in keys[:50]):
        return "it looks like a LoRA (lora_* tensors), which adapts a checkpoint and is not one."
    if any(k.startswith(("encoder.", "decoder.", VAE)) for k in keys) and not any("diffusion" in k for k in keys):
        return "it looks like a VAE alone."
    if any(k.startswith(("down_blocks.", "conv_in.")) for k in keys):
        return ("it is one diffusers model in diffusers' layout; load the whole diffusers folder "
                "(with model_index.json) instead.")
    if any(k.startswith(("emb_params", "string_to_param", "clip_l", "clip_g")) for k in keys):
        return "it looks like a textual-inversion embedding."
    return f"its {len(keys)} tensors (e.g. '{keys[0]}') are not a Stable Diffusion model."


def _cross_attention_dim(header: Header) -> int | None:
    for k, shape in header.shapes.items():
        if k.startswith(UNET) and k.endswith("attn2.to_k.weight") and len(shape) == 2:
            return shape[1]
    return None


def _prediction(value: str | None) -> str | None:
    if value is None:
        return None
    v = {"v": "v_prediction", "v-prediction": "v_prediction", "eps": "epsilon"}.get(value.strip().lower(),
                                                                                   value.strip().lower())
    if v not in PREDICTION_TYPES:
        raise GeneratorLoadError(f"Unknown prediction type '{value}': use 'epsilon' or 'v_prediction'.")
    return v


def _prediction_hint(header: Header) -> str | None:
    """The prediction type a checkpoint says it was trained for, if it says.

    In order: a ``v_pred`` marker tensor (ComfyUI's convention); the Stability AI model-spec metadata
    of a ``.safetensors`` (``modelspec.prediction_type`` / ``modelspec.architecture``, written by
    kohya's sd-scripts and others); a sidecar ``<name>.yaml`` original config as A1111 reads it
    (``parameterization: "v"``, else epsilon); the training step of SD 2.0-base (875000) in a .ckpt,
    diffusers' own heuristic."""
    if "v_pred" in header.shapes:
        return "v_prediction"
    pred = header.metadata.get("modelspec.prediction_type", "").strip().lower()
    if pred in ("v", "v_prediction", "v-prediction", "epsilon", "eps"):
        return "epsilon" if pred.startswith("eps") else "v_prediction"
    arch = header.metadata.get("modelspec.architecture", "").strip().lower()
    if arch.startswith("stable-diffusion-v2"):  # stable-diffusion-v2-512 | stable-diffusion-v2-768-v
        return "v_prediction" if arch.endswith("-v") else "epsilon"
    yaml = header.path.with_suffix(".yaml")
    if yaml.is_file():
        m = re.search(r"^\s*parameterization:\s*[\"']?(\w+)", yaml.read_text(errors="replace"), re.MULTILINE)
        return "v_prediction" if m and m.group(1) == "v" else "epsilon"
    if header.global_step == 875000:
        return "epsilon"
    return None


# --------------------------------------------------------------------------------------------
# checking a file against a family's configs


def check_architecture(header: Header, family: str, config: str | Path | None = None) -> None:
    """Raise a :class:`GeneratorLoadError` unless the checkpoint's tensors fit ``family`` as
    configured in ``config`` (default: the shipped configs), naming the first mismatch."""
    fam = _family(family)
    cfg = Path(config) if config is not None else shipped_config(fam.name)
    problems = _mismatches(header, fam, cfg)
    if problems:
        try:
            seen = _detect(header)
            hint = f" Its tensors look like '{seen}': pass family='{seen}' or leave family out."
        except GeneratorLoadError:
            hint = f" Supported families: {supported_families()}."
        raise GeneratorLoadError(f"'{header.path.name}' does not match the {fam.name} architecture: "
                                 + "; ".join(problems[:3]) + "." + hint)


def _mismatches(header: Header, fam: Family, cfg: Path) -> list[str]:
    unet = _read_json(cfg / "unet" / "config.json")
    vae = _read_json(cfg / "vae" / "config.json")
    problems: list[str] = []

    def expect(key: str, shape: tuple[int, ...], what: str) -> None:
        got = header.shapes.get(key)
        if got is None:
            problems.append(f"it lacks the {what} ({key})")
        elif tuple(got) != tuple(shape):
            problems.append(f"its {what} {key} has shape {tuple(got)}, {fam.name} expects {tuple(shape)}")

    boc = unet.get("block_out_channels", [320])[0]
    k = unet.get("conv_in_kernel", 3)
    expect(UNET + "input_blocks.0.0.weight", (boc, unet.get("in_channels", 4), k, k), "UNet input convolution")
    expect(UNET + "out.2.weight", (unet.get("out_channels", 4), boc, k, k), "UNet output convolution")
    context = _cross_attention_dim(header)
    if context is not None and context != unet.get("cross_attention_dim"):
        problems.append(f"its UNet cross-attends to {context}-wide text features, {fam.name} to "
                        f"{unet.get('cross_attention_dim')}")
    if unet.get("addition_embed_type") == "text_time":
        expect(UNET + "label_emb.0.0.weight", (unet.get("time_embedding_dim") or 4 * boc,
                                                 unet.get("projection_class_embeddings_input_dim")),
               "UNet size/text embedding")
    elif header.has_prefix(UNET + "label_emb."):
        problems.append("its UNet has SDXL's size/text embedding (label_emb)")
    vboc = vae.get("block_out_channels", [128])[0]
    expect(VAE + "encoder.conv_in.weight", (vboc, vae.get("in_channels", 3), 3, 3), "VAE encoder input")
    expect(VAE + "decoder.conv_out.weight", (vae.get("out_channels", 3), vboc, 3, 3), "VAE decoder output")
    for sub, key in TEXT_ENCODERS[fam.text_layout].items():
        te = _read_json(cfg / sub / "config.json")
        expect(key, (te.get("vocab_size"), te.get("hidden_size")), f"{sub.replace('_', ' ')} token embedding")
        prefix = next(p for p in TEXT_LAYERS if key.startswith(p))
        layers = {int(m.group(1)) for k in header.shapes if (m := re.match(TEXT_LAYERS[prefix], k))}
        if header.shapes.get(key) is not None and len(layers) < te.get("num_hidden_layers", 0):
            problems.append(f"its {sub.replace('_', ' ')} has {len(layers)} layers, {fam.name} uses "
                            f"{te.get('num_hidden_layers')}")
    return problems


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as e:
        raise GeneratorLoadError(f"The config folder '{path.parent.parent}' has no {path.parent.name}/"
                                 f"{path.name}: give a diffusers-layout config folder.") from e


# --------------------------------------------------------------------------------------------
# loading


def load_single_file(path: str | Path, *, family: str | None = None, prediction_type: str | None = None,
                     dtype=None, config: str | Path | None = None) -> dict[str, Any]:
    """Load a single-file checkpoint offline into its diffusers components.

    Returns ``unet``, ``vae``, ``text_encoder``, ``tokenizer``, ``scheduler`` and, for SDXL,
    ``text_encoder_2`` and ``tokenizer_2``; the models in eval mode without gradients.

    ``family``: one of :data:`FAMILIES` (default: detected from the tensors). ``prediction_type``:
    ``"epsilon"`` or ``"v_prediction"``, set on the scheduler (default: the file's hints, else the
    family's). ``dtype``: a torch dtype (or its name) for the models. ``config``: a diffusers-layout
    folder with the architecture's configs instead of the shipped ones (for a model whose
    architecture differs from the published one; its tokenizer folders may omit vocab.json/
    merges.txt, the shipped CLIP vocabulary fills them). Nothing is ever downloaded.
    """
    import diffusers
    import torch
    from diffusers.loaders.single_file_utils import SingleFileComponentError

    header = read_header(path)
    pred = _prediction(prediction_type)
    hint = _prediction_hint(header)
    fam = _family(family) if family is not None else FAMILIES[_detect(header, pred or hint)]
    cfg = Path(config).expanduser() if config is not None else shipped_config(fam.name)
    if not (cfg / "model_index.json").is_file():
        raise GeneratorLoadError(f"The config folder '{cfg}' has no model_index.json: give a diffusers-layout "
                                 "folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/).")
    check_architecture(header, fam.name, cfg)
    index = _read_json(cfg / "model_index.json")
    pipeline_cls = getattr(diffusers, index.get("_class_name", fam.pipeline), None)
    if pipeline_cls is None or pipeline_cls.__name__ not in ("StableDiffusionPipeline", "StableDiffusionXLPipeline"):
        raise GeneratorLoadError(f"The config folder '{cfg}' describes a '{index.get('_class_name')}': single-file "
                                 "loading supports StableDiffusionPipeline and StableDiffusionXLPipeline configs.")
    scheduler = _scheduler(cfg, pred or hint)
    if isinstance(dtype, str):
        dtype = getattr(torch, {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}.get(dtype, dtype), None)
        if not isinstance(dtype, torch.dtype):
            raise GeneratorLoadError("Unknown dtype: use a torch dtype or 'float32', 'float16', 'bfloat16'.")
    with _complete_config(cfg, index) as full:
        try:
            pipe = pipeline_cls.from_single_file(str(header.path), config=str(full), local_files_only=True,
                                                 torch_dtype=dtype, scheduler=scheduler)
        except NotImplementedError as e:  # a parameter diffusers found no tensor for, moved off the meta device
            if "meta tensor" not in str(e):
                raise
            raise GeneratorLoadError(
                f"'{header.path.name}' lacks weights that the {fam.name} UNet or VAE needs: it is not a complete "
                f"{fam.name} checkpoint (a partial or pruned file?), or its family is not {fam.name}.") from e
        except (OSError, ValueError, KeyError, RuntimeError, SingleFileComponentError) as e:
            raise GeneratorLoadError(
                f"Could not load '{header.path.name}' as {fam.name}: {type(e).__name__}: {e}. "
                "If the family is wrong, pass family=...; if the file is damaged, download it again.") from e
    names = ["unet", "vae", "text_encoder", "tokenizer", "scheduler"]
    if fam.text_layout == "sdxl":
        names += ["text_encoder_2", "tokenizer_2"]
    components = {n: getattr(pipe, n) for n in names}
    for n, module in components.items():
        if isinstance(module, torch.nn.Module):
            tensors = itertools.chain(module.named_parameters(), module.named_buffers())
            missing = [k for k, t in tensors if t.device.type == "meta"]
            if missing:
                raise GeneratorLoadError(
                    f"'{header.path.name}' lacks {len(missing)} {n} weights (e.g. {missing[0]}): it is not a "
                    f"complete {fam.name} checkpoint, or its family is not {fam.name}.")
            module.eval().requires_grad_(False)
    return components


def _scheduler(cfg: Path, prediction_type: str | None):
    import diffusers

    sched_cfg = _read_json(cfg / "scheduler" / "scheduler_config.json")
    cls = getattr(diffusers, sched_cfg.get("_class_name", "DDIMScheduler"), None)
    if cls is None:
        raise GeneratorLoadError(f"Unknown scheduler '{sched_cfg.get('_class_name')}' in {cfg / 'scheduler'}.")
    if prediction_type is not None:
        sched_cfg["prediction_type"] = prediction_type
    return cls.from_config(sched_cfg)


@contextlib.contextmanager
def _complete_config(cfg: Path, index: dict) -> Iterator[Path]:
    """``cfg`` with CLIP's vocabulary in each tokenizer folder that lacks one: the folder itself
    when complete, else a temporary copy (the shipped configs keep one copy of the vocabulary)."""
    tokenizers = [k for k, v in index.items() if k.startswith("tokenizer") and isinstance(v, list) and v[0]]
    lacking = [t for t in tokenizers
               if not (cfg / t / "tokenizer.json").is_file() and not (cfg / t / "vocab.json").is_file()]
    if not lacking:
        yield cfg
        return
    bpe = configs_root() / "clip_bpe"
    with tempfile.TemporaryDirectory(prefix="prism-sd-config-") as tmp:
        full = Path(tmp) / cfg.name
        shutil.copytree(cfg, full, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "*.ckpt"))
        for t in lacking:
            (full / t).mkdir(exist_ok=True)
            for f in ("vocab.json", "merges.txt"):
                shutil.copyfile(bpe / f, full / t / f)
        yield full
