"""The generators usable on this machine, listed without loading one.

Three places hold them: the built-in Digits prior, the folders and single-file checkpoints the
user added, and the diffusers pipelines already in the local Hugging Face cache (read with
``huggingface_hub.scan_cache_dir``; nothing is downloaded).  Each is described from its JSON
configs and the headers of its ``.safetensors`` files only, so listing a cache of dozens of
models takes a fraction of a second.  A cached repo that looks like a generator but cannot be
loaded (an incomplete download, an inpainting UNet, only fp16-variant weights) is listed with a
``problem`` that says why and what to do, not hidden.

The ``source`` of an entry is what :func:`prism_gui.engine.generation.load.load_generator`
accepts: ``"digits"``, a folder, a checkpoint file or a hub id.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace

from prism_gui.engine.generation.load import GeneratorLoadError, builtin_prior_path

# the text-to-image pipelines the sampler runs; other pipelines count when they are a
# UNet2DConditionModel conditioned by a CLIP text encoder, unless their name says another task
PIPELINES = ("StableDiffusionPipeline", "StableDiffusionXLPipeline", "LatentConsistencyModelPipeline")
OTHER_TASKS = re.compile(r"Inpaint|Img2Img|Image2Image|Upscale|Depth2Img|Pix2Pix|ControlNet|Adapter|Video|Audio",
                         re.IGNORECASE)
# what load_generator reads of each component: its config file (None: any file) and its weights' stem
CONFIG_FILES = {"unet": "config.json", "text_encoder": "config.json", "tokenizer": None,
                "scheduler": "scheduler_config.json", "vae": "config.json", "text_encoder_2": "config.json",
                "tokenizer_2": None}
WEIGHT_STEMS = {"unet": "diffusion_pytorch_model", "vae": "diffusion_pytorch_model", "text_encoder": "model",
                "text_encoder_2": "model"}
PRECISIONS = {"F32": "fp32", "F16": "fp16", "BF16": "bf16", "F64": "fp64"}
FLOAT_DTYPES = ("F", "BF")  # safetensors dtype names of floating tensors start so (F16, BF16, F8_E4M3, ...)
MAX_HEADER = 100 * 2**20  # a safetensors header is a few hundred KB even for SDXL


@dataclasses.dataclass(frozen=True)
class GeneratorEntry:
    """One generator, as a menu shows it."""

    source: str  # what load_generator accepts: "digits", a folder, a file or a hub id
    label: str
    where: str  # built-in | folder | file | cache
    family: str | None = None  # sd | sdxl
    lcm: bool = False  # the UNet embeds the guidance scale (time_cond_proj_dim): a few-step LCM
    prediction_type: str | None = None  # epsilon | v_prediction | sample
    resolution: int | None = None  # native image size in pixels
    size_bytes: int | None = None  # on disk
    precision: str | None = None  # of the UNet weights: fp32 | fp16 | bf16 | mixed
    problem: str | None = None  # None, or why it cannot be used and what to do

    @property
    def usable(self) -> bool:
        return self.problem is None

    def summary(self) -> str:
        """One line: 'SD 1.5 (cache) · sd · epsilon · 512 px · fp16 · 2.0 GB'."""
        return " · ".join([f"{self.label} ({self.where})", *self.traits()])

    def traits(self) -> list[str]:
        """What the summary says after the name: family, prediction type, size, precision, disk."""
        parts = []
        if self.family:
            parts.append(self.family + (" · lcm" if self.lcm else ""))
        if self.prediction_type:
            parts.append(self.prediction_type)
        if self.resolution:
            parts.append(f"{self.resolution} px")
        if self.precision:
            parts.append(self.precision)
        if self.size_bytes is not None:
            parts.append(format_size(self.size_bytes))
        return parts


def format_size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def local_generators(extra_folders: Iterable[str | Path] = (), *,
                     cache_dir: str | Path | None = None) -> list[GeneratorEntry]:
    """The built-in Digits prior, then ``extra_folders`` (diffusers folders or single-file
    checkpoints the user added, in their order), then the generators in the Hugging Face cache
    (``cache_dir``, default :func:`prism_gui.engine.hub.hub_cache_dir`) by id."""
    entries = [builtin_generator()]
    seen = {entries[0].source}
    for p in extra_folders:
        entry = describe_path(p)
        if entry.source not in seen:
            seen.add(entry.source)
            entries.append(entry)
    entries += [e for e in cached_generators(cache_dir) if e.source not in seen]
    return entries


def builtin_generator() -> GeneratorEntry:
    path = builtin_prior_path()
    return _describe_diffusers(path, "digits", "Digits prior", "built-in", _tree_size(path))


def describe_path(path: str | Path) -> GeneratorEntry:
    """A folder or checkpoint file the user added."""
    path = Path(path).expanduser()
    if path.is_dir():
        return _describe_diffusers(path, str(path), path.name, "folder", _tree_size(path))
    if path.is_file():
        return _describe_file(path)
    where = "file" if path.suffix else "folder"
    return GeneratorEntry(str(path), path.name or str(path), where,
                          problem=f"'{path}' no longer exists: it was moved or deleted, or its drive is not mounted.")


# --------------------------------------------------------------------------------------------
# the Hugging Face cache


def cached_generators(cache_dir: str | Path | None = None) -> list[GeneratorEntry]:
    """The diffusers text-to-image pipelines in the local Hugging Face cache, by hub id."""
    from prism_gui.engine.hub import cached_snapshots

    entries, damaged = [], set()
    for snap in cached_snapshots(cache_dir):
        if snap.damaged and snap.repo_id in damaged:
            continue
        entry = _cached_entry(snap.snapshot, snap.repo_id, snap.source, snap.size)
        if entry is None:
            continue
        if snap.damaged:  # a repo the scan refused (a broken symlink: a blob was deleted)
            damaged.add(snap.repo_id)
            entry = dataclasses.replace(entry, problem=(
                f"the cached copy is damaged (a file points to a missing blob): download it again with "
                f"`huggingface-cli download {snap.repo_id}`."))
        entries.append(entry)
    return sorted(entries, key=lambda e: e.label.lower())


def _cached_entry(snapshot: Path, repo_id: str, source: str, size: int | None) -> GeneratorEntry | None:
    index = _read_json(snapshot / "model_index.json")
    if index is None or not is_text_to_image(index):
        return None  # not a diffusers pipeline (a single model, a ControlNet, an LLM...) or another task
    return _describe_diffusers(snapshot, source, repo_id, "cache", size, index=index, repo_id=repo_id)


def is_text_to_image(index: dict) -> bool:
    """Whether a ``model_index.json`` describes a text-to-image pipeline the sampler can run."""
    name = str(index.get("_class_name", ""))
    if OTHER_TASKS.search(name):
        return False
    if name in PIPELINES:
        return True
    unet = (index.get("unet") or [None, None])[1]
    text = (index.get("text_encoder") or [None, None])[1] or ""
    return unet == "UNet2DConditionModel" and text.startswith("CLIPTextModel")


# --------------------------------------------------------------------------------------------
# describing a diffusers folder or a checkpoint file from its configs and headers


def _describe_diffusers(folder: Path, source: str, label: str, where: str, size: int | None, *,
                        index: dict | None = None, repo_id: str | None = None) -> GeneratorEntry:
    from prism_gui.engine.generation.families import family_of

    base = GeneratorEntry(source, label, where, size_bytes=size)
    if index is None:
        index = _read_json(folder / "model_index.json")
        if index is None and (folder / "model_index.json").is_file():
            return dataclasses.replace(base, problem=_damaged(["model_index.json is not valid JSON"], repo_id))
        index = index or {}
    if index and not is_text_to_image(index):
        return dataclasses.replace(base, problem=f"it is a {index.get('_class_name', 'diffusers')} pipeline, not "
                                                 "a text-to-image generator.")
    if not (folder / "unet").is_dir():
        return dataclasses.replace(base, problem=(
            "it has no unet/ subfolder: point to the diffusers folder that holds model_index.json, unet/, "
            "text_encoder/, tokenizer/ and scheduler/." if where != "cache" else _incomplete(["unet/"], repo_id)))
    unet = _read_json(folder / "unet" / "config.json")
    if unet is None:
        return dataclasses.replace(base, problem=_damaged(["unet/config.json is not valid JSON"], repo_id)
                                   if (folder / "unet" / "config.json").is_file()
                                   else _incomplete(["unet/config.json"], repo_id))
    sched = _read_json(folder / "scheduler" / "scheduler_config.json") or {}
    vae = _read_json(folder / "vae" / "config.json")
    latent = (index.get("vae") or [None])[0] is not None if index else (folder / "vae").is_dir()
    if latent:
        scale = 2 ** (len((vae or {}).get("block_out_channels", [0] * 4)) - 1)
        resolution = int(unet.get("sample_size", 64)) * scale
    else:
        resolution = int(index.get("prism", {}).get("resolution", unet.get("sample_size", 0)))
    weights, variants = _weight_files(folder / "unet", WEIGHT_STEMS["unet"])
    precision = _precision(weights or [f for files in variants.values() for f in files])
    entry = dataclasses.replace(base, family=family_of(SimpleNamespace(**unet)),
                                lcm=unet.get("time_cond_proj_dim") is not None,
                                prediction_type=sched.get("prediction_type", "epsilon") if sched else None,
                                resolution=resolution or None, precision=precision)
    return dataclasses.replace(entry, problem=_folder_problem(folder, index, unet, latent, repo_id))


def _folder_problem(folder: Path, index: dict, unet: dict, latent: bool, repo_id: str | None) -> str | None:
    """Why the folder cannot be loaded, or None."""
    channels_in, channels_out = unet.get("in_channels", 4), unet.get("out_channels", 4)
    if channels_in != channels_out:
        kind = {9: "an inpainting model", 8: "an image-editing (InstructPix2Pix) model"}.get(
            channels_in, "an image-conditioned model")
        return (f"its UNet takes {channels_in} input channels, it is {kind}: only text-to-image generators "
                f"(a UNet that takes {channels_out}) can make a training set.")
    if index:
        wanted = [k for k in CONFIG_FILES if (index.get(k) or [None])[0] is not None]
    else:  # a folder without model_index.json: what load_generator looks for
        wanted = ["unet", "text_encoder", "tokenizer", "scheduler"] + (["vae"] if latent else [])
    if unet.get("addition_embed_type") == "text_time" and "text_encoder_2" not in wanted:
        return "it has an SDXL UNet but no text_encoder_2/: SDXL needs both text encoders."
    missing, damaged, variant_only = [], [], set()
    for comp in wanted:
        sub, cfg = folder / comp, CONFIG_FILES[comp]
        if not sub.is_dir():
            missing.append(f"{comp}/")
        elif cfg is not None and not (sub / cfg).is_file():
            missing.append(f"{comp}/{cfg}")
        elif cfg is None and not any(sub.iterdir()):
            missing.append(f"{comp} files")
        else:
            if cfg is not None and _read_json(sub / cfg) is None:
                damaged.append(f"{comp}/{cfg} is not valid JSON")
            if comp in WEIGHT_STEMS:
                weights, variants = _weight_files(sub, WEIGHT_STEMS[comp])
                if not weights and variants:
                    variant_only |= set(variants)
                elif not weights:
                    missing.append(f"{comp} weights")
                elif not _shards_complete(sub, WEIGHT_STEMS[comp]):
                    missing.append(f"{comp} weight shards")
                else:
                    damaged += [f"{comp}/{f.name} {problem}" for f in weights
                                if (problem := safetensors_problem(f)) is not None]
    if missing:
        return _incomplete(missing, repo_id)
    if damaged:
        return _damaged(damaged, repo_id)
    if variant_only:
        names = "/".join(sorted(variant_only))
        return (f"only the {names} variant of its weights is here (*.{names}.safetensors) and PRISM loads the "
                "default weights: " + (f"download them with `huggingface-cli download {repo_id}`." if repo_id
                                       else "save the pipeline again without variant=."))
    return None


def _incomplete(missing: list[str], repo_id: str | None) -> str:
    what = ", ".join(missing)
    if repo_id:
        return f"incomplete download (missing {what}): finish it with `huggingface-cli download {repo_id}`."
    return f"incomplete folder (missing {what}): save the whole pipeline again with save_pretrained."


def _damaged(problems: list[str], repo_id: str | None) -> str:
    what = "; ".join(problems)
    if repo_id:
        return f"damaged download ({what}): download it again with `huggingface-cli download {repo_id}`."
    return f"damaged folder ({what}): copy it again, or save the whole pipeline again with save_pretrained."


def safetensors_problem(path: Path) -> str | None:
    """Why a ``.safetensors`` file cannot be whole (read from its header and size), or None;
    ``.bin`` files are not checked."""
    if path.suffix != ".safetensors":
        return None
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if size == 0:
                return "is empty (0 bytes)"
            if not 0 < n <= min(MAX_HEADER, size - 8):
                return f"is truncated or not safetensors (its header says {n:,} bytes, the file has {size:,})"
            header = json.loads(f.read(n))
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        return "has an unreadable safetensors header"
    if 8 + n + end > size:
        return f"is truncated ({size:,} of {8 + n + end:,} bytes)"
    return None


def _weight_files(folder: Path, stem: str) -> tuple[list[Path], dict[str, list[Path]]]:
    """The default weight files of a diffusers/transformers model folder (safetensors, else .bin;
    shards included) and, by name, the files of the variants (``fp16``...) beside them."""
    default: dict[str, list[Path]] = {".safetensors": [], ".bin": []}
    variants: dict[str, list[Path]] = {}
    for f in sorted(folder.iterdir()):
        if not f.name.startswith(stem) or f.suffix not in default:
            continue
        middle = f.name[len(stem):-len(f.suffix)]  # "", "-00001-of-00002", ".fp16", ".fp16-00001-of-00002"
        if middle.startswith("."):
            variants.setdefault(middle[1:].split("-")[0], []).append(f)
        elif middle == "" or re.fullmatch(r"-\d+-of-\d+", middle):
            default[f.suffix].append(f)
    return default[".safetensors"] or default[".bin"], variants


def _shards_complete(folder: Path, stem: str) -> bool:
    for ext in ("safetensors", "bin"):
        index = _read_json(folder / f"{stem}.{ext}.index.json")
        if index is not None:
            return all((folder / name).is_file() for name in set(index.get("weight_map", {}).values()))
    return True


def _describe_file(path: Path) -> GeneratorEntry:
    from prism_gui.engine.generation.single_file import CHECKPOINT_SUFFIXES, identify, shipped_config

    base = GeneratorEntry(str(path), path.stem, "file", size_bytes=path.stat().st_size)
    if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
        return dataclasses.replace(base, problem=f"'{path.name}' is not a checkpoint: a single-file generator ends "
                                                 f"in {', '.join(CHECKPOINT_SUFFIXES)}.")
    try:
        family, hint = identify(path)
    except GeneratorLoadError as e:
        return dataclasses.replace(base, problem=str(e))
    config = shipped_config(family)
    unet = _read_json(config / "unet" / "config.json") or {}
    sched = _read_json(config / "scheduler" / "scheduler_config.json") or {}
    precision = _precision([path], prefix="model.diffusion_model.") if path.suffix.lower() == ".safetensors" else None
    return dataclasses.replace(base, family="sdxl" if family == "sdxl" else "sd",
                               prediction_type=hint or sched.get("prediction_type", "epsilon"),
                               resolution=int(unet.get("sample_size", 64)) * 8, precision=precision)


# --------------------------------------------------------------------------------------------
# small readers


def safetensors_dtypes(path: Path, prefix: str = "") -> set[str]:
    """The dtypes of the tensors in a ``.safetensors`` file whose names start with ``prefix``,
    from its JSON header alone (the first 8 + N bytes)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        if not 0 < n <= MAX_HEADER:
            raise ValueError(f"{path} has no safetensors header")
        header = json.loads(f.read(n))
    return {v["dtype"] for k, v in header.items() if k != "__metadata__" and k.startswith(prefix)}


def _precision(files: list[Path], prefix: str = "") -> str | None:
    """fp32 | fp16 | bf16 | mixed for the floating tensors of safetensors ``files`` (None for .bin)."""
    dtypes: set[str] = set()
    for f in files:
        if f.suffix != ".safetensors":
            return None
        try:
            dtypes |= {d for d in safetensors_dtypes(f, prefix) if d.startswith(FLOAT_DTYPES)}
        except (OSError, ValueError):
            return None
    if len(dtypes) > 1:
        return "mixed"
    return PRECISIONS.get(next(iter(dtypes)), next(iter(dtypes)).lower()) if dtypes else None


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _tree_size(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total
