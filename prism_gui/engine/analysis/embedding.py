"""A 2-D map of a project in the teacher's feature space (the Map view, ``prism map``).

The synthetic images and, when the project has one, its real reference set are embedded
together, so the map shows where the synthetic set sits against what the teacher knows:

- ``umap`` (``umap-learn``; features first reduced to 50 dimensions by PCA, as its docs advise
  for wide features), seeded, so the same project gives the same map;
- ``pca``: the fast fallback (seconds at 100,000 points), also used when ``umap-learn`` is
  missing;
- ``auto``: UMAP when it is installed, else PCA.

A map is cached in the project per teacher, method and reference set
(``analysis/map-<teacher>-<method>-<reference>.npz``, keyed by ``(run, item)``).  When images are
added, the cached map is *updated*, not recomputed: PCA projects the new points exactly; for UMAP a
new point is placed at the distance-weighted mean of its nearest already-mapped neighbours in
feature space (UMAP's own initialisation of ``transform``; the fitted reducer itself is not
pickled into the project).  When more than :data:`REFIT_FRACTION` of the points were never part
of a fit (over all updates since the last one), or images were removed, the map is fitted again.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from prism_gui.engine.analysis.features import (
    ANALYSIS_DIR,
    _atomic_save_npz,
    _load_npz,
    features_job,
    reference_features,
    reference_key,
    teacher_fingerprint,
)
from prism_gui.engine.jobs import CancelToken, Event

METHODS = ("auto", "umap", "pca")
REFIT_FRACTION = 0.2
PCA_DIMS = 50


def umap_available() -> bool:
    try:
        import umap  # noqa: F401
    except Exception:  # numba missing or broken for this numpy: PCA still works
        return False
    return True


def resolve_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown map method {method!r}: choose one of {', '.join(METHODS)}")
    if method == "auto":
        return "umap" if umap_available() else "pca"
    if method == "umap" and not umap_available():
        raise ValueError("the UMAP map needs umap-learn: `pip install umap-learn` (or choose method 'pca')")
    return method


@dataclasses.dataclass
class ProjectMap:
    """Points of the map: synthetic images (``ids`` >= 0) then reference points (``ids`` = -1,
    ``ref_index`` their row in the reference set)."""

    xy: np.ndarray  # (N, 2) float32
    ids: np.ndarray  # catalog id, or -1 for a reference point
    labels: np.ndarray  # class index
    real: np.ndarray  # bool: a point of the real reference set
    runs: np.ndarray  # the run of a synthetic point, "" for a reference point
    method: str
    teacher: str
    reference: str = ""
    updated: int = 0  # points placed into a cached map by this call
    refit: bool = True

    def __len__(self) -> int:
        return len(self.ids)

    def to_json(self) -> dict:
        return {"method": self.method, "teacher": self.teacher, "reference": self.reference,
                "points": [{"id": int(i), "x": round(float(x), 4), "y": round(float(y), 4), "class": int(c),
                            "real": bool(r), "run": str(run)}
                           for i, (x, y), c, r, run in zip(self.ids, self.xy, self.labels, self.real, self.runs,
                                                           strict=True)]}


def _pca_basis(x: np.ndarray, dims: int, seed: int):
    from sklearn.decomposition import PCA

    dims = max(1, min(dims, x.shape[1], len(x)))
    p = PCA(n_components=dims, random_state=seed, svd_solver="randomized" if len(x) > 5000 and dims < 100 else "auto")
    p.fit(x)
    return p.mean_.astype(np.float32), p.components_.astype(np.float32)


def _project(x, mean, comps):
    return (x - mean) @ comps.T


def fit_embedding(x: np.ndarray, method: str, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.25
                  ) -> tuple[np.ndarray, dict]:
    """(2-D coordinates, the state an update needs) of features ``x``."""
    if method == "pca":
        mean, comps = _pca_basis(x, 2, seed)
        xy = _project(x, mean, comps)
        if xy.shape[1] < 2:
            xy = np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
        return xy.astype(np.float32), {"mean": mean, "components": comps}
    import umap

    mean, comps = _pca_basis(x, PCA_DIMS, seed) if x.shape[1] > PCA_DIMS else \
        (np.zeros(x.shape[1], np.float32), np.eye(x.shape[1], dtype=np.float32))
    z = _project(x, mean, comps)
    with warnings.catch_warnings():  # "n_jobs overridden by random_state": seeded maps are single-threaded
        warnings.simplefilter("ignore")
        red = umap.UMAP(n_neighbors=min(n_neighbors, len(x) - 1), min_dist=min_dist, random_state=seed,
                        n_components=2, init="spectral" if len(x) > n_neighbors + 2 else "random")
        xy = red.fit_transform(z)
    return xy.astype(np.float32), {"mean": mean, "components": comps}


def place_new(x_old: np.ndarray, xy_old: np.ndarray, x_new: np.ndarray, k: int = 10) -> np.ndarray:
    """New points at the inverse-distance-weighted mean of their ``k`` nearest mapped points."""
    from prism_gui.engine.analysis.duplicates import knn

    k = max(1, min(k, len(x_old)))
    d, idx = knn(x_new, k, base=x_old, metric="euclidean")
    w = 1.0 / np.maximum(d, 1e-6)
    w /= w.sum(axis=1, keepdims=True)
    return (xy_old[idx] * w[..., None]).sum(axis=1).astype(np.float32)


def map_cache_path(project, fp: str, method: str, ref: str) -> Path:
    return Path(project) / ANALYSIS_DIR / f"map-{fp}-{method}-{ref}.npz"


def map_job(project: str | Path, teacher, *, method: str = "auto", reference=None, mapping=None,
            runs: list[str] | None = None, seed: int = 0, refit: bool = False,
            cancel: CancelToken | None = None) -> Iterator[Event]:
    """Embed a project's images (and its real ``reference`` set, if given) in 2-D.  The last event
    carries ``data['map']`` (a :class:`ProjectMap`) and ``data['features']`` (the synthetic
    images' :class:`FeatureTable`)."""
    cancel = cancel or CancelToken()
    method = resolve_method(method)
    fp = teacher_fingerprint(teacher)
    table = None
    for ev in features_job(project, teacher, runs=runs, fingerprint=fp, cancel=cancel):
        table = ev.data.get("table", table)
        yield Event("map", ev.step, ev.total, ev.message)
    cancel.raise_if_cancelled()
    ref_key = "none"
    rf, rl = np.zeros((0, table.features.shape[1]), np.float32), np.zeros(0, np.int64)
    if reference not in (None, "", "none"):
        yield Event("map", 0, 1, "features of the reference set")
        rf, rl = reference_features(project, teacher, reference, mapping, fingerprint=fp)
        ref_key = reference_key(reference, mapping)
    x = np.concatenate([table.features, rf])
    keys = [f"{r}\x00{i}" for r, i in zip(table.runs, table.items, strict=True)] + [f"\x01ref\x00{j}"
                                                                                     for j in range(len(rf))]
    if len(x) < 3:
        raise ValueError(f"a map needs at least 3 points, the project has {len(x)}: generate more images")
    import hashlib

    scope = "all" if not runs else hashlib.blake2b("\x00".join(sorted(runs)).encode(), digest_size=6).hexdigest()
    path = map_cache_path(project, fp, f"{method}-{seed}-{scope}", ref_key)
    cache = None if refit else _load_npz(path)
    xy = None
    updated = 0
    did_fit = True
    if cache is not None and {"keys", "xy", "mean", "components", "fitted"} <= set(cache):
        pos = {k: j for j, k in enumerate(cache["keys"].tolist())}
        have = np.array([k in pos for k in keys], bool)
        removed = len(pos) - int(have.sum())
        placed = len(keys) - int(cache["fitted"])  # points the fit never saw, this call's and earlier calls'
        if have.any() and removed == 0 and placed <= REFIT_FRACTION * len(keys):
            xy = np.zeros((len(keys), 2), np.float32)
            xy[have] = cache["xy"][[pos[keys[j]] for j in np.flatnonzero(have)]]
            new = np.flatnonzero(~have)
            if len(new):
                yield Event("map", 0, 1, f"placing {len(new):,} new points on the cached map")
                if method == "pca":
                    xy[new] = _project(x[new], cache["mean"], cache["components"])[:, :2]
                else:
                    xy[new] = place_new(x[have], xy[have], x[new])
            updated, did_fit = len(new), False
            state = {"mean": cache["mean"], "components": cache["components"], "fitted": cache["fitted"]}
    if xy is None:
        yield Event("map", 0, 1, f"fitting the {method.upper()} map of {len(x):,} points")
        xy, state = fit_embedding(x, method, seed)
        state["fitted"] = np.array(len(x))
    labels = np.concatenate([table.labels, rl])
    if did_fit or updated:
        _atomic_save_npz(path, keys=np.array(keys), xy=xy, labels=labels, **state)
    pm = ProjectMap(xy=xy, ids=np.concatenate([table.ids, -np.ones(len(rf), np.int64)]),
                    labels=labels,
                    real=np.concatenate([np.zeros(len(table), bool), np.ones(len(rf), bool)]),
                    runs=np.concatenate([table.runs.astype(str), np.array([""] * len(rf), dtype=str)]),
                    method=method, teacher=fp, reference=str(reference or ""), updated=updated, refit=did_fit)
    what = "fitted" if did_fit else (f"updated ({updated:,} new points)" if updated else "from the cache")
    yield Event("map", 1, 1, f"{method.upper()} map of {len(table):,} images"
                + (f" and {len(rf):,} real ones" if len(rf) else "") + f": {what}",
                {"map": pm, "features": table, "reference_features": rf})


def latest_map(project) -> dict | None:
    """The most recently written map of a project (``keys``, ``xy``, ``labels``), or None."""
    files = sorted((Path(project) / ANALYSIS_DIR).glob("map-*.npz"), key=lambda f: f.stat().st_mtime)
    for f in reversed(files):
        z = _load_npz(f)
        if z is not None and {"keys", "xy", "labels"} <= set(z):
            return {**z, "file": f.name, "method": "umap" if "-umap-" in f.name else "pca"}
    return None


def separation(xy: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Share of points whose ``k`` nearest map neighbours mostly share their class (how well the
    map separates the classes; chance is about 1 / classes)."""
    from prism_gui.engine.analysis.duplicates import knn

    _, idx = knn(xy.astype(np.float32), min(k, len(xy) - 1), metric="euclidean")
    same = (labels[idx] == labels[:, None]).mean(axis=1)
    return float((same > 0.5).mean())


__all__ = ["METHODS", "ProjectMap", "fit_embedding", "map_job", "place_new", "resolve_method",
           "separation", "umap_available"]
