"""Oversample-and-select: which generated images a synthetic training set keeps.

PRISM generates more candidates than it trains on and keeps, per class, the ``per_class`` best.
"Best" is a strategy from :data:`STRATEGIES` (a registry, so menus fill themselves):

- ``lowest``: the lowest class-conditional energy (precision first; the energy ranking of the
  paper).  Keeps the images the teacher is surest of, which crowd into few modes: recall falls.
- ``kcenter``: low energy *and* coverage.  Among the lower-energy half of a class's candidates,
  greedy k-center in the teacher's penultimate features (start at the lowest energy, then add
  the candidate farthest from everything kept), so the kept set spreads over what the teacher
  separates instead of piling onto its most typical renders.
- ``quota``: per-prompt quotas: every prompt keeps its lowest-energy share, so no prompt's
  style is dropped wholesale.
- ``first``: no selection (the first ``per_class`` candidates in generation order).

Strategies work on plain arrays (one row per candidate: ``class_index``, ``energy_class``,
``prompt``, ``features``), so the demo, the Curate panel, the autopilot, `prism select` and the benchmarks call
the same code; :func:`select_in_catalog` applies one to a catalog run as one undoable action.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

KCENTER_LOW_ENERGY_SHARE = 0.5  # k-center picks among the lower-energy half of a class's candidates
CLUSTER_LOW_ENERGY_SHARE = 2 / 3  # clustering keeps the lower-energy two thirds of a class's candidates


def _first(rows: np.ndarray, cols: dict, n: int, rng) -> np.ndarray:
    return rows[:n]


def _lowest(rows: np.ndarray, cols: dict, n: int, rng) -> np.ndarray:
    e = cols["energy_class"][rows]
    return rows[np.argsort(e, kind="stable")[:n]]


def kcenter(features: np.ndarray, n: int, start: int = 0) -> np.ndarray:
    """Greedy k-center (farthest-point) order of ``n`` rows of ``features``, from ``start``."""
    f = np.asarray(features, dtype=np.float64)
    n = min(n, len(f))
    chosen = [start]
    d = np.linalg.norm(f - f[start], axis=1)
    for _ in range(n - 1):
        j = int(np.argmax(d))
        chosen.append(j)
        d = np.minimum(d, np.linalg.norm(f - f[j], axis=1))
    return np.array(chosen, dtype=int)


def _kcenter(rows: np.ndarray, cols: dict, n: int, rng, share: float = KCENTER_LOW_ENERGY_SHARE) -> np.ndarray:
    e = cols["energy_class"][rows]
    order = rows[np.argsort(e, kind="stable")]
    pool = order[: max(n, round(share * len(order)))]
    return pool[kcenter(cols["features"][pool], n, start=0)]


def _kcenter_all(rows, cols, n, rng):
    return _kcenter(rows, cols, n, rng, share=1.0)


def _cluster(rows: np.ndarray, cols: dict, n: int, rng, share: float = CLUSTER_LOW_ENERGY_SHARE) -> np.ndarray:
    """k-means into ``n`` clusters of the lower-energy ``share`` of the candidates (teacher
    features), keeping each cluster's lowest-energy member: one image per mode of what the
    teacher sees, weighted by where candidates are dense, so outliers are not chosen."""
    from sklearn.cluster import KMeans

    e = cols["energy_class"][rows]
    order = rows[np.argsort(e, kind="stable")]
    pool = order[: max(n, round(share * len(order)))]
    if len(pool) <= n:
        return pool
    labels = KMeans(n_clusters=n, n_init=1, random_state=int(rng.integers(2**31 - 1))).fit_predict(
        np.asarray(cols["features"][pool], dtype=np.float64))
    first = {}
    for r, lab in zip(pool, labels, strict=True):  # pool is in energy order: the first of a cluster is its lowest
        first.setdefault(int(lab), r)
    return np.array(sorted(first.values(), key=lambda r: cols["energy_class"][r]), dtype=int)


def _cluster_all(rows, cols, n, rng):
    return _cluster(rows, cols, n, rng, share=1.0)


def _quota(rows: np.ndarray, cols: dict, n: int, rng) -> np.ndarray:
    """Round robin over prompts, each giving its next-lowest-energy candidate."""
    e = cols["energy_class"][rows]
    prompts = cols["prompt"][rows]
    queues = {}
    by_energy = np.argsort(e, kind="stable")
    for r, p in zip(rows[by_energy], prompts[by_energy], strict=True):
        queues.setdefault(p, []).append(r)
    # prompts in order of their best candidate, so an uneven last round favours the better prompts
    lists = sorted(queues.values(), key=lambda q: cols["energy_class"][q[0]])
    out: list = []
    depth = 0
    while len(out) < n and any(depth < len(q) for q in lists):
        for q in lists:
            if depth < len(q) and len(out) < n:
                out.append(q[depth])
        depth += 1
    return np.array(out, dtype=int)


STRATEGIES: dict[str, Callable] = {"lowest": _lowest, "kcenter": _kcenter, "kcenter-all": _kcenter_all,
                                   "cluster": _cluster, "cluster-all": _cluster_all, "quota": _quota,
                                   "first": _first}
NEEDS_FEATURES = {"kcenter", "kcenter-all", "cluster", "cluster-all"}
DESCRIPTIONS = {"lowest": "lowest class energy", "kcenter": "low energy and coverage (k-center in teacher features)",
                "kcenter-all": "coverage only (k-center over all candidates)",
                "cluster": "low energy and coverage (one per k-means cluster of teacher features)",
                "cluster-all": "coverage only (one per k-means cluster of all candidates)",
                "quota": "lowest energy per prompt (every prompt keeps a share)", "first": "no selection"}


def select_ids(strategy: str, cols: dict, *, per_class: int, candidates_per_class: int | None = None,
               seed: int = 0) -> np.ndarray:
    """Positions (into ``cols``' arrays, which are in generation order) of the kept candidates:
    per class, ``per_class`` of the first ``candidates_per_class`` (default: all)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown selection strategy '{strategy}': choose one of {', '.join(STRATEGIES)}")
    if strategy in NEEDS_FEATURES and "features" not in cols:
        raise ValueError(f"selection '{strategy}' needs the candidates' teacher features")
    rng = np.random.default_rng(seed)
    classes = cols["class_index"]
    keep = []
    for c in np.unique(classes):
        rows = np.flatnonzero(classes == c)
        if candidates_per_class is not None:
            rows = rows[:candidates_per_class]
        keep.append(STRATEGIES[strategy](rows, cols, per_class, rng))
    return np.concatenate(keep) if keep else np.zeros(0, dtype=int)


def candidate_columns(cat, *, run=None, teacher=None, strategy: str = "lowest") -> dict:
    """The arrays a strategy reads for ``run``'s unreviewed and kept images, in id order; with
    a coverage strategy also the teacher's features, streamed from the image files."""
    rows = cat.query(columns="id, class_index, prompt, energy_class", run=run, statuses=["unreviewed", "keep"],
                     sort="id")
    cols = {"id": np.array([r["id"] for r in rows], dtype=np.int64),
            "class_index": np.array([r["class_index"] for r in rows], dtype=np.int64),
            "prompt": np.array([r["prompt"] or "" for r in rows], dtype=object),
            "energy_class": np.array([np.inf if r["energy_class"] is None else r["energy_class"] for r in rows],
                                     dtype=float)}
    if strategy in NEEDS_FEATURES and rows:
        if teacher is None:
            raise ValueError(f"selection '{strategy}' compares images in the teacher's features: load a teacher "
                             "first")
        from prism_gui.engine.analysis.prdc import teacher_features
        from prism_gui.engine.data.datasets import catalog_dataset

        ds = catalog_dataset(cat.root, teacher, run=run, statuses=["unreviewed", "keep"], sort="id")
        cols["features"] = teacher_features(teacher, ds)
        if len(cols["features"]) != len(rows):
            raise RuntimeError("the catalog changed while its features were computed: select again")
    return cols


def select_in_catalog(cat, per_class: int, *, strategy: str = "lowest", run=None, teacher=None,
                      seed: int = 0) -> int | None:
    """Keep ``per_class`` images per class of ``run``'s unreviewed and kept images by
    ``strategy`` and reject the rest, in one undoable action (its id, or None if nothing changed).
    The coverage strategies need the ``teacher`` (its penultimate features)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown selection strategy '{strategy}': choose one of {', '.join(STRATEGIES)}")
    if per_class < 1:
        raise ValueError(f"images to keep per class must be at least 1, not {per_class}")
    cols = candidate_columns(cat, run=run, teacher=teacher, strategy=strategy)
    if not len(cols["id"]):
        return None
    keep = set(cols["id"][select_ids(strategy, cols, per_class=per_class, seed=seed)].tolist())
    reject = [int(i) for i in cols["id"] if int(i) not in keep]
    return cat.set_status(reject, "reject", label=f"keep {per_class}/class: {DESCRIPTIONS[strategy]}")
