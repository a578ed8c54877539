"""Teachers: a classifier plus its input size, normalization and class names.

Sources (``load_teacher``):

- ``"digits"``: the built-in Digits teacher (``resources/digits_teacher``);
- a timm model name (``"resnet50.a1_in1k"``): weights from the local Hugging Face cache only,
  never a surprise download unless ``allow_download=True``;
- every name timm itself takes for a model folder: ``"hf-hub:org/name"`` (read from the local
  Hugging Face cache only) and ``"local-dir:PATH"`` (a folder that ``timm.models.save_for_hf``
  wrote: ``config.json`` + ``model.safetensors``), class names from its ``label_names``;
- a timm architecture plus a local checkpoint (a safetensors file, or a ``torch.save`` state
  dict read with ``weights_only=True``);
- a TorchScript file (saved with ``torch.jit.save``).

A file's kind is decided by its content (:func:`sniff_model_file`), never by its suffix: a
``.pth`` state dict and a ``.pt`` TorchScript archive are both common.

Images enter a teacher in the engine's common range [-1, 1] (what a VAE decodes to);
:meth:`Teacher.preprocess` converts channels, resizes and normalizes them, differentiably, so
energies can be back-propagated to the sampler.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from prism_gui.engine.weights import (
    SAFE_PICKLE_MODULES,
    checkpoint_problem,
    pickle_globals,
    sniff_model_file,
)


class TeacherLoadError(RuntimeError):
    """A teacher could not be loaded; the message names the file and the fix."""


@dataclasses.dataclass
class Teacher:
    model: torch.nn.Module
    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: list[str]
    class_descriptions: list[str] | None = None
    source: str = ""
    architecture: str = ""
    card: dict = dataclasses.field(default_factory=dict)
    crop_pct: float = 1.0  # real images: resize the short side to size / crop_pct, then center-crop
    class_ids: list[str] | None = None  # e.g. ImageNet's WordNet ids ("n01440764"), for evaluation folders
    interpolation: str = "bilinear"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def device(self) -> torch.device:
        try:
            return next(self.model.parameters()).device
        except StopIteration:
            return torch.device("cpu")

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def has_batchnorm(self) -> bool:
        return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in self.model.modules())

    def to(self, device) -> Teacher:
        self.model.to(device)
        return self

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images (N, C, H, W) -> the teacher's normalized input (differentiable)."""
        c, h, w = self.input_size
        x = (images.float() + 1.0) / 2.0
        if x.shape[1] != c:
            if c == 1:
                x = x.mean(dim=1, keepdim=True)
            elif x.shape[1] == 1:
                x = x.expand(-1, c, -1, -1)
            else:
                raise ValueError(f"cannot feed {x.shape[1]}-channel images to a {c}-channel teacher")
        if x.shape[-2:] != (h, w):
            x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        return (x - mean) / std

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(self.preprocess(images))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate (pre-logits) features, for precision/recall metrics."""
        x = self.preprocess(images)
        if hasattr(self.model, "forward_features") and hasattr(self.model, "forward_head"):
            return self.model.forward_head(self.model.forward_features(x), pre_logits=True)
        raise TeacherLoadError(
            f"Teacher '{self.source}' exposes no penultimate features (TorchScript or a non-timm "
            "model): load it as a timm architecture plus checkpoint to compute precision/recall.")


# --------------------------------------------------------------------------- class names
def imagenet_class_names() -> tuple[list[str], list[str]]:
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    names = [info.index_to_description(i) for i in range(1000)]
    desc = [info.index_to_description(i, detailed=True) for i in range(1000)]
    return names, desc


def imagenet_class_ids() -> list[str]:
    """ImageNet-1k's WordNet ids in class order (``n01440764`` ...), as its folders are named."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_label_name(i) for i in range(1000)]


def read_class_names(path: str | Path) -> tuple[list[str], list[str] | None]:
    """Class names from a text file (one per line) or JSON (a list, ``{"0": "cat", ...}``, or
    ``{"class_names": [...], "class_descriptions": [...], "class_ids": [...]}``)."""
    names, descriptions, _ids = _read_class_file(path)
    return names, descriptions


def _read_class_file(path: str | Path) -> tuple[list[str], list[str] | None, list[str] | None]:
    """(names, descriptions, ids) of a class-names file (see :func:`read_class_names`)."""
    path = Path(path)
    if not path.is_file():
        raise TeacherLoadError(f"Class-names file '{path}' " + ("is a folder: give the text or JSON file of names."
                                                                  if path.is_dir() else "does not exist."))
    from prism_gui.engine.specs import read_text_file

    text = read_text_file(path, "Class-names file", TeacherLoadError)
    descriptions = ids = None
    if path.suffix.lower() == ".json":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise TeacherLoadError(f"Class-names file '{path}' is not valid JSON ({e}): fix it, or write the names "
                                   "one per line in a .txt file.") from e
        if isinstance(obj, dict) and "class_names" in obj:
            names, descriptions, ids = obj["class_names"], obj.get("class_descriptions"), obj.get("class_ids")
        elif isinstance(obj, dict):
            try:
                names = [obj[k] for k in sorted(obj, key=lambda k: int(k))]
            except ValueError as e:
                raise TeacherLoadError(
                    f"Class-names file '{path}': keys must be class indices (\"0\", \"1\", ...).") from e
        elif isinstance(obj, list):
            names = obj
        else:
            raise TeacherLoadError(f"Class-names file '{path}' must hold a list or an object.")
        if not isinstance(names, list):
            raise TeacherLoadError(f"Class-names file '{path}': 'class_names' must be a list of names, not "
                                   f"{type(names).__name__}.")
        bad = next((i for i, n in enumerate(names) if not isinstance(n, (str, int, float)) or isinstance(n, bool)
                    or not str(n).strip()), None)
        if bad is not None:
            raise TeacherLoadError(f"Class-names file '{path}': entry {bad + 1} is {json.dumps(names[bad])}, not a "
                                   "class name: every entry must be a non-empty name.")
        names = [str(n).strip() for n in names]
    else:
        names = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not names:
        raise TeacherLoadError(f"Class-names file '{path}' holds no class names: write one name per line, in the "
                               "order of the teacher's outputs.")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise TeacherLoadError(f"Class-names file '{path}' repeats names: {', '.join(dup[:5])}. Each class needs its "
                               "own name: make them distinct (e.g. 'crane (bird)', 'crane (machine)').")
    if ids is not None and (len(ids) != len(names) or len(set(ids)) != len(ids)):
        raise TeacherLoadError(f"Class-names file '{path}': 'class_ids' must hold {len(names)} distinct ids, "
                               "one per class.")
    return names, descriptions, ([str(i) for i in ids] if ids is not None else None)


def _resolve_class_names(num_classes: int, class_names, source: str):
    """(names, descriptions, ids): from a file, a list, or the defaults (ImageNet's names,
    glosses and WordNet ids for 1,000 outputs)."""
    descriptions = ids = None
    origin = ""
    if isinstance(class_names, (str, Path)):
        origin = f" (from '{class_names}')"
        class_names, descriptions, ids = _read_class_file(class_names)
    if class_names is None:
        if num_classes == 1000:
            class_names, descriptions = imagenet_class_names()
            ids = imagenet_class_ids()
        else:
            class_names = [f"class {i}" for i in range(num_classes)]
    class_names = list(class_names)
    if len(class_names) != num_classes:
        raise TeacherLoadError(
            f"Teacher '{source}' has {num_classes} outputs but {len(class_names)} class names were "
            f"given{origin}: supply a class-names file with exactly {num_classes} names, one per line.")
    return class_names, descriptions, ids


# --------------------------------------------------------------------------- loading
def _explain_load_error(path: Path, e: Exception) -> str:
    """A user's message for a checkpoint that torch.load (weights only) or safetensors refused."""
    if "weights only" in str(e).lower() or "weights_only" in str(e):
        code = [g for g in pickle_globals(path) if not g.startswith(SAFE_PICKLE_MODULES)]
        if code:
            return (f"Checkpoint '{path}' holds Python objects that only running code from the file could load "
                    f"({', '.join(code[:3])}); PRISM never runs code from a file. Save the weights alone: "
                    "safetensors, or torch.save(model.state_dict(), path).")
        return (f"Checkpoint '{path}' holds objects other than tensors, which PRISM does not unpickle. Save the "
                "weights alone: safetensors, or torch.save(model.state_dict(), path).")
    first = str(e).strip().split("\n")[0][:200]
    return (f"Could not read checkpoint '{path}' ({type(e).__name__}: {first}). The file is truncated, damaged or not "
            "a state dict: export it again with safetensors or torch.save(model.state_dict(), path).")


def read_state_dict(path: Path) -> dict:
    if not path.exists():
        raise TeacherLoadError(f"Checkpoint '{path}' does not exist (working folder: {Path.cwd()}): check the path.")
    problem = checkpoint_problem(path)
    if problem:
        raise TeacherLoadError(f"Checkpoint '{path}' {problem}.")
    kind = sniff_model_file(path)
    if kind == "torchscript":
        raise TeacherLoadError(
            f"'{path}' is a TorchScript archive, not a state dict: give it as the teacher itself "
            "(teacher = \"" + str(path) + "\", no checkpoint and no architecture).")
    try:
        if kind == "safetensors":
            import safetensors.torch

            sd = safetensors.torch.load_file(str(path))
        else:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # damaged files, pickles with code, wrong formats
        raise TeacherLoadError(_explain_load_error(path, e)) from e
    for key in ("state_dict", "model", "model_state_dict", "state_dict_ema"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
            break
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise TeacherLoadError(f"Checkpoint '{path}' does not hold a state dict of tensors (it holds a "
                               f"{type(sd).__name__}): save it with torch.save(model.state_dict(), path).")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def check_finite(model: torch.nn.Module, input_size, source: str) -> None:
    """Refuse a degenerate teacher: NaN/inf weights, a BatchNorm with a negative variance, or
    non-finite outputs on a test input (its energies would be NaN, and NaN images would be
    scored as if they were the best)."""
    for name, t in list(model.state_dict().items()):
        if torch.is_floating_point(t) and not bool(torch.isfinite(t).all()):
            raise TeacherLoadError(
                f"Teacher '{source}' is degenerate: its weights '{name}' hold NaN or infinite values (a diverged "
                "training run or a damaged file). Use a checkpoint saved before the training diverged.")
        if name.endswith("running_var") and bool((t < 0).any()):
            raise TeacherLoadError(
                f"Teacher '{source}' is degenerate: the BatchNorm variances '{name}' are negative. The checkpoint is "
                "damaged: export it again.")
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, *input_size))
    except Exception as e:
        raise TeacherLoadError(f"Teacher '{source}' fails on a test input of size {list(input_size)} "
                               f"({type(e).__name__}: {str(e)[:200]}): check its input_size.") from e
    if isinstance(out, torch.Tensor) and not bool(torch.isfinite(out).all()):
        raise TeacherLoadError(
            f"Teacher '{source}' is degenerate: it gives NaN or infinite outputs on a test input, so its energies "
            "would be NaN. Check the checkpoint (a diverged training run?) and its normalization.")


def _num_classes_in(sd: dict, model) -> int | None:
    try:
        head = model.get_classifier()
    except Exception:
        return None
    names = [n for n, m in model.named_modules() if m is head]
    if names and f"{names[0]}.weight" in sd:
        return int(sd[f"{names[0]}.weight"].shape[0])
    return None


def _data_config(model) -> dict:
    from timm.data import resolve_model_data_config

    return resolve_model_data_config(model)


def load_teacher(source: str | Path = "digits", *, checkpoint: str | Path | None = None,
                 class_names=None, input_size: tuple[int, int, int] | None = None,
                 mean=None, std=None, crop_pct: float | None = None, interpolation: str | None = None,
                 allow_download: bool = False) -> Teacher:
    """Load a teacher; see the module docstring for the accepted sources.  A spec's teacher
    description is parsed by :class:`prism_gui.engine.teachers.spec.TeacherSpec`."""
    over = {"input_size": input_size, "mean": mean, "std": std, "crop_pct": crop_pct, "interpolation": interpolation}
    from prism_gui.engine.worlds import builtin_teacher, is_builtin_teacher

    if checkpoint is None and is_builtin_teacher(str(source)):
        t = builtin_teacher(str(source))
        if class_names is not None:
            t.class_names, t.class_descriptions, t.class_ids = _resolve_class_names(t.num_classes, class_names,
                                                                                    str(source))
        return _override(t, over)
    if str(source).startswith(TIMM_PREFIXES):
        if checkpoint is not None:
            raise TeacherLoadError(f"Teacher '{source}' is a timm model folder with its own weights, but a checkpoint "
                                   "was also given: leave 'checkpoint' out, or name the architecture instead.")
        return _override(_load_timm_folder(str(source), class_names, allow_download), over)
    path = Path(str(source)).expanduser()
    if path.is_file():
        kind = sniff_model_file(path)
        if checkpoint is not None:
            raise TeacherLoadError(
                f"Teacher '{path}' is a file, but a checkpoint was also given: with a checkpoint, 'teacher' is "
                "its timm architecture (e.g. teacher = \"resnet50\", checkpoint = \"model.safetensors\").")
        if kind == "torchscript":
            return _override(_load_torchscript(path, class_names, input_size, mean, std), over)
        if kind in ("safetensors", "state_dict"):
            raise TeacherLoadError(
                f"Teacher file '{path}' is a state-dict checkpoint: it holds weights but not the architecture. "
                f"Name the timm architecture as the teacher and this file as its checkpoint "
                f"(teacher = \"resnet50\", checkpoint = \"{path}\"; in the app: Teacher > checkpoint).")
        raise TeacherLoadError(
            f"Teacher file '{path}' is neither TorchScript nor a state dict (safetensors or torch.save): "
            "re-save it with torch.jit.save, safetensors or torch.save(model.state_dict()).")
    looks_like_file = (path.suffix.lower() in (".torchscript", ".ts", ".pt", ".pth", ".safetensors", ".bin", ".ckpt")
                       or str(source).startswith((".", "~", "/")))
    if checkpoint is None and looks_like_file:
        raise TeacherLoadError(
            f"Teacher file '{path}' does not exist (working folder: {Path.cwd()}). Check the path; a state-dict "
            "checkpoint also needs its timm architecture: teacher = \"resnet50\", checkpoint = \"model.pth\".")
    return _override(_load_timm(str(source), checkpoint, class_names, allow_download), over)


def _override(t: Teacher, over: dict) -> Teacher:
    """Apply a spec's data-config overrides (input size, normalization, crop, interpolation)."""
    for k, v in over.items():
        if v is not None:
            setattr(t, k, tuple(v) if isinstance(v, (list, tuple)) else v)
    return t


def _load_timm(name, checkpoint, class_names, allow_download) -> Teacher:
    import timm

    from prism_gui.engine.worlds import load_worlds

    load_worlds()  # built-in worlds register their timm architectures

    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('.')[0][:6]}*")[:5]
        raise TeacherLoadError(
            f"'{name}' is not a timm architecture or a file" +
            (f"; did you mean {', '.join(close)}?" if close else ": see `timm.list_models()`."))
    if checkpoint is not None:
        ckpt = Path(checkpoint).expanduser()
        sd = read_state_dict(ckpt)
        probe = timm.create_model(name, pretrained=False)
        n = _num_classes_in(sd, probe) or probe.num_classes
        model = timm.create_model(name, pretrained=False, num_classes=n)
        try:
            model.load_state_dict(sd, strict=True)
        except RuntimeError as e:
            missing, unexpected = _diff_keys(model.state_dict(), sd)
            raise TeacherLoadError(
                f"Checkpoint '{ckpt}' does not match architecture '{name}' "
                f"({len(missing)} missing, {len(unexpected)} unexpected or mis-shaped weights, e.g. "
                f"{(missing + unexpected)[:3]}). Pick the architecture the checkpoint was trained "
                "with.") from e
        source = str(ckpt)
        check_finite(model.eval(), _data_config(model)["input_size"], source)
    else:
        model = _timm_pretrained_offline(name, allow_download)
        source = name
    model.eval()
    cfg = _data_config(model)
    names, desc, ids = _resolve_class_names(model.num_classes, class_names, source)
    return Teacher(model=model, input_size=tuple(cfg["input_size"]), mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
                   class_names=names, class_descriptions=desc, class_ids=ids, source=source, architecture=name,
                   crop_pct=float(cfg.get("crop_pct", 0.875)), interpolation=str(cfg.get("interpolation", "bilinear")))


TIMM_PREFIXES = ("hf-hub:", "local-dir:")


def _timm_folder(source: str) -> Path:
    """The folder of a ``local-dir:`` or ``hf-hub:`` teacher (the cached snapshot; nothing is
    downloaded), checked: a timm config and whole weights."""
    from prism_gui.engine.hub import hub_cache_dir
    from prism_gui.engine.teachers.cache import folder_problem, timm_config

    kind, _, ref = source.partition(":")
    repo_id = None
    if kind == "local-dir":
        folder = Path(ref).expanduser()
        if not folder.is_dir():
            raise TeacherLoadError(f"Teacher '{source}': '{folder}' " + (
                "is a file: local-dir: names the folder that holds config.json and model.safetensors."
                if folder.exists() else f"does not exist (working folder: {Path.cwd()}): check the path."))
    else:
        from huggingface_hub import snapshot_download

        repo_id, _, revision = ref.partition("@")
        if repo_id.count("/") != 1:
            raise TeacherLoadError(f"Teacher '{source}': give the hub id as hf-hub:org/name (e.g. "
                                   "hf-hub:timm/resnet18.a1_in1k).")
        try:
            folder = Path(snapshot_download(repo_id, revision=revision or None, local_files_only=True,
                                            cache_dir=hub_cache_dir()))
        except Exception as e:  # not cached (LocalEntryNotFoundError), a bad id or revision
            raise TeacherLoadError(
                f"Teacher '{source}' is not in the local Hugging Face cache ({hub_cache_dir()}), and PRISM does not "
                f"download teachers. Download it once with `huggingface-cli download {repo_id}`, or give its folder "
                f"as local-dir:PATH ({type(e).__name__}).") from e
    if timm_config(folder) is None:
        raise TeacherLoadError(
            f"Teacher '{source}': '{folder}' holds no timm config.json (with 'architecture' and 'num_classes'): "
            "save the model with timm.models.save_for_hf(model, folder), or give its architecture plus a checkpoint.")
    problem = folder_problem(folder, repo_id)
    if problem:
        raise TeacherLoadError(f"Teacher '{source}' cannot load: {problem}.")
    return folder


def _labels_of(pcfg: dict, n: int) -> tuple[list[str], list[str] | None, list[str] | None] | None:
    """(names, descriptions, ids) from a timm config's ``label_names``/``label_descriptions``: a
    list of WordNet ids gives ImageNet-style names and ids; None when there are none."""
    import re

    names = pcfg.get("label_names")
    if isinstance(names, dict):
        names = [names.get(str(i), names.get(i)) for i in range(n)]
    if not isinstance(names, (list, tuple)) or len(names) != n or not all(isinstance(x, str) and x for x in names):
        return None
    desc = pcfg.get("label_descriptions") if isinstance(pcfg.get("label_descriptions"), dict) else {}
    if all(re.fullmatch(r"n\d{8}", x) for x in names):  # WordNet ids, as ImageNet's folders are named
        if n == 1000 and list(names) == imagenet_class_ids():
            short, full = imagenet_class_names()
            return short, full, list(names)
        full = [str(desc.get(x, x)) for x in names]
        return [f.split(",")[0].strip() or x for f, x in zip(full, names, strict=True)], full, list(names)
    return list(names), ([str(desc[x]) for x in names] if desc and all(x in desc for x in names) else None), None


def _load_timm_folder(source: str, class_names, allow_download: bool) -> Teacher:
    import timm

    from prism_gui.engine.worlds import load_worlds

    load_worlds()  # a built-in world's architecture may be the folder's
    if source.startswith("hf-hub:") and allow_download:
        model = timm.create_model(source, pretrained=True)
    else:
        folder = _timm_folder(source)
        try:
            model = timm.create_model(f"local-dir:{folder}", pretrained=True)
        except RuntimeError as e:
            first = str(e).strip().split("\n")[0][:200]
            raise TeacherLoadError(f"Teacher '{source}' does not load in this timm ({timm.__version__}): {first}. "
                                   "An architecture newer than this timm needs a newer timm; weights that do not "
                                   "match config.json need a fresh export.") from e
    model.eval()
    cfg = _data_config(model)
    check_finite(model, cfg["input_size"], source)
    if class_names is not None:
        names, desc, ids = _resolve_class_names(model.num_classes, class_names, source)
    else:
        names, desc, ids = _labels_of(dict(model.pretrained_cfg or {}), model.num_classes) or \
            _resolve_class_names(model.num_classes, None, source)
    arch = (model.pretrained_cfg or {}).get("architecture") or type(model).__name__
    return Teacher(model=model, input_size=tuple(cfg["input_size"]), mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
                   class_names=names, class_descriptions=desc, class_ids=ids, source=source, architecture=arch,
                   crop_pct=float(cfg.get("crop_pct", 0.875)), interpolation=str(cfg.get("interpolation", "bilinear")))


def _diff_keys(expected: dict, got: dict) -> tuple[list[str], list[str]]:
    missing = [k for k in expected if k not in got]
    bad = [k for k in got if k not in expected or tuple(got[k].shape) != tuple(expected[k].shape)]
    return missing, bad


def _timm_pretrained_offline(name: str, allow_download: bool):
    """Create a pretrained timm model, reading its weights from the local HF cache only."""
    import timm
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if hub_id and not allow_download:
        from huggingface_hub import try_to_load_from_cache

        for fname in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
            local = try_to_load_from_cache(hub_id, fname)
            if isinstance(local, str):
                return timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": local})
        raise TeacherLoadError(
            f"Weights for timm model '{name}' ({hub_id}) are not in the local Hugging Face cache and "
            "downloads are off. Download them once (`huggingface-cli download "
            f"{hub_id}`), allow downloads, or give a local checkpoint file.")
    if cfg is None or not (hub_id or getattr(cfg, "url", None) or getattr(cfg, "file", None)):
        raise TeacherLoadError(
            f"timm model '{name}' has no pretrained weights: give a checkpoint file for it.")
    return timm.create_model(name, pretrained=True)


def _load_torchscript(path: Path, class_names, input_size, mean, std) -> Teacher:
    try:
        model = torch.jit.load(str(path), map_location="cpu")
    except Exception as e:
        raise TeacherLoadError(
            f"'{path}' is not a loadable TorchScript file ({type(e).__name__}: {e}). Save it with "
            "`torch.jit.save(torch.jit.script(model), path)`, or give a timm architecture plus "
            "this file as its checkpoint if it is a state dict.") from e
    model.eval()
    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    size = tuple(input_size or card.get("input_size") or (3, 224, 224))
    m = tuple(mean or card.get("mean") or (0.485, 0.456, 0.406))
    s = tuple(std or card.get("std") or (0.229, 0.224, 0.225))
    with torch.no_grad():
        out = model(torch.zeros(1, *size))
    if not bool(torch.isfinite(out).all()):
        raise TeacherLoadError(f"Teacher '{path}' is degenerate: it gives NaN or infinite outputs on a test input, so "
                               "its energies would be NaN. Check the model (a diverged training run?).")
    names, desc, ids = _resolve_class_names(int(out.shape[-1]), class_names or card.get("class_names"), str(path))
    return Teacher(model=model, input_size=size, mean=m, std=s, class_names=names, class_ids=ids,
                   class_descriptions=desc or card.get("class_descriptions"), source=str(path),
                   architecture="torchscript", card=card, crop_pct=float(card.get("crop_pct", 0.875)),
                   interpolation=str(card.get("interpolation", "bilinear")))
