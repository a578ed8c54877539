"""Holes: where the synthetic set misses what the teacher knows (``prism holes``), and how to fill them.

**With a real reference set** (the project's evaluation set), per class, a real image is
*covered* when some synthetic image of its class lies inside its ``k``-NN ball among the real
images of the class (the coverage of Naeem et al., 2020, per class, as in ``prism metrics``).
The uncovered real images of a class are grouped into at most ``regions`` regions (k-means in
feature space); each region lists the synthetic images of the class nearest to its centre and
the prompts that made them, ranked by how often they occur: the proposal of "generate more
here".  Proposals are drawn from every image the teacher agrees is of the class, *whatever its
curation status*: an image rejected as a near-duplicate, or one of a run left out, still shows
which prompt reaches the region, while coverage counts only the curated (not rejected) images.

**Without one**, the reference is the teacher's class prototypes (the rows and biases of its
classifier): per class, the share of its synthetic images whose best-scoring prototype is their
own class (the teacher's agreement, read from its features).  A class where fewer than half are
(or with no images) is a hole at the class level; its proposal is the prompts of the class's
images that score highest on its prototype.

``project.app_jobs.fill_holes_job`` turns chosen regions into a generation run (``fill-N``) with
the project's last generation settings, only for those classes, with the proposed prompts.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from prism_gui.engine.jobs import CancelToken, Event

DEFAULT_K = 5
DEFAULT_REGIONS = 3
NEAREST = 8  # synthetic images listed per region
PROPOSALS = 4  # prompts proposed per region


def _euclid_nearest(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from prism_gui.engine.analysis.duplicates import knn

    d, i = knn(a, 1, base=b, metric="euclidean")
    return d[:, 0], i[:, 0]


def coverage_by_class(real: np.ndarray, real_labels: np.ndarray, syn: np.ndarray, syn_labels: np.ndarray,
                      k: int = DEFAULT_K) -> tuple[np.ndarray, dict[int, dict]]:
    """(covered mask over the real points, per class: real, synthetic, covered, coverage)."""
    from prism_gui.engine.analysis.duplicates import knn

    covered = np.zeros(len(real), bool)
    per: dict[int, dict] = {}
    radii: dict[int, np.ndarray] = {}
    for c in np.unique(real_labels):
        r = np.flatnonzero(real_labels == c)
        if len(r) > 1:
            radii[int(c)] = knn(real[r], min(k, len(r) - 1), metric="euclidean")[0][:, -1]
    # a class with one real image has no neighbours of its own: it takes the typical radius
    typical = float(np.median(np.concatenate(list(radii.values())))) if radii else 0.0
    for c in np.unique(real_labels):
        r = np.flatnonzero(real_labels == c)
        s = np.flatnonzero(syn_labels == c)
        entry = {"real": len(r), "synthetic": len(s)}
        if len(s):
            radius = radii.get(int(c), np.full(len(r), typical, np.float32))
            d, _ = _euclid_nearest(real[r], syn[s])
            covered[r] = d <= radius
        entry["covered"] = int(covered[r].sum())
        entry["coverage"] = entry["covered"] / max(1, len(r))
        per[int(c)] = entry
    return covered, per


def _proposals(prompts: list[str]) -> list[dict]:
    return [{"prompt": p, "count": n} for p, n in Counter(prompts).most_common(PROPOSALS)]


@dataclasses.dataclass
class Pool:
    """The images proposals are taken from: every image of the project whose class the teacher
    agrees with, whatever its curation status (an image rejected as a near-duplicate still shows
    which prompt reaches a region)."""

    features: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    prompts: dict[int, str]


def find_holes(syn: np.ndarray, syn_labels: np.ndarray, syn_ids: np.ndarray, pool: Pool, *,
               real: np.ndarray | None = None, real_labels: np.ndarray | None = None, prototypes=None,
               k: int = DEFAULT_K, regions: int = DEFAULT_REGIONS, seed: int = 0, class_names=None) -> dict:
    """Per-class coverage of the curated images ``syn`` and the uncovered regions, with proposals
    from ``pool`` (see the module doc).  ``prototypes``: (weights, bias) of the teacher's classifier."""
    names = list(class_names) if class_names is not None else None

    def name(c):
        return names[c] if names and 0 <= c < len(names) else str(c)

    if real is not None and len(real):
        return _holes_real(syn, syn_labels, real, real_labels, pool, k, regions, seed, name)
    if prototypes is None:
        raise ValueError("holes need a reference: a real image set or the teacher's class prototypes")
    return _holes_prototypes(syn, syn_labels, syn_ids, pool, prototypes, name)


def _nearest_in_pool(pool: Pool, c: int, centre: np.ndarray) -> tuple[list[int], list[dict], float | None]:
    from prism_gui.engine.analysis.duplicates import knn

    s = np.flatnonzero(pool.labels == c)
    if not len(s):
        return [], [], None
    d, i = knn(centre[None], min(NEAREST, len(s)), base=pool.features[s], metric="euclidean")
    near = [int(x) for x in pool.ids[s[i[0]]]]
    return near, _proposals([pool.prompts[x] for x in near if x in pool.prompts]), float(d[0, 0])


def _holes_real(syn, syn_labels, real, real_labels, pool, k, regions, seed, name) -> dict:
    from sklearn.cluster import KMeans

    covered, per = coverage_by_class(real, real_labels, syn, syn_labels, k)
    out_regions = []
    for c, entry in per.items():
        entry["class_name"] = name(c)
        unc = np.flatnonzero((real_labels == c) & ~covered)
        if not len(unc):
            continue
        n_reg = min(regions, len(np.unique(real[unc], axis=0)))  # identical images make one region, not several
        lab = np.zeros(len(unc), int) if n_reg <= 1 else \
            KMeans(n_clusters=n_reg, n_init=4, random_state=seed).fit_predict(real[unc])
        for r in range(max(1, n_reg)):
            members = unc[lab == r]
            if not len(members):
                continue
            near, props, dist = _nearest_in_pool(pool, c, real[members].mean(axis=0))
            out_regions.append({"class": int(c), "class_name": name(c), "real_indices": members.tolist(),
                                "size": len(members), "nearest_ids": near, "prompts": props, "distance": dist})
    out_regions.sort(key=lambda g: -g["size"])
    total = sum(e["real"] for e in per.values())
    return {"reference": "real", "k": k, "per_class": per, "regions": out_regions, "covered": covered,
            "coverage": float(sum(e["covered"] for e in per.values()) / max(1, total))}


def _holes_prototypes(syn, syn_labels, syn_ids, pool, prototypes, name, min_aligned: float = 0.5) -> dict:
    from scipy.special import logsumexp

    w, bias = (np.asarray(v, np.float32) for v in prototypes)
    logits = syn @ w.T + bias if len(syn) else np.zeros((0, len(w)), np.float32)
    nearest = logits.argmax(axis=1)
    per, out_regions = {}, []
    for c in range(len(w)):
        s = np.flatnonzero(syn_labels == c)
        aligned = int((nearest[s] == c).sum())
        share = aligned / len(s) if len(s) else 0.0
        per[c] = {"class_name": name(c), "synthetic": len(s), "aligned": aligned, "coverage": share}
        if share < min_aligned:
            # proposals: the pool's images of the class closest to its prototype direction
            q = np.flatnonzero(pool.labels == c)
            score = pool.features[q] @ w[c] + bias[c] - logsumexp(pool.features[q] @ w.T + bias, axis=1) \
                if len(q) else np.zeros(0)
            near = [int(x) for x in pool.ids[q[np.argsort(-score)][:NEAREST]]]
            out_regions.append({"class": c, "class_name": name(c), "size": len(s) - aligned, "real_indices": [],
                                "nearest_ids": near,
                                "prompts": _proposals([pool.prompts[x] for x in near if x in pool.prompts])})
    out_regions.sort(key=lambda g: (per[g["class"]]["coverage"], -g["size"]))
    return {"reference": "prototypes", "per_class": per, "regions": out_regions,
            "coverage": float(np.mean([e["coverage"] for e in per.values()])) if per else 0.0}


def holes_job(project, teacher, *, reference=None, mapping=None, runs: list[str] | None = None,
              statuses=("unreviewed", "keep"), k: int = DEFAULT_K, regions: int = DEFAULT_REGIONS, seed: int = 0,
              save: bool = True, cancel: CancelToken | None = None) -> Iterator[Event]:
    """Holes of a project's images of ``statuses`` against ``reference`` (a real set; None or
    "" for the teacher's class prototypes).  Saved to ``analysis/holes.json`` when ``save``; the
    last event carries ``data['result']``."""
    from prism_gui.engine.analysis.features import (
        class_prototypes,
        features_job,
        reference_features,
        teacher_fingerprint,
    )
    from prism_gui.engine.data.catalog import Catalog

    cancel = cancel or CancelToken()
    fp = teacher_fingerprint(teacher)
    table = None
    for ev in features_job(project, teacher, runs=runs, fingerprint=fp, cancel=cancel):
        table = ev.data.get("table", table)
        yield Event("holes", ev.step, ev.total, ev.message)
    with Catalog(project, create=False) as cat:
        rows = cat.query(columns="id, status, prompt, correct")
    t = table.only(r["id"] for r in rows if r["status"] in statuses)
    pt = table.only(r["id"] for r in rows if r["correct"] is None or r["correct"])
    pool = Pool(pt.features, pt.labels, pt.ids, {r["id"]: r["prompt"] for r in rows})
    real = real_labels = protos = None
    if reference not in (None, "", "none"):
        yield Event("holes", 0, 1, "features of the reference set")
        real, real_labels = reference_features(project, teacher, reference, mapping, fingerprint=fp)
    else:
        protos = class_prototypes(teacher)
    res = find_holes(t.features, t.labels, t.ids, pool, real=real, real_labels=real_labels, prototypes=protos,
                     k=k, regions=regions, seed=seed, class_names=teacher.class_names)
    res.update({"images": len(t), "statuses": list(statuses), "runs": runs,
                "reference_set": str(reference) if reference not in (None, "", "none") else ""})
    if save:  # the report's per-class coverage table reads it
        import json

        from prism_gui.engine.analysis.features import ANALYSIS_DIR
        from prism_gui.engine.data.files import atomic_write_text

        atomic_write_text(Path(project) / ANALYSIS_DIR / "holes.json", json.dumps(holes_json(res), indent=1))
    worst = sorted(res["per_class"].items(), key=lambda kv: kv[1]["coverage"])[:3]
    yield Event("holes", 1, 1, f"coverage {res['coverage']:.3f}; lowest: " + ", ".join(
        f"{v['class_name']} {v['coverage']:.2f}" for _, v in worst), {"result": res})


def holes_json(res: dict) -> dict:
    """The JSON-safe part of a holes result (no arrays)."""
    out = {k: v for k, v in res.items() if k != "covered"}
    out["per_class"] = {str(c): v for c, v in res["per_class"].items()}
    return out
