"""The local Hugging Face cache, read without downloading anything: where it is, and the model
snapshots it holds (for the generator menu and the teacher picker)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment now (huggingface_hub reads it once,
    when it is imported): ``HF_HUB_CACHE``, else ``HF_HOME``/hub, else ~/.cache/huggingface/hub."""
    env = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if env:
        return Path(env).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface")
    return Path(home).expanduser() / "hub"


@dataclasses.dataclass(frozen=True)
class CachedSnapshot:
    repo_id: str
    snapshot: Path
    source: str  # the hub id when refs/main resolves to this snapshot, else the snapshot's folder
    size: int | None  # bytes on disk (None: the scan refused the repo)
    damaged: bool = False  # a file points to a missing blob


def cached_snapshots(cache_dir: str | Path | None = None) -> list[CachedSnapshot]:
    """One snapshot per model repo of the cache (``main``'s, else the newest), read with
    ``huggingface_hub.scan_cache_dir``; repos the scan refuses (a deleted blob) come back marked
    ``damaged``, so a menu can say why they cannot load instead of hiding them."""
    from huggingface_hub import CacheNotFound, scan_cache_dir

    cache = Path(cache_dir).expanduser() if cache_dir is not None else hub_cache_dir()
    try:
        info = scan_cache_dir(cache)
    except (CacheNotFound, ValueError, OSError):
        return []
    out = []
    for repo in info.repos:
        if repo.repo_type != "model" or not repo.revisions:
            continue
        main = [r for r in repo.revisions if "main" in r.refs]
        rev = main[0] if main else max(repo.revisions, key=lambda r: r.last_modified)
        # an id resolves through refs/main; a revision without that ref loads as a folder
        out.append(CachedSnapshot(repo.repo_id, Path(rev.snapshot_path), repo.repo_id if main else
                                  str(rev.snapshot_path), repo.size_on_disk))
    scanned = {Path(r.repo_path).name for r in info.repos}
    for repo_path in sorted(cache.glob("models--*")):
        if repo_path.name not in scanned and (repo_path / "snapshots").is_dir():
            repo_id = repo_path.name.removeprefix("models--").replace("--", "/")
            for snap in sorted((repo_path / "snapshots").iterdir()):
                out.append(CachedSnapshot(repo_id, snap, repo_id, None, damaged=True))
    return out
