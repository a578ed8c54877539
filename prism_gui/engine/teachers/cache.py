"""The timm classifiers on this machine, listed without loading one: the models in the local
Hugging Face cache (``huggingface_hub.scan_cache_dir``), as the teacher picker shows them.

A timm repo on the Hub is a folder with ``config.json`` (``architecture``, ``num_classes``,
``pretrained_cfg``; written by ``timm.models.save_for_hf``) and ``model.safetensors`` or
``pytorch_model.bin``.  Each entry's ``source`` (``hf-hub:org/name``) is what a spec's
``teacher`` accepts; it is read from the cache only, never downloaded.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

WEIGHTS = ("model.safetensors", "pytorch_model.bin")


@dataclasses.dataclass(frozen=True)
class TeacherEntry:
    source: str  # hf-hub:org/name (or local-dir:PATH for a snapshot without refs/main)
    label: str
    architecture: str
    num_classes: int | None
    size: int | None
    problem: str | None = None

    @property
    def usable(self) -> bool:
        return self.problem is None

    def summary(self) -> str:
        n = f"{self.num_classes:,} classes" if self.num_classes else "classes unknown"
        size = f", {self.size / 2**20:.0f} MB" if self.size else ""
        return f"{self.label} ({self.architecture}, {n}{size})" + (f": {self.problem}" if self.problem else "")


def timm_config(folder: Path) -> dict | None:
    """A folder's timm ``config.json`` (None when it has none or it is another library's)."""
    try:
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("architecture"), str) or "model_type" in cfg:
        return None  # transformers configs carry model_type and an 'architectures' list
    return cfg


def folder_problem(folder: Path, repo_id: str | None = None) -> str | None:
    """Why a timm model folder cannot load (no weights, a truncated file), or None."""
    fix = (f"download it again with `huggingface-cli download {repo_id}`" if repo_id else
           "export it again with timm.models.save_for_hf")
    weights = [folder / w for w in WEIGHTS if (folder / w).exists()]
    if not weights:
        return f"it has no weights ({' or '.join(WEIGHTS)}): the download is incomplete; {fix}"
    from prism_gui.engine.weights import checkpoint_problem

    problem = checkpoint_problem(weights[0].resolve())
    return f"{weights[0].name} {problem}" if problem else None


def cached_teachers(cache_dir: str | Path | None = None) -> list[TeacherEntry]:
    """The timm models in the local Hugging Face cache, by ``hf-hub:`` id, sorted by name."""
    from prism_gui.engine.hub import cached_snapshots

    out: dict[str, TeacherEntry] = {}
    for snap in cached_snapshots(cache_dir):
        if snap.repo_id in out:
            continue
        cfg = timm_config(snap.snapshot)
        if cfg is None:
            continue
        source = f"hf-hub:{snap.repo_id}" if snap.source == snap.repo_id else f"local-dir:{snap.snapshot}"
        problem = ("the cached copy is damaged (a file points to a missing blob): download it again with "
                   f"`huggingface-cli download {snap.repo_id}`") if snap.damaged else \
            folder_problem(snap.snapshot, snap.repo_id)
        pcfg = cfg.get("pretrained_cfg") if isinstance(cfg.get("pretrained_cfg"), dict) else cfg
        n = cfg.get("num_classes", pcfg.get("num_classes"))
        out[snap.repo_id] = TeacherEntry(source, snap.repo_id, cfg["architecture"],
                                         int(n) if isinstance(n, int) else None, snap.size, problem)
    return sorted(out.values(), key=lambda e: e.label.lower())
