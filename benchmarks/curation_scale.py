"""Curation at scale (issue 15): the map, near-duplicates and holes at 100,000 images in 1,000 classes.

    QT_QPA_PLATFORM=offscreen python benchmarks/curation_scale.py [--quick] [--only PART]
                                                                  [--out benchmarks/results/curation_scale.json]

- ``features``: the map job's first stage, the teacher's features of a 100,000-row catalog
  (the Digits teacher; the rows point at real digit images, so the cost is the real one), then
  the same call again (from the cache) and after 1,000 images were added (only those computed);
- ``analysis``: the stages after the features, on 100,000 synthetic and 50,000 real feature
  vectors of ResNet-50's width (2,048) in 1,000 classes (a Gaussian mixture: the cost depends on
  the counts and the width, not on where the vectors came from): the PCA map, the UMAP map,
  placing 1,000 new points on a cached map, the near-duplicate search and the holes analysis;
- ``view``: the Map tab with those 100,000 + 50,000 points, offscreen: colouring, the time of
  one frame while zooming and panning, a lasso selection of half the points, the hover lookup,
  and showing a 50,000-image selection in the Curate gallery.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - t0, 3)


def _last(events):
    ev = None
    for ev in events:  # noqa: B007
        pass
    return ev


def bench_features(n: int, work: Path) -> dict:
    from prism_gui.engine.analysis.features import features_job
    from prism_gui.engine.data.catalog import Catalog
    from prism_gui.engine.teachers.load import load_teacher
    from prism_gui.ui.testing import fake_catalog

    project = fake_catalog(work / "features", n)
    teacher = load_teacher("digits")
    first, t_first = _timed(lambda: _last(features_job(project.root, teacher)).data["table"])
    again, t_again = _timed(lambda: _last(features_job(project.root, teacher)).data["table"])
    add = max(1, n // 100)
    with Catalog(project.root) as cat:  # more rows pointing at the same files
        rows = [dict(r) for r in cat.query(sort="id", limit=add)]
        for j, r in enumerate(rows):
            r.pop("id"), r.pop("status")
            r.update(run="added", item=j, seed=10**7 + j)
        cat.insert_rows(rows)
    up, t_up = _timed(lambda: _last(features_job(project.root, teacher)).data["table"])
    return {"images": n, "dim": int(first.features.shape[1]), "first_seconds": t_first,
            "images_per_s": round(n / t_first, 1), "cached_seconds": t_again, "cached_computed": again.computed,
            "added": add, "after_adding_seconds": t_up, "after_adding_computed": up.computed}


def mixture(n: int, classes: int, dim: int, seed: int, centres=None):
    rng = np.random.default_rng(seed)
    if centres is None:
        centres = rng.normal(size=(classes, dim)).astype(np.float32)
    labels = rng.integers(0, classes, n)
    x = centres[labels] + 0.6 * rng.normal(size=(n, dim)).astype(np.float32)
    return np.maximum(x, 0).astype(np.float32), labels, centres  # post-ReLU, like pooled CNN features


def bench_analysis(n: int, n_real: int, classes: int, dim: int, umap: bool) -> tuple[dict, dict]:
    from prism_gui.engine.analysis.duplicates import find_duplicates
    from prism_gui.engine.analysis.embedding import fit_embedding, place_new, separation
    from prism_gui.engine.analysis.holes import Pool, find_holes

    syn, y, centres = mixture(n, classes, dim, 0)
    real, ry, _ = mixture(n_real, classes, dim, 1, centres)
    x = np.concatenate([syn, real])
    out: dict = {"synthetic": n, "real": n_real, "classes": classes, "dim": dim}
    (xy_pca, _state), out["pca_map_seconds"] = _timed(lambda: fit_embedding(x, "pca"))
    xy = xy_pca
    if umap:
        (xy_umap, _), out["umap_map_seconds"] = _timed(lambda: fit_embedding(x, "umap"))
        out["umap_separation"] = round(separation(xy_umap[:20000], np.concatenate([y, ry])[:20000]), 3)
        xy = xy_umap
    new = mixture(1000, classes, dim, 2, centres)[0]
    _, out["place_1000_new_seconds"] = _timed(lambda: place_new(x, xy, new))
    ids = np.arange(n)
    energy = np.random.default_rng(3).random(n)
    dup, out["duplicates_seconds"] = _timed(lambda: find_duplicates(syn, y, ids, energy))
    out["duplicate_groups"] = len(dup["groups"])
    pool = Pool(syn, y, ids, {int(i): f"prompt {i % 7}" for i in ids})
    holes, out["holes_seconds"] = _timed(lambda: find_holes(syn, y, ids, pool, real=real, real_labels=ry))
    out["coverage"] = round(holes["coverage"], 3)
    out["regions"] = len(holes["regions"])
    return out, {"xy": xy, "labels": np.concatenate([y, ry]), "real": np.r_[np.zeros(n, bool), np.ones(n_real, bool)]}


def bench_view(pts: dict, work: Path) -> dict:
    from PySide6.QtWidgets import QApplication

    from prism_gui.engine.analysis.embedding import ProjectMap
    from prism_gui.engine.jobs import Event
    from prism_gui.ui.common import make_studio
    from prism_gui.ui.curate_panel import CuratePanel
    from prism_gui.ui.map_panel import MapPanel
    from prism_gui.ui.testing import fake_catalog

    app = QApplication.instance() or QApplication([])
    xy, labels, real = pts["xy"], pts["labels"], pts["real"]
    n_syn = int((~real).sum())
    project = fake_catalog(work / "view", n_syn)
    studio = make_studio()
    m, c = MapPanel(studio), CuratePanel(studio)
    m.resize(1400, 860)
    m.show()
    studio.set_project(project)
    m.show_ids.connect(c.show_ids)
    ids = np.r_[np.arange(1, n_syn + 1), -np.ones(int(real.sum()), np.int64)]
    pm = ProjectMap(xy=xy.astype(np.float32), ids=ids, labels=labels % 10, real=real,
                    runs=np.where(real, "", "prism"), method="umap", teacher="bench")
    rng = np.random.default_rng(0)
    cols = {"energy": np.where(real, np.nan, rng.random(len(ids))),
            "confidence": np.where(real, np.nan, rng.random(len(ids))),
            "status": np.where(real, "", "unreviewed").astype(object), "correct": np.ones(len(ids))}
    out: dict = {"points": len(ids)}
    _, out["show_map_seconds"] = _timed(lambda: (m._mapped(Event("map", 1, 1, "bench", {"map": pm, "columns": cols})),
                                                 app.processEvents()))
    m.colour.blockSignals(True)
    for name in ("energy", "class"):
        m.colour.setCurrentText(name)
        _, out[f"recolour_{name}_seconds"] = _timed(lambda: (m.recolour(), app.processEvents()))
    m.colour.blockSignals(False)
    vp = m.plot.viewport()
    vp.repaint()
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    frames = []
    for k in range(24):  # zoom in step by step, then pan across
        f = 1.0 / (1 + k % 12)
        cx, cy = lo + (hi - lo) * (0.5 + 0.3 * np.sin(k / 3))
        w, h = (hi - lo) * f
        m.vb.setRange(xRange=(cx - w / 2, cx + w / 2), yRange=(cy - h / 2, cy + h / 2), padding=0)
        t0 = time.perf_counter()
        app.processEvents()
        vp.repaint()
        frames.append(time.perf_counter() - t0)
    out["frame_ms"] = {"median": round(1000 * statistics.median(frames), 1), "max": round(1000 * max(frames), 1),
                       "frames": len(frames)}
    m.vb.autoRange()
    app.processEvents()
    # a lasso around the left half of the map
    mid = (lo[0] + hi[0]) / 2
    shape = np.array([[lo[0] - 1, lo[1] - 1], [mid, lo[1] - 1], [mid, hi[1] + 1], [lo[0] - 1, hi[1] + 1],
                      [lo[0] - 1, lo[1] - 1]])
    _, out["lasso_seconds"] = _timed(lambda: (m._select_shape(shape), app.processEvents()))
    out["lasso_selected"] = len(m.selected)
    queries = xy[rng.integers(0, len(xy), 200)]
    t0 = time.perf_counter()
    for q in queries:
        m.point_at(*q)
    out["hover_lookup_ms"] = round(1000 * (time.perf_counter() - t0) / len(queries), 3)
    _, out["show_in_gallery_seconds"] = _timed(lambda: (m.show_in_gallery(), app.processEvents()))
    out["gallery_rows"] = c.model.rowCount()
    c.close_catalog()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes and no UMAP fit (the test suite runs it; "
                   "UMAP is tested in tests/test_curation_map.py)")
    p.add_argument("--no-umap", action="store_true", help="skip the UMAP fit (minutes at full size)")
    p.add_argument("--only", choices=("features", "analysis", "view"),
                   help="only this part, merged into --out (view: on the PCA map of the same points)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "curation_scale.json")
    a = p.parse_args(argv)
    n, n_real, classes, dim = (2000, 1000, 20, 64) if a.quick else (100_000, 50_000, 1000, 2048)
    work = Path(tempfile.mkdtemp(prefix="prism-curation-scale-"))
    cmd = "QT_QPA_PLATFORM=offscreen python benchmarks/curation_scale.py" + (" --quick" if a.quick else "") \
        + (" --no-umap" if a.no_umap else "") + (f" --only {a.only}" if a.only else "")
    res = json.loads(a.out.read_text()) if a.only and a.out.exists() else {}
    res.update({"machine": f"{os.cpu_count()} CPU cores, no GPU"})
    res["commands"] = {**res.get("commands", {}), **{part: cmd for part in ("features", "analysis", "view")
                                                     if a.only in (None, part)}}
    if a.only in (None, "features"):
        res["features"] = bench_features(n, work)
        print("features", res["features"], flush=True)
    if a.only in (None, "analysis", "view"):
        analysis, pts = bench_analysis(n, n_real, classes, dim, umap=not (a.no_umap or a.quick or a.only == "view"))
        if a.only != "view":
            res["analysis"] = analysis
            print("analysis", res["analysis"], flush=True)
    if a.only in (None, "view"):
        res["view"] = bench_view(pts, work)
        res["view"]["map"] = "umap" if "umap_map_seconds" in analysis else "pca"
        print("view", res["view"], flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=1))
    print(f"-> {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
