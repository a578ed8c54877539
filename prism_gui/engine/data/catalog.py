"""The project's SQLite catalog: one row per image, the runs, the metrics and the curation history
(the folder's layout is in ``layout.py``; an image's files in ``image_files.py``).

Writes are atomic: a file is written to a temporary name and renamed, and its row is inserted
only after the rename, so a job killed at any moment leaves either a complete image with its
row or an image without a row, which :meth:`Catalog.repair` adopts from its PNG metadata; never a
row without its file.  A row whose file went missing later (a folder moved away) is kept.
Curation changes are logged, so every change can be undone (``curation_log.py``).
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from prism_gui.engine.data.curation_log import STATUSES, CurationLog
from prism_gui.engine.data.errors import CatalogDamaged, CatalogError
from prism_gui.engine.data.files import atomic_write_text
from prism_gui.engine.data.image_files import ROW_COLUMNS, write_image_files
from prism_gui.engine.data.layout import CATALOG_FILE, IMAGES, THUMBS, RunPaths
from prism_gui.engine.data.metrics_store import MetricsStore

__all__ = ["SORT_COLUMNS", "STATUSES", "Catalog", "CatalogDamaged", "CatalogError", "describe_repair"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY,
    run TEXT NOT NULL,
    item INTEGER NOT NULL,
    class_index INTEGER NOT NULL,
    class_name TEXT NOT NULL,
    prompt TEXT NOT NULL,
    negative_prompt TEXT NOT NULL DEFAULT '',
    seed INTEGER NOT NULL,
    generator TEXT NOT NULL,
    settings TEXT NOT NULL,
    energy REAL,
    energy_class REAL,
    energy_free REAL,
    energy_bn REAL,
    energies TEXT,
    top5 TEXT,
    confidence REAL,
    entropy REAL,
    correct INTEGER,
    status TEXT NOT NULL DEFAULT 'unreviewed' CHECK (status IN ('unreviewed', 'keep', 'reject')),
    path TEXT NOT NULL,
    thumb TEXT NOT NULL,
    width INTEGER, height INTEGER,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    UNIQUE (run, item),
    UNIQUE (run, seed)
);
CREATE INDEX IF NOT EXISTS ix_images_class ON images (class_index, energy);
CREATE INDEX IF NOT EXISTS ix_images_energy ON images (energy);
CREATE INDEX IF NOT EXISTS ix_images_confidence ON images (confidence);
CREATE INDEX IF NOT EXISTS ix_images_status ON images (status, class_index);
CREATE INDEX IF NOT EXISTS ix_images_run ON images (run, class_index);
CREATE INDEX IF NOT EXISTS ix_images_filter ON images (status, class_index, run, energy, confidence, correct,
    energy_class, energy_free, energy_bn, entropy, created, seed, prompt);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, spec TEXT NOT NULL, manifest TEXT,
    status TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics (
    run TEXT NOT NULL, step INTEGER NOT NULL, epoch REAL, key TEXT NOT NULL, value REAL NOT NULL,
    time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_metrics_run ON metrics (run, key, step);
CREATE TABLE IF NOT EXISTS curation_log (
    action INTEGER NOT NULL, image_id INTEGER NOT NULL, old TEXT NOT NULL, new TEXT NOT NULL,
    label TEXT, time REAL NOT NULL, undone INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS ix_log_action ON curation_log (action);
"""

SORT_COLUMNS = {"id", "energy", "energy_class", "energy_free", "energy_bn", "confidence", "entropy", "class_index",
                "created", "seed"}
_ENERGY_TERM = re.compile(r"^energy_([a-z][a-z0-9_]*)$")


def sort_expression(name: str) -> str:
    """The SQL of a column the catalog sorts and filters by: one of :data:`SORT_COLUMNS`, or
    ``energy_<term>`` for any energy term, registered now or later (every term's value is stored
    in the ``energies`` JSON column; the three built-in ones also have a column of their own)."""
    if name in SORT_COLUMNS:
        return name
    m = _ENERGY_TERM.match(name)
    if m:
        return f"json_extract(energies, '$.{m.group(1)}')"
    raise CatalogError(f"cannot sort by '{name}'; choose one of {sorted(SORT_COLUMNS)}, or energy_<term> for any "
                       "energy term")


def describe_repair(report: dict) -> str:
    """What :meth:`Catalog.repair` did, in a sentence ('' when nothing)."""
    done = [f"{n} {what}" for n, what in ((report.get("adopted_files", 0), "image(s) without a row adopted"),
                                          (report.get("temp_files", 0), "temporary file(s) removed"),
                                          (report.get("removed_thumbs", 0), "stray thumbnail(s) removed")) if n]
    if report.get("unreadable_files"):
        done.append(f"{report['unreadable_files']} file(s) in images/ without PRISM metadata left as they are")
    if report.get("missing_files"):
        done.append(f"{report['missing_files']} image(s) listed in the catalog have no file (first: "
                    f"{', '.join(report['missing_examples'])}): their rows are kept until the files are back")
    return "; ".join(done)


class Catalog(CurationLog, MetricsStore):
    """SQLite catalog of one project folder (thread-safe for one writer + readers)."""

    def __init__(self, root: str | Path, create: bool = True):
        self.root = Path(root)
        if not self.root.exists():
            if not create:
                raise CatalogError(f"Project folder '{self.root}' does not exist.")
            self.root.mkdir(parents=True)
        self.db_path = self.root / CATALOG_FILE
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(self.db_path, check_same_thread=False, timeout=30)
        except sqlite3.OperationalError as e:  # a folder that cannot be written, a path that is a file
            raise CatalogError(f"cannot open the catalog {self.db_path}: {e}. Check that the project folder exists "
                               "and is writable") from e
        try:
            self._conn.row_factory = sqlite3.Row
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise CatalogError(f"{self.db_path} was written by a newer PRISM Studio (catalog schema {version}, "
                                   f"this version reads {SCHEMA_VERSION}): open the project with that version")
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(_SCHEMA)
            self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._conn.commit()
        except sqlite3.OperationalError as e:  # locked, read-only, disk full: the file is not the problem
            self._conn.close()
            raise CatalogError(f"cannot open the catalog {self.db_path}: {e}. Check that the project folder is "
                               "writable and the disk has space") from e
        except sqlite3.DatabaseError as e:
            self._conn.close()
            raise CatalogDamaged(self.db_path, str(e)) from e
        except BaseException:
            self._conn.close()
            raise

    @contextlib.contextmanager
    def _writing(self):
        """A write transaction; a failed commit (disk full, read-only file) rolls back and raises a
        :class:`CatalogError` that says what to do: everything committed before stays."""
        with self._lock:
            try:
                with self._conn:
                    yield
            except sqlite3.OperationalError as e:
                raise CatalogError(f"cannot write the catalog {self.db_path}: {e}. Free disk space or make the "
                                   "project folder writable, then run again: what was stored before is intact") from e

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ runs
    def start_run(self, run: str, kind: str, spec: dict, manifest: dict | None = None) -> None:
        """Record run ``run`` of ``kind`` as running (a new one, or a resumed one of the same kind):
        a name that cannot be a folder, or that another kind of run has, is refused."""
        self.check_run(run, kind)
        now = time.time()
        with self._writing():
            self._conn.execute(
                "INSERT INTO runs (id, kind, spec, manifest, status, created, updated) VALUES (?,?,?,?,?,?,?) "
                "ON CONFLICT(id) DO UPDATE SET status='running', updated=excluded.updated",
                (run, kind, json.dumps(spec), json.dumps(manifest or {}), "running", now, now))
        if manifest is not None:
            atomic_write_text(RunPaths.of(self.root, run).manifest, json.dumps(manifest, indent=2))

    def check_run(self, run: str, kind: str) -> None:
        """Refuse ``run`` as the name of a ``kind`` run: not a folder name (:func:`check_run_name`),
        or the name of a run of another kind, whose folder it would write into."""
        from prism_gui.engine.data.guard import RunNameError, check_run_name

        check_run_name(run)
        with self._lock:
            r = self._conn.execute("SELECT kind FROM runs WHERE id=?", (run,)).fetchone()
        if r is not None and r["kind"] != kind:
            raise RunNameError(f"'{run}' is already the name of a {r['kind']} run of the project '{self.root}': "
                               f"give this {kind} run another name (its files would go into that run's folder)")

    def finish_run(self, run: str, status: str = "finished") -> None:
        with self._writing():
            self._conn.execute("UPDATE runs SET status=?, updated=? WHERE id=?", (status, time.time(), run))

    def runs(self, kind: str | None = None) -> list[dict]:
        q = "SELECT * FROM runs" + (" WHERE kind=?" if kind else "") + " ORDER BY created"
        with self._lock:
            rows = self._conn.execute(q, (kind,) if kind else ()).fetchall()
        out = [{**dict(r), "spec": json.loads(r["spec"])} for r in rows]
        if any(r["status"] == "running" for r in out):
            from prism_gui.engine.data.lock import holder

            if holder(self.root) is None:  # no writer holds the project: the run stopped without recording it
                for r in out:  # (killed, or a disk too full to write its end)
                    if r["status"] == "running":
                        r["status"] = "interrupted"
        return out

    def run_spec(self, run: str) -> dict | None:
        with self._lock:
            r = self._conn.execute("SELECT spec FROM runs WHERE id=?", (run,)).fetchone()
        return json.loads(r["spec"]) if r else None

    # ------------------------------------------------------------------ images
    def add_image(self, run: str, item: int, image_hwc: np.ndarray, *, class_index: int, class_name: str,
                  prompt: str, seed: int, generator: str, settings: dict, score: dict | None = None,
                  negative_prompt: str = "") -> int:
        """Store one image atomically (file, thumbnail, then row); returns its id."""
        row = write_image_files(self.root, run, item, image_hwc, class_index=class_index, class_name=class_name,
                                prompt=prompt, seed=seed, generator=generator, settings=settings, score=score,
                                negative_prompt=negative_prompt)
        ids = self.insert_rows([row], skip_existing=False)
        return ids[0]

    def insert_rows(self, rows: Sequence[dict], *, skip_existing: bool = True) -> list[int]:
        """Insert rows made by :func:`write_image_files` (whose files exist); returns the new ids.
        With ``skip_existing`` a row whose (run, item) is already stored is skipped, so merging a
        shard twice changes nothing."""
        if not rows:
            return []
        cols = list(ROW_COLUMNS)
        verb = "INSERT OR IGNORE" if skip_existing else "INSERT"
        q = f"{verb} INTO images ({', '.join(cols)}) VALUES ({','.join('?' * len(cols))})"
        ids = []
        with self._writing():
            for r in rows:
                cur = self._conn.execute(q, [r[c] for c in cols])
                if cur.rowcount:
                    ids.append(int(cur.lastrowid))
        return ids

    def done_items(self, run: str) -> set[int]:
        with self._lock:
            return {r[0] for r in self._conn.execute("SELECT item FROM images WHERE run=?", (run,))}

    def repair(self) -> dict:
        """Make the catalog and the files agree after a stop, losing nothing a user made.

        - temporary files (a write cut by a kill) are removed;
        - an image with no row (killed between the file and its row, or a catalog older than the
          files) is adopted: its row is rebuilt from its PNG metadata (:mod:`.recover`);
        - a thumbnail with neither a row nor an image is removed (it is made from the image);
        - a row whose image file is missing is kept, never deleted: a moved or unmounted folder
          is not a damaged catalog.  They are counted in ``missing_files`` (the first few in
          ``missing_examples``) and the rows come back to use when the files do.

        Only under the project lock (:mod:`.lock`), which no other writer then holds, and after
        shards waiting to be merged are merged (their files have no row yet, but are kept)."""
        from prism_gui.engine.data.lock import held_here

        if not held_here(self.root):
            raise CatalogError(f"repair of '{self.root}' needs the project lock (another writer may be writing "
                               "images): run it inside project_lock(project, ...)")
        from prism_gui.engine.data.recover import adopt_images
        from prism_gui.engine.data.shards import pending_paths

        report = {"temp_files": 0, "adopted_files": 0, "unreadable_files": 0, "removed_thumbs": 0,
                  "missing_files": 0, "missing_examples": []}
        waiting = pending_paths(self.root)
        with self._lock:
            paths = {r[0].replace("\\", "/") for r in self._conn.execute("SELECT path FROM images")}
            thumbs = {r[0].replace("\\", "/") for r in self._conn.execute("SELECT thumb FROM images")}
            strays: dict[str, list[Path]] = {IMAGES: [], THUMBS: []}
            for sub, known in ((IMAGES, paths), (THUMBS, thumbs)):
                base = self.root / sub
                for f in base.rglob("*") if base.exists() else ():
                    if not f.is_file():
                        continue
                    rel = f.relative_to(self.root).as_posix()
                    if f.name.endswith(".tmp"):
                        f.unlink()
                        report["temp_files"] += 1
                    elif rel not in known and rel not in waiting:
                        strays[sub].append(f)
            adopted, unreadable = adopt_images(self, self.root, [f for f in strays[IMAGES] if f.suffix == ".png"])
            report["adopted_files"], report["unreadable_files"] = adopted, unreadable
            report["unreadable_files"] += sum(f.suffix != ".png" for f in strays[IMAGES])
            thumbs = {r[0].replace("\\", "/") for r in self._conn.execute("SELECT thumb FROM images")}
            for f in strays[THUMBS]:
                rel = f.relative_to(self.root).as_posix()
                if rel not in thumbs and not (self.root / IMAGES / f.relative_to(self.root / THUMBS)).exists():
                    f.unlink()
                    report["removed_thumbs"] += 1
            missing = [r["path"] for r in self._conn.execute("SELECT path FROM images ORDER BY id")
                       if not (self.root / r["path"]).exists()]
            report["missing_files"], report["missing_examples"] = len(missing), missing[:3]
        return report

    def missing_folders(self) -> list[tuple[Path, int]]:
        """Image folders that rows point into but that are not there (``images/`` itself, or a run's
        folder in it), each with how many rows point into it."""
        with self._lock:
            counts = self._conn.execute("SELECT run, COUNT(*) FROM images GROUP BY run").fetchall()
        if counts and not (self.root / IMAGES).is_dir():
            return [(self.root / IMAGES, sum(n for _, n in counts))]
        return [(RunPaths.of(self.root, run).images, n) for run, n in counts
                if not RunPaths.of(self.root, run).images.is_dir()]

    def _where(self, run=None, classes=None, statuses=None, energy_max=None, energy_min=None,
               confidence_min=None, confidence_max=None, text=None, correct=None, ids=None, _listing=False):
        """``_listing``: the whole result is wanted, so range terms are tested while scanning the
        covering index (``+col``) instead of being looked up row by row through their own index."""
        clauses, args = [], []
        plus = "+" if _listing else ""
        if run is not None:
            runs = [run] if isinstance(run, str) else list(run)
            clauses.append(f"run IN ({','.join('?' * len(runs))})")
            args += runs
        if classes is not None:
            classes = list(classes)
            clauses.append(f"class_index IN ({','.join('?' * len(classes))})" if classes else "0")
            args += classes
        if statuses is not None:
            statuses = list(statuses)
            clauses.append(f"status IN ({','.join('?' * len(statuses))})" if statuses else "0")
            args += statuses
        for col, op, val in (("energy", "<=", energy_max), ("energy", ">=", energy_min),
                             ("confidence", ">=", confidence_min), ("confidence", "<=", confidence_max)):
            if val is not None:
                clauses.append(f"{plus}{col} {op} ?")
                args.append(val)
        if text:
            clauses.append("prompt LIKE ?")
            args.append(f"%{text}%")
        if correct is not None:
            clauses.append("correct = ?")
            args.append(int(correct))
        if ids is not None:  # one JSON parameter: a map selection of 100,000 ids is past SQLite's variable limit
            ids = [int(i) for i in ids]
            clauses.append("id IN (SELECT value FROM json_each(?))" if ids else "0")
            args += [json.dumps(ids)] if ids else []
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args

    def _select(self, columns: str, sort: str, descending: bool, limit: int | None, offset: int,
                filters: dict) -> tuple[str, list]:
        expr = sort_expression(sort)
        listing = limit is None
        where, args = self._where(**filters, _listing=listing)
        # A filtered listing of the whole result: filter through the narrow covering index, then
        # sort.  Left to itself SQLite walks the sort column's index and looks every row up in the
        # table, which is 2-4x slower at 100,000 rows.  A page (LIMIT) still walks the sort index.
        key = f"+{expr}" if where and listing else expr
        q = f"SELECT {columns} FROM images{where} ORDER BY {key} {'DESC' if descending else 'ASC'}, id"
        if limit is not None:
            q += " LIMIT ? OFFSET ?"
            args += [limit, offset]
        return q, args

    def query(self, *, sort: str = "id", descending: bool = False, limit: int | None = None, offset: int = 0,
              columns: str = "*", **filters) -> list[sqlite3.Row]:
        q, args = self._select(columns, sort, descending, limit, offset, filters)
        with self._lock:
            return self._conn.execute(q, args).fetchall()

    def ids(self, *, sort: str = "id", descending: bool = False, limit: int | None = None, offset: int = 0,
            **filters) -> list[int]:
        """Ids in order; reads plain tuples (no ``sqlite3.Row``), the gallery's hot path."""
        q, args = self._select("id", sort, descending, limit, offset, filters)
        with self._lock:
            cur = self._conn.cursor()
            cur.row_factory = None
            return [r[0] for r in cur.execute(q, args)]

    def count(self, **filters) -> int:
        where, args = self._where(**filters)
        with self._lock:
            return int(self._conn.execute(f"SELECT COUNT(*) FROM images{where}", args).fetchone()[0])

    def get(self, image_id: int) -> dict:
        with self._lock:
            r = self._conn.execute("SELECT * FROM images WHERE id=?", (image_id,)).fetchone()
        if r is None:
            raise CatalogError(f"no image with id {image_id}")
        d = dict(r)
        for k in ("settings", "energies", "top5"):
            d[k] = json.loads(d[k]) if d[k] else None
        return d

    def class_summary(self) -> dict[int, dict]:
        """Per class with images: count, kept, rejected, mean energy, confidence and teacher agreement."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT class_index, COUNT(*), SUM(status = 'keep'), SUM(status = 'reject'), AVG(energy), "
                "AVG(confidence), AVG(correct) FROM images GROUP BY class_index").fetchall()
        return {int(k): {"images": n, "kept": kept or 0, "rejected": rej or 0, "energy": e, "confidence": c,
                         "correct": ok} for k, n, kept, rej, e, c, ok in rows}

    def class_names(self) -> list[str]:
        """The class names the images carry, by class index (an index without images: its number)."""
        with self._lock:
            rows = self._conn.execute("SELECT class_index, MIN(class_name) FROM images GROUP BY class_index").fetchall()
        named = {int(k): name for k, name in rows}
        return [named.get(k, str(k)) for k in range(max(named) + 1)] if named else []

    def column(self, name: str, **filters) -> np.ndarray:
        """One column (or ``energy_<term>``: any energy term's stored value) of the images, by id."""
        expr = "status" if name == "status" else sort_expression(name)
        return np.array([r[0] for r in self.query(columns=expr, **filters)])

    def load_images(self, ids: Sequence[int] | None = None, **filters):
        """(images in [-1, 1] as a float tensor (N, C, H, W), class indices, ids)."""
        import torch

        rows = self.query(columns="id, path, class_index", ids=ids, **filters) if ids is not None else \
            self.query(columns="id, path, class_index", **filters)
        arrs = []
        for r in rows:
            with Image.open(self.root / r["path"]) as im:
                a = np.asarray(im)
            arrs.append(a[..., None] if a.ndim == 2 else a)
        if not arrs:
            return torch.zeros(0), np.zeros(0, np.int64), []
        x = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return x, np.array([r["class_index"] for r in rows], np.int64), [r["id"] for r in rows]

    def beyond(self, threshold: float, *, column: str = "energy", above: bool = True, **filters) -> list[int]:
        """The ids of the images whose ``column`` is beyond ``threshold`` (among ``filters``)."""
        where, args = self._where(**filters)
        cond = f"{sort_expression(column)} {'>' if above else '<'} ?"
        q = f"SELECT id FROM images{where}{' AND ' if where else ' WHERE '}{cond}"
        with self._lock:
            return [r[0] for r in self._conn.execute(q, [*args, threshold])]

    def reject_beyond(self, threshold: float, *, column: str = "energy", above: bool = True, spare_kept: bool = False,
                      **filters) -> int | None:
        """Reject, in one undoable action, every image whose ``column`` is beyond ``threshold``;
        with ``spare_kept``, the images a user kept by hand stay kept."""
        ids = self.beyond(threshold, column=column, above=above, **filters)
        if spare_kept and ids:
            kept = set(self.ids(ids=ids, statuses=["keep"]))
            ids = [i for i in ids if i not in kept]
        return self.set_status(ids, "reject", label=f"{column} {'>' if above else '<'} {threshold:g}")
