"""Files written whole or not at all, and write errors that name the file and the fix: the one
way every job and command of the engine writes a file."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from prism_gui.engine.data.layout import RunPaths


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all (a temporary file, flushed, then renamed).  A failed
    write (disk full, file too large, permissions) leaves the previous file as it was and raises
    an ``OSError`` that names the file and what to do."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise write_error(path, e) from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise write_error(path, e) from e
        raise


def write_error(path, e: OSError) -> OSError:
    """``e`` as an error that names the file and the fix (the errno is kept)."""
    above = next((p for p in Path(path).parents if p.exists()), None)
    if above is not None and not above.is_dir():  # a file where a folder of the path should be
        return OSError(e.errno, f"cannot write '{path}': '{above}' is a file, not a folder: give a path whose "
                                "folders are folders (nothing was written)")
    return OSError(e.errno, f"cannot write '{path}': {e.strerror or e}. Free disk space or make the folder "
                            "writable, then run again: what was written before is intact")


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(Path(path), text.encode("utf-8"))


def saved_prdc(root: str | Path, run: str) -> dict:
    """A run's saved P/R/D/C (overall keys and ``per_class``), or {} when none was measured or the
    file cannot be read."""
    try:
        saved = json.loads(RunPaths.of(root, run).prdc.read_text())
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}
