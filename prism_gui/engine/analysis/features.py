"""The teacher's features of a project's images, computed once and kept.

The map, the near-duplicate search and the holes view all work in the teacher's penultimate
features (:meth:`Teacher.features`).  Computing them for 100,000 images is minutes of GPU time,
so they are cached in the project, per teacher, under ``analysis/features-<teacher>.npz``:

- keyed by ``(run, item)``, which survive a catalog rebuild (image ids do not);
- stored as float16 (half the disk; distances in float32 after loading), or float32 for a
  teacher whose features exceed float16's range;
- *incremental*: a later call computes only the images added since, and drops rows whose
  image is gone;
- keyed by a fingerprint of the teacher's weights and input settings, so another teacher, or the
  same name with other weights, never reads them.

A real reference set (the project's evaluation set) is cached the same way, keyed by the set's
name or folder and its file listing.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from prism_gui.engine.jobs import CancelToken, Event

ANALYSIS_DIR = "analysis"
SAVE_EVERY_S = 60.0  # a long feature job saves what it has at least this often (a cancel keeps it)


def teacher_fingerprint(teacher) -> str:
    """A short hash of the teacher's weights, input settings and class names."""
    import torch

    h = hashlib.blake2b(digest_size=8)
    h.update(json.dumps([teacher.source, teacher.architecture, list(teacher.input_size), list(teacher.mean),
                         list(teacher.std), list(teacher.class_names), getattr(teacher, "crop_pct", 1.0),
                         getattr(teacher, "interpolation", "")]).encode())
    with torch.no_grad():
        for name, t in sorted(teacher.model.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                     if t.numel() else b"")
    return h.hexdigest()


@dataclass
class FeatureTable:
    """Features of catalog images: ``ids`` (current catalog ids), ``labels`` (class index),
    ``features`` (N, D) float32, plus ``runs`` and ``items`` (their stable keys)."""

    ids: np.ndarray
    labels: np.ndarray
    features: np.ndarray
    runs: np.ndarray
    items: np.ndarray
    teacher: str = ""
    computed: int = 0  # how many were computed by this call (the rest came from the cache)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, mask) -> FeatureTable:
        m = np.asarray(mask)
        return replace(self, ids=self.ids[m], labels=self.labels[m], features=self.features[m], runs=self.runs[m],
                       items=self.items[m])

    def only(self, ids) -> FeatureTable:
        """The rows of these catalog ids (a set, or any iterable of ids)."""
        return self.subset(np.isin(self.ids, np.fromiter(ids, np.int64)))


def _atomic_save_npz(path: Path, **arrays) -> None:
    from prism_gui.engine.data.files import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def _load_npz(path: Path) -> dict | None:
    """A cache file's arrays, or None when it is missing or unreadable (a cache is rebuilt, never
    trusted when damaged)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError, EOFError):
        return None


def _storable(x: np.ndarray) -> np.ndarray:
    """Features as stored: float16 when they fit its range, else float32."""
    return x.astype(np.float16) if x.size == 0 or float(np.abs(x).max()) < 6e4 else x.astype(np.float32)


def feature_cache_path(project: str | Path, fingerprint: str) -> Path:
    return Path(project) / ANALYSIS_DIR / f"features-{fingerprint}.npz"


def features_job(project: str | Path, teacher, *, runs: list[str] | None = None, batch_size: int = 256,
                     fingerprint: str | None = None, cancel: CancelToken | None = None
                     ) -> Iterator[Event]:
    """Features of every image of ``runs`` (default: all) in the catalog, whatever its status;
    only images missing from the cache are computed.  The last event carries
    ``data['table']`` (a :class:`FeatureTable`, in catalog id order)."""
    import torch

    from prism_gui.engine.analysis.prdc import teacher_features
    from prism_gui.engine.data.datasets import CatalogImages

    cancel = cancel or CancelToken()
    root = Path(project)
    fp = fingerprint or teacher_fingerprint(teacher)
    all_rows, rows = _catalog_rows(root, runs)
    ids = np.array([r["id"] for r in rows], np.int64)
    labels = np.array([r["class_index"] for r in rows], np.int64)
    run_of = np.array([r["run"] for r in rows])
    items = np.array([r["item"] for r in rows], np.int64)
    keys = [f"{r['run']}\x00{r['item']}" for r in rows]
    path = feature_cache_path(root, fp)
    cache = _load_npz(path)
    cached: dict[str, int] = {}
    if cache is not None and {"keys", "features"} <= set(cache):
        cached = {k: j for j, k in enumerate(cache["keys"].tolist())}
    have = np.array([k in cached for k in keys], bool)
    todo = np.flatnonzero(~have)
    yield Event("features", 0, max(1, len(todo)), f"{int(have.sum()):,} cached, {len(todo):,} to compute")
    existing = {f"{r['run']}\x00{r['item']}" for r in all_rows}
    mine = set(keys)
    others = [k for k in cached if k in existing and k not in mine]  # other runs' images stay cached
    feats = None
    if have.any():
        feats = np.zeros((len(rows), int(cache["features"].shape[1])), np.float32)
        feats[have] = cache["features"][[cached[keys[j]] for j in np.flatnonzero(have)]].astype(np.float32)

    def save(done: np.ndarray) -> None:
        """The cache: every image that still exists with features known so far (``done`` of ``rows``)."""
        out_k = [keys[j] for j in np.flatnonzero(done)] + others
        out_f = [feats[done]] + ([cache["features"][[cached[k] for k in others]].astype(np.float32)] if others else [])
        _atomic_save_npz(path, keys=np.array(out_k), features=_storable(np.concatenate(out_f)), teacher=np.array(fp))

    done = have.copy()
    step = max(batch_size * 8, 2048)
    last_save = time.time()
    for a in range(0, len(todo), step):
        cancel.raise_if_cancelled()
        chunk = todo[a : a + step]
        ds = CatalogImages(root, [rows[j] for j in chunk], size=tuple(teacher.input_size[1:]),
                           channels=teacher.input_size[0], cache_mb=0)
        try:
            with torch.no_grad():
                part = teacher_features(teacher, ds, batch_size=batch_size, workers=0).astype(np.float32)
        except FileNotFoundError as e:
            if done.any() and not np.array_equal(done, have):
                save(done)
            raise FileNotFoundError(e.errno, f"an image of the catalog is missing ({e.filename}): run `prism "
                                    f"repair-catalog {root}` (or open the project in the app), then run this again; "
                                    "the features computed so far are kept") from e
        if feats is None:
            feats = np.zeros((len(rows), part.shape[1]), np.float32)
        feats[chunk] = _storable(part).astype(np.float32)  # as a later call reads them
        done[chunk] = True
        if time.time() - last_save > SAVE_EVERY_S and a + step < len(todo):  # minutes of GPU work: keep them
            save(done)
            last_save = time.time()
        yield Event("features", min(a + step, len(todo)), len(todo),
                    f"teacher features: {min(a + step, len(todo)):,} of {len(todo):,} images")
    stale = [k for k in cached if k not in existing]
    if len(todo) or stale:  # the cache keeps every image that still exists, plus the new ones
        save(done)
    table = FeatureTable(ids, labels, feats, run_of, items, fp, computed=len(todo))
    yield Event("features", 1, 1, f"features of {len(ids):,} images ({len(todo):,} computed)", {"table": table})


def _catalog_rows(root: Path, runs: list[str] | None) -> tuple[list, list]:
    """(every image's row, the rows of ``runs``), or an error naming runs without images."""
    from prism_gui.engine.data.catalog import Catalog

    with Catalog(root, create=False) as cat:
        all_rows = cat.query(columns="id, run, item, class_index, path")
    present = sorted({r["run"] for r in all_rows})
    if runs:
        unknown = sorted(set(runs) - set(present))
        if unknown:
            raise ValueError(f"'{root}' has no images in run(s) {unknown}; its runs with images are {present}")
    rows = [r for r in all_rows if not runs or r["run"] in runs]
    if not rows:
        raise ValueError(f"'{root}' has no images yet: generate some first")
    return all_rows, rows


def reference_key(reference, mapping=None) -> str:
    """The cache key of a real reference set: its name, or its folder with its file listing."""
    h = hashlib.blake2b(digest_size=8)
    h.update(json.dumps([str(reference), str(mapping or "")]).encode())
    if mapping and Path(str(mapping)).is_file():  # an edited mapping file relabels the set
        h.update(Path(str(mapping)).read_bytes())
    p = Path(str(reference))
    if p.is_dir():
        for f in sorted(p.rglob("*")):
            if f.is_file():
                st = f.stat()
                h.update(f"{f.relative_to(p).as_posix()}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()


def reference_features(project: str | Path, teacher, reference, mapping=None, *, fingerprint: str | None = None,
                       batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels) of a real reference set (a built-in set's name or a labelled folder),
    cached in the project per teacher and set."""
    from prism_gui.engine.analysis.prdc import teacher_features
    from prism_gui.engine.data.datasets import image_set

    fp = fingerprint or teacher_fingerprint(teacher)
    path = Path(project) / ANALYSIS_DIR / f"reference-{fp}-{reference_key(reference, mapping)}.npz"
    cache = _load_npz(path)
    if cache is not None and {"features", "labels"} <= set(cache):
        return cache["features"].astype(np.float32), cache["labels"].astype(np.int64)
    ds = image_set(reference, teacher, mapping)
    if ds is None:
        raise ValueError("no reference set: choose the project's evaluation set (a labelled image folder, or "
                         "'digits-test' in the Digits world), or use the teacher's class prototypes")
    feats = teacher_features(teacher, ds, batch_size=batch_size).astype(np.float32)
    labels = np.asarray(ds.labels, np.int64)
    _atomic_save_npz(path, features=_storable(feats), labels=labels, reference=np.array(str(reference)))
    return feats, labels


def class_prototypes(teacher) -> tuple[np.ndarray, np.ndarray]:
    """(weights (C, D), bias (C,)) of the teacher's classifier (its last linear layer): one
    prototype direction per class in the feature space, the reference of the holes view when the
    project has no real set."""
    import torch

    model = teacher.model
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if not isinstance(head, torch.nn.Linear):
        head = None
        for m in model.modules():
            if isinstance(m, torch.nn.Linear) and m.out_features == teacher.num_classes:
                head = m
    if head is None or head.out_features != teacher.num_classes:
        raise ValueError(f"teacher '{teacher.source}' has no linear classifier with {teacher.num_classes} outputs "
                         "to take class prototypes from: choose a real reference set instead")
    w = head.weight.detach().float().cpu().numpy()
    b = head.bias.detach().float().cpu().numpy() if head.bias is not None else np.zeros(len(w), np.float32)
    return w, b
