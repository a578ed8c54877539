"""Row shards: how processes that do not write the catalog hand their images to the one that does.

In a run over several processes (:mod:`prism_gui.engine.scale`), every rank writes its image
files itself, and the rows of each finished batch into one shard file,
``runs/<run>/shards/rank<r>-<pid>-<n>.jsonl``, written to a temporary name and renamed, so a
shard is either complete or absent.  The main process merges shards into the catalog (rows
inserted, shard deleted); merging is idempotent (a row already stored is skipped), so a merge
interrupted between its insert and its delete repeats harmlessly.  SQLite is written by one
process on one host only, which is what makes this safe on a shared file system: ranks on
other nodes only create files.

A rank killed mid-batch leaves image files without a shard: orphans that
:meth:`Catalog.repair` removes at the next start, and whose items are generated again.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
from collections.abc import Sequence
from pathlib import Path

from prism_gui.engine.data.layout import SHARDS, RunPaths, runs_dir


def shard_dir(root, run: str) -> Path:
    return RunPaths.of(root, run).shards


_counter = itertools.count()


def write_shard(root, run: str, rank: int, rows: Sequence[dict]) -> Path:
    """One complete shard of ``rows`` (from :func:`~.catalog.write_image_files`)."""
    from prism_gui.engine.data.files import atomic_write_text

    path = shard_dir(root, run) / f"rank{rank:04d}-{os.getpid()}-{next(_counter):06d}.jsonl"
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
    return path


def shard_files(root, run: str | None = None) -> list[Path]:
    """Complete shards waiting to be merged (of ``run``, or of every run), oldest first."""
    base = runs_dir(root)
    if not base.exists():
        return []
    dirs = [shard_dir(root, run)] if run is not None else [d / SHARDS for d in base.iterdir() if d.is_dir()]
    files = [f for d in dirs if d.is_dir() for f in d.glob("rank*.jsonl")]
    return sorted(files, key=lambda f: (f.stat().st_mtime, f.name))


def read_shard(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def pending_paths(root) -> set[str]:
    """Image and thumbnail paths named by shards not merged yet (kept by :meth:`Catalog.repair`)."""
    out = set()
    for f in shard_files(root):
        with contextlib.suppress(OSError, ValueError):
            for r in read_shard(f):
                out.update((r["path"], r["thumb"]))
    return out


def merge_shards(cat, run: str | None = None) -> list[int]:
    """Insert every waiting shard's rows into ``cat`` and delete the shard; returns the new ids.
    Only the process that writes the catalog calls it."""
    ids = []
    for f in shard_files(cat.root, run):
        try:
            rows = read_shard(f)
        except (OSError, ValueError):  # complete by construction; a damaged one is set aside: its
            with contextlib.suppress(OSError):  # items have no row, so the next run generates them again
                f.rename(f.with_suffix(".damaged"))
            continue
        ids += cat.insert_rows(rows)
        with contextlib.suppress(FileNotFoundError):
            f.unlink()
    return ids
