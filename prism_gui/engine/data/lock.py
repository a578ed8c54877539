"""The project lock: one writer of images at a time per project folder.

A job that adds or removes images (a generation, DeepInversion, a shard merge,
:meth:`Catalog.repair`) holds the project's lock for as long as it runs.  A second such job
(another app window, a CLI run, a second cluster job) is refused at once with
:class:`ProjectLocked`, whose message names the holder (command, process, host, user, since
when) and what to do.

The lock is an operating-system lock on ``<project>/.prism.lock`` (``filelock``: ``flock`` on
Linux/macOS, ``LockFileEx`` on Windows), so it is released when its process ends however it
ends (a crash or ``kill -9`` leaves no stale lock); Linux maps ``flock`` on NFS to the NFS lock
manager, so cluster jobs on a shared file system see each other's locks.  Who holds it is written
beside it in ``.prism.lock.json``, for messages only.

Within one process the lock is re-entrant: the app's generation job and its shard merge share
the lock the app took.  Curation and distillation do not take it: they change statuses and
metrics, one SQLite transaction at a time, which is safe beside a writer on the same host.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

LOCK_FILE = ".prism.lock"
HOLDER_FILE = ".prism.lock.json"


class ProjectLocked(RuntimeError):
    """Another process is writing the project."""

    def __init__(self, root: Path, holder: dict | None):
        self.root, self.holder = root, holder or {}
        super().__init__(
            f"project '{root}' is being written by {describe_holder(self.holder)}: wait for that job to finish or "
            "stop it, then try again (the lock frees itself when that process ends; another run name does not "
            "help, images of one project are written by one job at a time)")


def describe_holder(h: dict) -> str:
    if not h:
        return "another process (unknown: its holder file is missing)"
    since = time.strftime("%Y-%m-%d %H:%M", time.localtime(h.get("since", 0)))
    return (f"{h.get('purpose', 'a job')} (process {h.get('pid')} on host {h.get('host')}, user {h.get('user')}, "
            f"since {since})")


_held: dict[Path, list] = {}  # resolved root -> [FileLock, count, info]
_guard = threading.Lock()


def _key(root) -> Path:
    return Path(root).resolve()


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (a container without a passwd entry)
        return str(os.getuid()) if hasattr(os, "getuid") else "?"


def holder(root) -> dict | None:
    """Who holds ``root``'s lock now, or None when it is free (a cheap non-blocking probe)."""
    if held_here(root):
        return _held[_key(root)][2]
    from filelock import FileLock, Timeout

    path = _key(root) / LOCK_FILE
    if not path.exists():
        return None
    probe = FileLock(str(path))
    try:
        probe.acquire(timeout=0)
    except Timeout:
        return _read_holder(_key(root))
    probe.release()
    return None


def _read_holder(root: Path) -> dict:
    try:
        return json.loads((root / HOLDER_FILE).read_text())
    except (OSError, ValueError):
        return {}


def held_here(root) -> bool:
    """Whether this process holds ``root``'s lock."""
    with _guard:
        return _key(root) in _held


@contextlib.contextmanager
def project_lock(root, purpose: str) -> Iterator[dict]:
    """Hold ``root``'s lock for the block (re-entrant within a process); raises
    :class:`ProjectLocked` at once when another process holds it."""
    from filelock import FileLock, Timeout

    from prism_gui.engine.data.files import atomic_write_text

    key = _key(root)
    with _guard:
        entry = _held.get(key)
        if entry is not None:
            entry[1] += 1
        else:
            key.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(key / LOCK_FILE))
            try:
                lock.acquire(timeout=0)
            except Timeout:
                raise ProjectLocked(key, _read_holder(key)) from None
            info = {"purpose": purpose, "pid": os.getpid(), "host": socket.gethostname(), "user": _user(),
                    "since": time.time(), "argv": sys.argv[:4]}
            atomic_write_text(key / HOLDER_FILE, json.dumps(info))
            entry = _held[key] = [lock, 1, info]
    try:
        yield entry[2]
    finally:
        with _guard:
            entry[1] -= 1
            if entry[1] == 0:
                del _held[key]
                with contextlib.suppress(OSError):
                    (key / HOLDER_FILE).unlink()
                entry[0].release()
