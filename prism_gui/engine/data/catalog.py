"""The project's data: a folder with a spec, images, thumbnails and an SQLite catalog.

Layout of a project folder::

    project.json        the project's spec (teacher, generator, settings)
    prompts.json        the prompt set
    catalog.sqlite      one row per image (WAL journal), runs, metrics, curation history
    images/<run>/       full-size PNGs (prompt, seed and settings also in PNG text chunks: ``prism``,
                        and ``parameters`` in the Stable Diffusion web UIs' layout)
    thumbs/<run>/       thumbnails, rendered when an image is saved
    runs/<run>/         manifest.json and metrics.jsonl of each job

Writes are atomic: a file is written to a temporary name and renamed, and its row is inserted
only after the rename, so a job killed at any moment leaves either a complete image with its
row or an image without a row, which :meth:`Catalog.repair` adopts from its PNG metadata; never a
row without its file.  A row whose file went missing later (a folder moved away) is kept.
Curation changes are logged, so every change can be undone.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from prism_gui.engine.data.recover import JOURNAL  # the curation journal, replayed by a rebuild

STATUSES = ("unreviewed", "keep", "reject")
THUMB_SIZE = 96
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


def prdc_file(root: str | Path, run: str) -> Path:
    """Where ``prism metrics`` saves a run's precision, recall, density and coverage."""
    return Path(root) / "runs" / run / "prdc.json"


def saved_prdc(root: str | Path, run: str) -> dict:
    """A run's saved P/R/D/C (overall keys and ``per_class``), or {} when none was measured or the
    file cannot be read."""
    try:
        saved = json.loads(prdc_file(root, run).read_text())
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(Path(path), text.encode("utf-8"))


def _png_bytes(img: Image.Image, text: dict[str, str] | None = None) -> bytes:
    import io

    info = PngImagePlugin.PngInfo()
    for k, v in (text or {}).items():
        info.add_text(k, v)
    buf = io.BytesIO()
    img.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


# Stable Diffusion web UI (A1111 / Forge) sampler names of the engine's schedulers
WEBUI_SAMPLERS = {"ddim": "DDIM", "ddpm": "DDPM", "pndm": "PLMS", "euler": "Euler", "euler_a": "Euler a",
                  "dpm++": "DPM++ 2M", "unipc": "UniPC", None: "Default"}


def _webui_value(v) -> str:
    """A value of the web UI's ``Key: value, ...`` line, quoted as it quotes them when needed."""
    text = v if isinstance(v, str) else json.dumps(v) if isinstance(v, (list, dict)) else f"{v:g}" \
        if isinstance(v, float) else str(v)
    return json.dumps(text) if any(ch in text for ch in ',:"\n') else text


def sd_webui_parameters(prompt: str, negative: str, seed: int, settings: dict, generator: str, score: dict | None,
                        size: tuple[int, int], class_name: str = "", run: str = "") -> str:
    """The ``parameters`` PNG text chunk in the layout Stable Diffusion web UIs write (AUTOMATIC1111,
    Forge), which their "PNG Info", Civitai and metadata readers show: the prompt, a ``Negative
    prompt:`` line, then ``Steps, Sampler, CFG scale, Seed, Size, Model`` and PRISM's own fields."""
    sampler = (settings or {}).get("sampler", {}) or {}
    guidance = (settings or {}).get("guidance", {}) or {}
    score = score or {}
    fields: list[tuple[str, object]] = []
    if "steps" in sampler:
        fields.append(("Steps", int(sampler["steps"])))
    if "scheduler" in sampler:
        fields.append(("Sampler", WEBUI_SAMPLERS.get(sampler["scheduler"], str(sampler["scheduler"]))))
    if "cfg" in sampler:
        fields.append(("CFG scale", float(sampler["cfg"])))
    # Model: the checkpoint's name, as the web UIs write it (a local folder's name, or the hub id), without
    # commas: several readers split the line on every comma, quoted or not
    model = Path(generator).name if os.path.isabs(generator) or generator.startswith(".") else generator
    fields += [("Seed", int(seed)), ("Size", f"{size[0]}x{size[1]}"), ("Model", model.replace(",", ""))]
    if sampler.get("eta"):
        fields.append(("Eta", float(sampler["eta"])))
    if class_name:
        fields.append(("PRISM class", class_name))
    if score.get("energy") is not None:
        fields.append(("PRISM energy", float(score["energy"])))
    if guidance:
        fields.append(("PRISM guidance scale", float(guidance.get("scale", 0.0))))
        weights = (guidance.get("energy") or {}).get("weights")
        if guidance.get("scale") and weights:
            fields.append(("PRISM guidance energy", ", ".join(f"{k} {w:g}" for k, w in weights.items())))
    if run:
        fields.append(("PRISM run", run))
    lines = [prompt]
    if negative:
        lines.append(f"Negative prompt: {negative}")
    lines.append(", ".join(f"{k}: {_webui_value(v)}" for k, v in fields))
    return "\n".join(lines)


ROW_COLUMNS = ("run", "item", "class_index", "class_name", "prompt", "negative_prompt", "seed", "generator",
               "settings", "energy", "energy_class", "energy_free", "energy_bn", "energies", "top5", "confidence",
               "entropy", "correct", "path", "thumb", "width", "height", "created", "updated")


def write_image_files(root: str | Path, run: str, item: int, image_hwc: np.ndarray, *, class_index: int,
                      class_name: str, prompt: str, seed: int, generator: str, settings: dict,
                      score: dict | None = None, negative_prompt: str = "") -> dict:
    """Write one image and its thumbnail atomically under ``root``; returns its catalog row (a
    dict of :data:`ROW_COLUMNS`, JSON-serializable), for :meth:`Catalog.insert_rows` or a shard."""
    root = Path(root)
    score = score or {}
    rel = Path("images") / run / f"{item:07d}_{seed}.png"
    rel_t = Path("thumbs") / run / f"{item:07d}_{seed}.png"
    mode = "L" if image_hwc.shape[-1] == 1 else "RGB"
    img = Image.fromarray(image_hwc[..., 0] if mode == "L" else image_hwc, mode)
    # everything the row holds, so a damaged catalog can be rebuilt from the images (data/recover.py)
    meta = {"prompt": prompt, "negative_prompt": negative_prompt, "seed": seed, "class": class_name,
            "class_index": int(class_index), "generator": generator, "settings": settings, "run": run, "item": item,
            "score": score or {}}
    text = {"prism": json.dumps(meta),
            "parameters": sd_webui_parameters(prompt, negative_prompt, seed, settings, generator, score,
                                              (img.width, img.height), class_name, run)}
    atomic_write_bytes(root / rel, _png_bytes(img, text))
    thumb = img.resize((THUMB_SIZE, THUMB_SIZE), Image.NEAREST if img.width < THUMB_SIZE else Image.BILINEAR)
    atomic_write_bytes(root / rel_t, _png_bytes(thumb))
    en = score.get("energies", {})
    now = time.time()
    return {"run": run, "item": int(item), "class_index": int(class_index), "class_name": class_name,
            "prompt": prompt, "negative_prompt": negative_prompt, "seed": int(seed), "generator": generator,
            "settings": json.dumps(settings), "energy": score.get("energy"), "energy_class": en.get("class"),
            "energy_free": en.get("free"), "energy_bn": en.get("bn"), "energies": json.dumps(en),
            "top5": json.dumps(score.get("top5", [])), "confidence": score.get("confidence"),
            "entropy": score.get("entropy"), "correct": None if "correct" not in score else int(score["correct"]),
            "path": rel.as_posix(), "thumb": rel_t.as_posix(), "width": img.width, "height": img.height,
            "created": now, "updated": now}


class CatalogError(RuntimeError):
    pass


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


class CatalogDamaged(CatalogError):
    """The catalog file cannot be read as a database (truncated, overwritten, not SQLite)."""

    def __init__(self, path: Path, problem: str):
        self.path = Path(path)
        super().__init__(
            f"the catalog {path} is damaged ({problem}). Your images are intact and each carries its prompt, seed, "
            f"settings and scores: rebuild the catalog from them with `prism repair-catalog {Path(path).parent}` "
            "(or File > Open in the app, which offers it); curation comes back from curation.jsonl. The damaged "
            "file is kept beside the new one.")




class Catalog:
    """SQLite catalog of one project folder (thread-safe for one writer + readers)."""

    def __init__(self, root: str | Path, create: bool = True):
        self.root = Path(root)
        if not self.root.exists():
            if not create:
                raise CatalogError(f"Project folder '{self.root}' does not exist.")
            self.root.mkdir(parents=True)
        self.db_path = self.root / "catalog.sqlite"
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
            atomic_write_text(self.root / "runs" / run / "manifest.json", json.dumps(manifest, indent=2))

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
            strays: dict[str, list[Path]] = {"images": [], "thumbs": []}
            for sub, known in (("images", paths), ("thumbs", thumbs)):
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
            adopted, unreadable = adopt_images(self, self.root, [f for f in strays["images"] if f.suffix == ".png"])
            report["adopted_files"], report["unreadable_files"] = adopted, unreadable
            report["unreadable_files"] += sum(f.suffix != ".png" for f in strays["images"])
            thumbs = {r[0].replace("\\", "/") for r in self._conn.execute("SELECT thumb FROM images")}
            for f in strays["thumbs"]:
                rel = f.relative_to(self.root).as_posix()
                if rel not in thumbs and not (self.root / "images" / f.relative_to(self.root / "thumbs")).exists():
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
        if counts and not (self.root / "images").is_dir():
            return [(self.root / "images", sum(n for _, n in counts))]
        return [(self.root / "images" / run, n) for run, n in counts if not (self.root / "images" / run).is_dir()]

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
        if sort not in SORT_COLUMNS:
            raise CatalogError(f"cannot sort by '{sort}'; choose one of {sorted(SORT_COLUMNS)}")
        listing = limit is None
        where, args = self._where(**filters, _listing=listing)
        # A filtered listing of the whole result: filter through the narrow covering index, then
        # sort.  Left to itself SQLite walks the sort column's index and looks every row up in the
        # table, which is 2-4x slower at 100,000 rows.  A page (LIMIT) still walks the sort index.
        key = f"+{sort}" if where and listing else sort
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
        if name not in SORT_COLUMNS | {"status"}:
            raise CatalogError(f"unknown column '{name}'")
        return np.array([r[0] for r in self.query(columns=name, **filters)])

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

    # ------------------------------------------------------------------ curation (undoable)
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

    def reject_beyond(self, threshold: float, *, column: str = "energy", above: bool = True,
                      **filters) -> int | None:
        """Reject, in one undoable action, every image whose ``column`` is beyond ``threshold``."""
        if column not in SORT_COLUMNS:
            raise CatalogError(f"unknown column '{column}'")
        where, args = self._where(**filters)
        cond = f"{column} {'>' if above else '<'} ?"
        q = f"SELECT id FROM images{where}{' AND ' if where else ' WHERE '}{cond}"
        with self._lock:
            ids = [r[0] for r in self._conn.execute(q, [*args, threshold])]
        return self.set_status(ids, "reject", label=f"{column} {'>' if above else '<'} {threshold:g}")

    # ------------------------------------------------------------------ metrics
    def log_metrics(self, run: str, step: int, values: dict[str, float], epoch: float | None = None) -> None:
        now = time.time()
        with self._writing():
            self._conn.executemany("INSERT INTO metrics (run, step, epoch, key, value, time) VALUES (?,?,?,?,?,?)",
                                   [(run, step, epoch, k, float(v), now) for k, v in values.items()])

    def replace_metrics(self, run: str, lines: list[dict]) -> None:
        """Make ``run``'s metrics exactly ``lines`` (``metrics.jsonl`` records: step, epoch,
        time and values), in one transaction: a resumed distillation's curves lose the steps
        it will redo."""
        rows = [(run, int(r["step"]), r.get("epoch"), k, float(v), r.get("time", 0.0))
                for r in lines for k, v in r.items() if k not in ("step", "epoch", "time")
                and isinstance(v, (int, float))]
        with self._writing():
            self._conn.execute("DELETE FROM metrics WHERE run=?", (run,))
            self._conn.executemany("INSERT INTO metrics (run, step, epoch, key, value, time) VALUES (?,?,?,?,?,?)",
                                   rows)

    def metrics(self, run: str, key: str) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            rows = self._conn.execute("SELECT step, value FROM metrics WHERE run=? AND key=? ORDER BY step",
                                      (run, key)).fetchall()
        return np.array([r[0] for r in rows]), np.array([r[1] for r in rows])

    def metric_runs(self) -> list[str]:
        """The runs that logged metrics, in the order they were made."""
        with self._lock:
            logged = {r[0] for r in self._conn.execute("SELECT DISTINCT run FROM metrics")}
        return [r["id"] for r in self.runs() if r["id"] in logged]

    def metrics_table(self, run: str) -> tuple[list[str], list[list]]:
        """``run``'s logged metrics as one table: a row per (step, epoch), a column per metric
        (``step, epoch, time`` first; empty where a step did not log that metric)."""
        with self._lock:
            rows = self._conn.execute("SELECT step, epoch, key, value, time FROM metrics WHERE run=? "
                                      "ORDER BY step, rowid", (run,)).fetchall()
        keys = list(dict.fromkeys(r["key"] for r in rows))
        table: dict[tuple, dict] = {}
        for r in rows:
            line = table.setdefault((r["step"], r["epoch"]), {"time": r["time"]})
            line[r["key"]] = r["value"]
        header = ["step", "epoch", "time", *keys]
        return header, [[step, epoch, line["time"], *(line.get(k) for k in keys)]
                        for (step, epoch), line in table.items()]

    def export_metrics_csv(self, run: str, dest: str | Path) -> int:
        """Write ``run``'s metrics (:meth:`metrics_table`) to a CSV file; returns its rows."""
        import csv
        import io

        known = [r["id"] for r in self.runs()]
        if run not in known:
            raise CatalogError(f"'{self.root}' has no run '{run}'; its runs are {', '.join(known) or 'none'}")
        header, rows = self.metrics_table(run)
        if not rows:
            raise CatalogError(f"run '{run}' logged no metrics yet (a generation logs them per stored batch, a "
                               "distillation per step): run it first, or choose another run")
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(header)
        w.writerows([["" if v is None else v for v in r] for r in rows])
        atomic_write_text(Path(dest), buf.getvalue())
        return len(rows)
