"""A damaged catalog: detected on open, rebuilt from the images themselves.

Every stored PNG carries, in its ``prism`` text chunk, what its catalog row holds: run, item,
seed, class, prompt, negative prompt, generator, settings and (since this version) the teacher's
scores.  Every curation change is appended to ``curation.jsonl`` by (run, item).  So the catalog
is a cache of the project's files: :func:`rebuild_catalog` moves a damaged ``catalog.sqlite``
aside (never deleting it), makes a new one from the images, the runs' manifests and the journal.

What a rebuild cannot bring back: metrics rows of distillation runs (their ``metrics.jsonl`` in the
run's output folder has them), and the scores of images written by versions before the scores
went into the PNG (their energies stay empty; rescoring is one generation-free pass of the teacher).
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from prism_gui.engine.data.layout import CATALOG_FILE, IMAGES, JOURNAL, MANIFEST, METRICS, STUDENT, JobFiles, runs_dir

DB = CATALOG_FILE
# (this module imports neither the catalog nor PIL at import: the app runs check_catalog on open)


def read_jsonl(path: Path) -> list[dict]:
    """The records of an append-only JSON-lines file (the curation journal, a run's
    ``metrics.jsonl``); a line cut by a crash is skipped, the lines around it stand."""
    out = []
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26  # the primary result codes that mean a damaged file


def check_catalog(root) -> str | None:
    """What is wrong with ``root``'s catalog (a sentence), or None when it reads (or does not exist
    and no image would be lost without it).  Reads only: SQLite's ``quick_check``."""
    root = Path(root)
    db = root / DB
    if not db.exists():
        if (root / "images").exists():
            from prism_gui.engine.data.shards import pending_paths

            waiting = pending_paths(root)  # images whose rows wait in shards (a cluster run) are accounted for
            if any(f.relative_to(root).as_posix() not in waiting for f in (root / "images").rglob("*.png")):
                return "it is missing, but the project has images"
        return None
    if db.stat().st_size == 0:
        return "the file is empty"
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            result = [r[0] for r in conn.execute("PRAGMA quick_check")]
            conn.execute("SELECT COUNT(*) FROM images").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        if getattr(e, "sqlite_errorcode", SQLITE_CORRUPT) & 0xFF not in (SQLITE_CORRUPT, SQLITE_NOTADB):
            # a full disk, a read-only folder, a lock: the file may be fine, and a rebuild is not the fix
            raise OSError(f"cannot read the catalog {db}: {e}. Free disk space or make the project folder "
                          "writable, then open the project again: the catalog is not known to be damaged") from e
        return str(e)
    if result != ["ok"]:
        return "; ".join(result[:3])
    return None


def open_checked(root) -> None:
    """Raise :class:`CatalogDamaged` when ``root``'s catalog is damaged (what the app does on open)."""
    problem = check_catalog(root)
    if problem is not None:
        from prism_gui.engine.data.catalog import CatalogDamaged

        raise CatalogDamaged(Path(root) / DB, problem)


def _row_from_png(root: Path, path: Path, class_names: list[str]) -> dict | None:
    from PIL import Image

    with Image.open(path) as im:
        meta = json.loads(im.text.get("prism", "null") or "null") if hasattr(im, "text") else None
        width, height = im.size
    if not isinstance(meta, dict) or "run" not in meta or "item" not in meta:
        return None
    index = meta.get("class_index")
    if index is None:  # written before the class index went into the PNG
        if meta.get("class") not in class_names:
            return None
        index = class_names.index(meta["class"])
    score = meta.get("score") or {}
    en = score.get("energies", {})
    rel = path.relative_to(root).as_posix()
    thumb = Path("thumbs") / meta["run"] / path.name
    now = time.time()
    return {"run": meta["run"], "item": int(meta["item"]), "class_index": int(index),
            "class_name": meta.get("class", str(index)), "prompt": meta.get("prompt", ""),
            "negative_prompt": meta.get("negative_prompt", ""), "seed": int(meta["seed"]),
            "generator": meta.get("generator", ""), "settings": json.dumps(meta.get("settings", {})),
            "energy": score.get("energy"), "energy_class": en.get("class"), "energy_free": en.get("free"),
            "energy_bn": en.get("bn"), "energies": json.dumps(en), "top5": json.dumps(score.get("top5", [])),
            "confidence": score.get("confidence"), "entropy": score.get("entropy"),
            "correct": None if "correct" not in score else int(score["correct"]), "path": rel,
            "thumb": thumb.as_posix(), "width": width, "height": height, "created": path.stat().st_mtime,
            "updated": now}


def _class_names(root: Path) -> list[str]:
    for f, key in (("project.json", ("teacher", "class_names")), ("prompts.json", ("class_names",))):
        try:
            d = json.loads((root / f).read_text())
            for k in key:
                d = d[k]
            if d:
                return list(d)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return []


def adopt_images(cat, root: Path, pngs) -> tuple[int, int]:
    """Add a row to ``cat`` for each of the ``pngs`` (under ``root/images``) from its PNG metadata,
    making a missing thumbnail; returns (rows added, files without readable metadata).  A file
    whose (run, item) is already in the catalog adds nothing."""
    from PIL import Image

    from prism_gui.engine.data.files import atomic_write_bytes
    from prism_gui.engine.data.image_files import THUMB_SIZE
    from prism_gui.engine.data.pngmeta import png_bytes

    names = _class_names(root)
    rows, unreadable = [], 0
    for png in pngs:
        try:
            row = _row_from_png(root, png, names)
        except (OSError, ValueError):
            row = None
        if row is None:
            unreadable += 1
            continue
        if not (root / row["thumb"]).exists():
            with Image.open(png) as im:
                thumb = im.resize((THUMB_SIZE, THUMB_SIZE), Image.NEAREST if im.width < THUMB_SIZE else Image.BILINEAR)
                atomic_write_bytes(root / row["thumb"], png_bytes(thumb))
        rows.append(row)
    return len(cat.insert_rows(rows)), unreadable


def rebuild_catalog(root) -> dict:
    """Rebuild ``root``'s catalog from its images, run manifests and curation journal (under the
    project lock).  The old file, if any, is renamed ``catalog.sqlite.damaged-<time>``."""
    from prism_gui.engine.data.catalog import Catalog
    from prism_gui.engine.data.lock import project_lock

    root = Path(root)
    report = {"images": 0, "unreadable_images": 0, "runs": 0, "curation_changes": 0, "metrics_runs": 0,
              "moved_aside": None}
    with project_lock(root, "catalog rebuild"):
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for suffix in ("", "-wal", "-shm"):
            f = root / (DB + suffix)
            if f.exists():
                f.rename(root / f"{DB}{suffix}.damaged-{stamp}")
                if not suffix:
                    report["moved_aside"] = f"{DB}.damaged-{stamp}"
        with Catalog(root) as cat:
            pngs = sorted((root / IMAGES).rglob("*.png")) if (root / IMAGES).exists() else []
            report["images"], report["unreadable_images"] = adopt_images(cat, root, pngs)
            for manifest in sorted(runs_dir(root).glob(f"*/{MANIFEST}")) if runs_dir(root).exists() else []:
                try:
                    m = json.loads(manifest.read_text())
                except (OSError, ValueError):
                    continue
                run = manifest.parent.name
                cat.start_run(run, m.get("job", "generate"), m.get("spec", {}))
                cat.finish_run(run, "recovered")
                report["runs"] += 1
            report["metrics_runs"] = _restore_metrics(cat, root, {r["id"] for r in cat.runs()})
            report["curation_changes"] = _replay_journal(cat, root / JOURNAL)
    return report


def _restore_metrics(cat, root: Path, known: set[str]) -> int:
    """A distillation's curves from the ``metrics.jsonl`` in its output folder (``runs/<run>/``
    or the app's ``runs/<run>/student/``), recording the run from the manifest beside it if
    no run manifest did; returns how many runs got curves."""
    n = 0
    runs = runs_dir(root)
    for path in sorted(runs.glob(f"*/{METRICS}")) + sorted(runs.glob(f"*/{STUDENT}/{METRICS}")):
        run = path.relative_to(runs).parts[0]
        lines = read_jsonl(path)
        if run not in known:
            try:
                m = json.loads(JobFiles(path.parent).manifest.read_text())
            except (OSError, ValueError):
                m = {}
            cat.start_run(run, m.get("job", "distill"), m.get("spec", {}))
            cat.finish_run(run, "recovered")
            known.add(run)
        cat.replace_metrics(run, [r for r in lines if "step" in r])
        n += 1
    return n


def _replay_journal(cat, journal: Path) -> int:
    """Apply the journal's changes in order, without journaling them again; returns how many."""
    if not journal.exists():
        return 0
    entries = read_jsonl(journal)  # a line cut by a crash: the changes around it stand
    for e in entries:
        if "set" in e:
            cat.restore_statuses([(e["set"], r, i) for r, i in e["items"]])
        else:
            cat.restore_statuses([(s, r, i) for r, i, s in e.get("restore", [])])
    return len(entries)
