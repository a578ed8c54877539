"""Redundancy: near-duplicates and over-dense regions of a synthetic set (``prism duplicates``).

Two images are *near-duplicates* when their teacher features are almost parallel: cosine
distance ``1 - cos`` at most a threshold.  The teacher sees them as the same example, so a
student learns nothing new from the second.  How close "almost" is depends on the teacher (a
small CNN's features sit closer together than a ResNet-50's), so by default the threshold is
relative: :data:`DEFAULT_RATIO` of the set's typical distance between nearest neighbours (the
median over classes of each class's median), one threshold for every class, so a collapsed class
(all copies of one picture) shows its copies; an absolute ``threshold`` overrides it.  Pairs are
searched within each class (an image and its copy carry the same label) and grouped greedily: the
lowest-energy image not yet in a group
keeps every other image within the threshold of it, so a group never chains through a series of
merely similar images.  Each group offers "keep the lowest-energy one, reject the rest" as one
undoable curation step.

*Density* scores how crowded each image's neighbourhood is: the median, over its class, of the
distance to the ``k``-th nearest neighbour, divided by the image's own.  1 is typical for the
class; 3 means its neighbours are three times closer than usual (an over-dense region, where
the prior keeps drawing the same picture).

Nearest neighbours come from exact search: ``faiss`` (``IndexFlat``) when it is installed and a
class has more than :data:`FAISS_MIN` images, else blocked matrix products in numpy.  Both are
exact, so they agree up to float rounding.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from prism_gui.engine.jobs import CancelToken, Event

DEFAULT_RATIO = 0.1  # of the set's typical nearest-neighbour distance; docs/CURATION.md says why
SEARCH_K = 32  # neighbours searched per image for near-duplicate pairs
MIN_FOR_MEDIAN = 5  # classes with fewer images do not enter the set's typical neighbour distance
FAISS_MIN = 4096
_BLOCK = 2048


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except Exception:
        return False
    return True


def _normalize(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def knn(x: np.ndarray, k: int, *, base: np.ndarray | None = None, metric: str = "cosine",
        use_faiss: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(distances, indices), each (N, k), of the ``k`` nearest rows of ``base`` (default: ``x``
    itself, excluding each row) to each row of ``x``.  ``metric``: ``cosine`` (1 - cos) or
    ``euclidean``."""
    self_search = base is None
    base = x if self_search else base
    n, m = len(x), len(base)
    k_eff = min(k, m - 1 if self_search else m)
    if k_eff < 1 or n == 0:
        return np.zeros((n, 0), np.float32), np.zeros((n, 0), np.int64)
    if metric == "cosine":
        q, b = _normalize(x), _normalize(base)
    elif metric == "euclidean":
        q, b = np.ascontiguousarray(x, np.float32), np.ascontiguousarray(base, np.float32)
    else:
        raise ValueError(f"unknown metric {metric!r}: 'cosine' or 'euclidean'")
    extra = 1 if self_search else 0
    if use_faiss is None:
        use_faiss = m > FAISS_MIN and faiss_available()
    if use_faiss:
        import faiss

        index = faiss.IndexFlatIP(b.shape[1]) if metric == "cosine" else faiss.IndexFlatL2(b.shape[1])
        index.add(b)
        s, idx = index.search(q, k_eff + extra)
        d = 1.0 - s if metric == "cosine" else np.sqrt(np.maximum(s, 0.0))
    else:
        d = np.empty((n, k_eff + extra), np.float32)
        idx = np.empty((n, k_eff + extra), np.int64)
        b_sq = (b * b).sum(1) if metric == "euclidean" else None
        block = max(1, min(_BLOCK, 2**25 // max(1, m)))  # about 128 MiB of distances per block, whatever m is
        for a in range(0, n, block):
            qa = q[a : a + block]
            sim = qa @ b.T
            if metric == "cosine":
                dist = 1.0 - sim
            else:
                dist = np.sqrt(np.maximum((qa * qa).sum(1)[:, None] + b_sq[None, :] - 2 * sim, 0.0))
            part = np.argpartition(dist, k_eff + extra - 1, axis=1)[:, : k_eff + extra]
            pd = np.take_along_axis(dist, part, 1)
            order = np.argsort(pd, axis=1, kind="stable")
            idx[a : a + block] = np.take_along_axis(part, order, 1)
            d[a : a + block] = np.take_along_axis(pd, order, 1)
    if metric == "euclidean":  # exact distances of the found neighbours (the expansion |a|^2 + |b|^2 - 2ab
        # cancels badly for near-identical points: a copy would sit 2e-3 away instead of 0)
        d = np.stack([np.linalg.norm(q - b[idx[:, j]], axis=1) for j in range(idx.shape[1])], axis=1)
        order = np.argsort(d, axis=1, kind="stable")
        d, idx = np.take_along_axis(d, order, 1), np.take_along_axis(idx, order, 1)
    if self_search:  # drop each row itself (an exact copy may sort before it: drop by index, not position)
        rows = np.arange(n)[:, None]
        mine = idx == rows
        drop = np.where(mine.any(1), mine.argmax(1), k_eff + extra - 1)
        keep = np.ones_like(mine)
        keep[np.arange(n), drop] = False
        idx = idx[keep].reshape(n, k_eff)
        d = d[keep].reshape(n, k_eff)
    return np.maximum(d, 0.0).astype(np.float32), idx.astype(np.int64)


def _greedy_groups(n: int, pairs: np.ndarray, energy: np.ndarray) -> list[tuple[int, list[int]]]:
    """(keeper, members) groups: the lowest-energy image not yet taken keeps every untaken image
    within the threshold of *it* (no chaining: a member is close to its keeper, not only to
    another member)."""
    if len(pairs) == 0:
        return []
    nbrs: dict[int, set[int]] = {}
    for a, b in pairs:
        nbrs.setdefault(int(a), set()).add(int(b))
        nbrs.setdefault(int(b), set()).add(int(a))
    taken = np.zeros(n, bool)
    out = []
    for i in sorted(nbrs, key=lambda j: (energy[j], j)):
        if taken[i]:
            continue
        members = sorted(j for j in nbrs[i] if not taken[j])
        if members:
            taken[i] = True
            taken[members] = True
            out.append((i, members))
    return out


def find_duplicates(features: np.ndarray, labels: np.ndarray, ids: np.ndarray, energy: np.ndarray, *,
                    threshold: float | None = None, ratio: float = DEFAULT_RATIO, k: int = 10,
                    cancel: CancelToken | None = None) -> dict:
    """Near-duplicate groups and a density score per image (see the module doc).

    ``threshold`` is a cosine distance; None: ``ratio`` times the median over classes of each
    class's median distance to its nearest neighbour.  Returns ``groups`` (each: ``class``, ``ids``,
    ``keep`` = the lowest-energy id, ``reject``, ``max_distance``), ``density`` (per image, aligned
    with ``ids``),
    ``nn_distance`` (cosine distance to the nearest same-class image) and the thresholds used."""
    if threshold is not None and (not np.isfinite(threshold) or threshold < 0):
        raise ValueError(f"the near-duplicate threshold is a cosine distance >= 0, not {threshold}")
    if not np.isfinite(ratio) or ratio <= 0:
        raise ValueError(f"the near-duplicate ratio must be > 0, not {ratio}")
    cancel = cancel or CancelToken()
    n = len(ids)
    energy = np.where(np.isfinite(energy), energy, np.inf)
    density = np.ones(n, np.float32)
    nn = np.full(n, np.nan, np.float32)
    groups, used = [], {}
    searched = {}
    for c in np.unique(labels):
        cancel.raise_if_cancelled()
        rows = np.flatnonzero(labels == c)
        if len(rows) < 2:
            continue
        d, idx = knn(features[rows], max(k, SEARCH_K))
        nn[rows] = d[:, 0]
        kth = d[:, min(k, d.shape[1]) - 1]
        density[rows] = np.median(kth) / np.maximum(kth, 1e-9)
        searched[int(c)] = (rows, d, idx)
    # the relative threshold is set-wide: ``ratio`` of the median over classes of each class's median
    # neighbour distance.  A class's own median would hide a collapsed class (all near-copies of one
    # picture: its own median is tiny, and so would be its threshold)
    class_median = [float(np.median(d[:, 0])) for rows, d, _ in searched.values() if len(rows) >= MIN_FOR_MEDIAN]
    if not class_median:
        class_median = [float(np.median(d[:, 0])) for _, d, _ in searched.values()]
    overall = float(np.median(class_median)) if class_median else 0.0
    for c, (rows, d, idx) in searched.items():
        thr = float(threshold) if threshold is not None else ratio * overall
        used[c] = thr
        close = d <= thr
        src = np.repeat(np.arange(len(rows)), d.shape[1])[close.ravel()]
        pairs = np.stack([src, idx.ravel()[close.ravel()]], axis=1)
        for keeper, members in _greedy_groups(len(rows), pairs, energy[rows]):
            ks, ms = rows[keeper], rows[members]
            dist = 1.0 - _normalize(features[ms]) @ _normalize(features[[ks]]).T
            groups.append({"class": c, "ids": [int(ids[ks])] + [int(i) for i in ids[ms]], "keep": int(ids[ks]),
                           "reject": [int(i) for i in ids[ms]], "max_distance": float(max(dist.max(), 0.0))})
    groups.sort(key=lambda g: (-len(g["ids"]), g["class"], g["ids"][0]))
    return {"groups": groups, "density": density, "nn_distance": nn, "threshold": threshold, "ratio": ratio,
            "class_thresholds": used, "images": n, "duplicates": sum(len(g["reject"]) for g in groups)}


def duplicates_job(project, teacher, *, threshold: float | None = None, ratio: float = DEFAULT_RATIO,
                   runs: list[str] | None = None, statuses=("unreviewed", "keep"), k: int = 10, reject: bool = False,
                   cancel: CancelToken | None = None) -> Iterator[Event]:
    """Near-duplicates among a project's images of ``statuses``; with ``reject``, reject all but
    the lowest-energy image of each group in one undoable step.  The last event carries
    ``data['result']`` (see :func:`find_duplicates`, plus ``action`` when it rejected)."""
    from prism_gui.engine.analysis.features import features_job
    from prism_gui.engine.data.catalog import Catalog

    cancel = cancel or CancelToken()
    table = None
    for ev in features_job(project, teacher, runs=runs, cancel=cancel):
        table = ev.data.get("table", table)
        yield Event("duplicates", ev.step, ev.total, ev.message)
    with Catalog(project, create=False) as cat:
        rows = cat.query(columns="id, status, energy")
    en = {r["id"]: r["energy"] for r in rows}
    t = table.only(r["id"] for r in rows if r["status"] in statuses)
    energy = np.array([np.nan if en.get(int(i)) is None else en[int(i)] for i in t.ids], np.float64)
    yield Event("duplicates", 0, 1, f"searching {len(t):,} images for near-duplicates")
    res = find_duplicates(t.features, t.labels, t.ids, energy, threshold=threshold, ratio=ratio, k=k,
                          cancel=cancel)
    res["ids"] = t.ids
    if reject and res["duplicates"]:
        with Catalog(project, create=False) as cat:
            res["action"] = reject_duplicates(cat, res["groups"])
    yield Event("duplicates", 1, 1, f"{len(res['groups']):,} groups, {res['duplicates']:,} near-duplicates"
                + (" rejected" if res.get("action") else ""), {"result": res})


def reject_duplicates(cat, groups: list[dict], label: str | None = None) -> int | None:
    """Reject every image of ``groups`` but each group's ``keep``, as one undoable action."""
    ids = [i for g in groups for i in g["reject"]]
    return cat.set_status(ids, "reject", label=label or f"near-duplicates: {len(ids)} in {len(groups)} groups")
