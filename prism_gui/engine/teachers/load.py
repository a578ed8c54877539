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

import json
from pathlib import Path

import torch

from prism_gui.engine.teachers.checkpoints import check_finite, diff_keys, num_classes_in, read_state_dict
from prism_gui.engine.teachers.classes import imagenet_class_ids, imagenet_class_names, resolve_class_names
from prism_gui.engine.teachers.errors import TeacherLoadError
from prism_gui.engine.teachers.teacher import Teacher
from prism_gui.engine.weights import (
    sniff_model_file,
)


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
            t.class_names, t.class_descriptions, t.class_ids = resolve_class_names(t.num_classes, class_names,
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
        n = num_classes_in(sd, probe) or probe.num_classes
        model = timm.create_model(name, pretrained=False, num_classes=n)
        try:
            model.load_state_dict(sd, strict=True)
        except RuntimeError as e:
            missing, unexpected = diff_keys(model.state_dict(), sd)
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
    names, desc, ids = resolve_class_names(model.num_classes, class_names, source)
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
        names, desc, ids = resolve_class_names(model.num_classes, class_names, source)
    else:
        names, desc, ids = _labels_of(dict(model.pretrained_cfg or {}), model.num_classes) or \
            resolve_class_names(model.num_classes, None, source)
    arch = (model.pretrained_cfg or {}).get("architecture") or type(model).__name__
    return Teacher(model=model, input_size=tuple(cfg["input_size"]), mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
                   class_names=names, class_descriptions=desc, class_ids=ids, source=source, architecture=arch,
                   crop_pct=float(cfg.get("crop_pct", 0.875)), interpolation=str(cfg.get("interpolation", "bilinear")))


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
    names, desc, ids = resolve_class_names(int(out.shape[-1]), class_names or card.get("class_names"), str(path))
    return Teacher(model=model, input_size=size, mean=m, std=s, class_names=names, class_ids=ids,
                   class_descriptions=desc or card.get("class_descriptions"), source=str(path),
                   architecture="torchscript", card=card, crop_pct=float(card.get("crop_pct", 0.875)),
                   interpolation=str(card.get("interpolation", "bilinear")))
