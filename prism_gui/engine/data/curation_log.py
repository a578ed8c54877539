"""The catalog's curation: status changes in undoable actions, each also appended to the project's
journal (``curation.jsonl``) before it is committed, so a rebuilt catalog replays them."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable

from prism_gui.engine.data.errors import CatalogError
from prism_gui.engine.data.layout import JOURNAL

STATUSES = ("unreviewed", "keep", "reject")


class CurationLog:
    """Curation methods of :class:`~prism_gui.engine.data.catalog.Catalog` (a mixin: it uses the
    catalog's connection, lock and write transaction)."""

    def set_status(self, ids: Iterable[int], status: str, label: str = "") -> int | None:
        """Change the curation status of images; returns the action id for :meth:`undo`."""
        if status not in STATUSES:
            raise CatalogError(f"status must be one of {STATUSES}, not {status!r}")
        ids = list(ids)
        if not ids:
            return None
        now = time.time()
        with self._writing():
            action = (self._conn.execute("SELECT COALESCE(MAX(action), 0) + 1 FROM curation_log").fetchone()[0])
            old = []
            for chunk in range(0, len(ids), 900):
                part = ids[chunk : chunk + 900]
                old += self._conn.execute(
                    f"SELECT id, status FROM images WHERE id IN ({','.join('?' * len(part))})", part).fetchall()
            changed = [(r["id"], r["status"]) for r in old if r["status"] != status]
            self._conn.executemany(
                "INSERT INTO curation_log (action, image_id, old, new, label, time) VALUES (?,?,?,?,?,?)",
                [(action, i, o, status, label, now) for i, o in changed])
            self._conn.executemany("UPDATE images SET status=?, updated=? WHERE id=?",
                                   [(status, now, i) for i, _ in changed])
            keys = self._keys([i for i, _ in changed])
            if changed:  # journaled before the commit: a change the catalog holds is in the journal
                self._journal({"time": now, "set": status, "items": [keys[i] for i, _ in changed if i in keys],
                               "label": label})
        return action if changed else None

    def restore_statuses(self, changes: list[tuple[str, str, int]]) -> int:
        """Set ``(status, run, item)`` without journaling them (a rebuild replaying the journal);
        returns how many rows matched."""
        with self._writing():
            cur = self._conn.executemany("UPDATE images SET status=? WHERE run=? AND item=?", changes)
        return cur.rowcount

    def _keys(self, ids: list[int]) -> dict[int, list]:
        """id -> [run, item] (ids change when a catalog is rebuilt; run and item do not)."""
        out = {}
        for chunk in range(0, len(ids), 900):
            part = ids[chunk : chunk + 900]
            for r in self._conn.execute(f"SELECT id, run, item FROM images WHERE id IN ({','.join('?' * len(part))})",
                                        part):
                out[r[0]] = [r[1], r[2]]
        return out

    def _journal(self, entry: dict) -> None:
        """Append one curation change to the journal (flushed to disk before returning).  A line
        a crash or a full disk cut short is closed first, so it costs only itself."""
        path = self.root / JOURNAL
        try:
            with open(path, "a+b") as f:
                if f.tell() > 0:
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        f.write(b"\n")
                f.write((json.dumps(entry) + "\n").encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise CatalogError(f"cannot write the curation journal {path}: {e.strerror or e}. Free disk space or "
                               "make the project folder writable, then repeat the change: nothing was changed") from e

    def undo(self) -> int | None:
        """Undo the latest curation action not yet undone; returns its id (None if nothing)."""
        with self._writing():
            r = self._conn.execute("SELECT MAX(action) FROM curation_log WHERE undone=0").fetchone()[0]
            if r is None:
                return None
            rows = self._conn.execute("SELECT image_id, old FROM curation_log WHERE action=?", (r,)).fetchall()
            self._conn.executemany("UPDATE images SET status=?, updated=? WHERE id=?",
                                   [(o, time.time(), i) for i, o in rows])
            self._conn.execute("UPDATE curation_log SET undone=1 WHERE action=?", (r,))
            keys = self._keys([i for i, _ in rows])
            self._journal({"time": time.time(), "restore": [[*keys[i], o] for i, o in rows if i in keys]})
        return int(r)
