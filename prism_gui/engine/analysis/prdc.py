"""Precision/recall of a synthetic set against a real reference set, in a feature space.

- Improved precision and recall (Kynkäänniemi et al., 2019): k-NN balls around real
  (resp. synthetic) features approximate each manifold; precision is the share of synthetic
  points inside the real manifold, recall the share of real points inside the synthetic one.
- Density and coverage (Naeem et al., 2020): density counts how many real k-NN balls hold each
  synthetic point (divided by k; can exceed 1), coverage is the share of real points whose
  k-NN ball holds at least one synthetic point.

The engine computes them in the teacher's penultimate features (:meth:`Teacher.features`),
overall and per class, in float32 distance blocks of bounded size (:func:`prdc`), so a 50,000
x 100,000 comparison needs the features plus one block, not an N x M matrix.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from prism_gui.engine.jobs import CancelToken, Event
from prism_gui.engine.teachers.classes import class_key

DEFAULT_CHUNK_MB = 256


def _rows_per_chunk(n_cols: int, chunk_mb: float, itemsize: int) -> int:
    # a chunk holds its distance block plus two boolean masks of the same shape
    return max(1, int(chunk_mb * 2**20 // (max(1, n_cols) * (itemsize + 2))))


def kth_nn_radius(x: torch.Tensor, k: int, chunk_mb: float = DEFAULT_CHUNK_MB) -> torch.Tensor:
    """Distance of each point to its k-th nearest other point, computed in row chunks."""
    rows = _rows_per_chunk(len(x), chunk_mb, x.element_size())
    out = torch.empty(len(x), dtype=x.dtype, device=x.device)
    for a in range(0, len(x), rows):
        d = torch.cdist(x[a : a + rows], x)
        out[a : a + rows] = d.kthvalue(k + 1, dim=1).values  # k+1: the nearest point of each x is itself
    return out


def prdc(real, fake, k: int = 5, *, chunk_mb: float = DEFAULT_CHUNK_MB, device=None, dtype=torch.float32,
         max_real: int | None = None, max_fake: int | None = None, seed: int = 0) -> dict[str, float]:
    """Precision, recall, density and coverage between feature sets (N, D) and (M, D).

    Distances are computed in blocks of at most ``chunk_mb`` MiB on ``device`` (default: the
    features' device), so memory stays bounded for any N and M: peak is the two feature sets,
    the radii and one block.  ``max_real``/``max_fake`` subsample a larger set, without
    replacement, with ``seed`` (the result records what was used)."""
    real = torch.as_tensor(np.asarray(real) if not isinstance(real, torch.Tensor) else real)
    fake = torch.as_tensor(np.asarray(fake) if not isinstance(fake, torch.Tensor) else fake)
    used = {}
    gen = torch.Generator().manual_seed(int(seed))
    if max_real is not None and len(real) > max_real:
        used["real_subsample"] = {"used": int(max_real), "of": len(real), "seed": int(seed)}
        real = real[torch.randperm(len(real), generator=gen)[:max_real]]
    if max_fake is not None and len(fake) > max_fake:
        used["fake_subsample"] = {"used": int(max_fake), "of": len(fake), "seed": int(seed)}
        fake = fake[torch.randperm(len(fake), generator=gen)[:max_fake]]
    dev = torch.device(device) if device is not None else real.device
    real, fake = real.to(dev, dtype), fake.to(dev, dtype)
    if len(real) <= k or len(fake) <= k:
        raise ValueError(f"precision/recall need more than k={k} real and synthetic samples "
                         f"(got {len(real)} and {len(fake)}): add samples or lower k.")
    r_real = kth_nn_radius(real, k, chunk_mb)
    r_fake = kth_nn_radius(fake, k, chunk_mb)
    # synthetic rows against every real point: precision (inside any real ball), density (how many)
    in_any = torch.zeros(len(fake), dtype=torch.bool, device=dev)
    n_balls = torch.zeros(len(fake), dtype=torch.float64, device=dev)
    rows = _rows_per_chunk(len(real), chunk_mb, real.element_size())
    for a in range(0, len(fake), rows):
        inside = torch.cdist(fake[a : a + rows], real) <= r_real[None, :]
        in_any[a : a + rows] = inside.any(dim=1)
        n_balls[a : a + rows] = inside.sum(dim=1, dtype=torch.float64)
    # real rows against every synthetic point: recall (inside any synthetic ball), coverage (nearest synthetic)
    recalled = torch.zeros(len(real), dtype=torch.bool, device=dev)
    covered = torch.zeros(len(real), dtype=torch.bool, device=dev)
    rows = _rows_per_chunk(len(fake), chunk_mb, fake.element_size())
    for a in range(0, len(real), rows):
        d = torch.cdist(real[a : a + rows], fake)
        recalled[a : a + rows] = (d <= r_fake[None, :]).any(dim=1)
        covered[a : a + rows] = d.min(dim=1).values <= r_real[a : a + rows]
    out = {"precision": float(in_any.double().mean()), "recall": float(recalled.double().mean()),
           "density": float(n_balls.mean() / k), "coverage": float(covered.double().mean())}
    return {**out, **used} if used else out


def prdc_per_class(real: np.ndarray, real_labels: np.ndarray, fake: np.ndarray, fake_labels: np.ndarray,
                   k: int = 5, class_names=None) -> dict:
    """Overall PRDC plus PRDC within each class (classes with too few samples are skipped)."""
    out = {"overall": prdc(real, fake, k), "per_class": {}}
    for c in np.unique(real_labels):
        r, f = real[real_labels == c], fake[fake_labels == c]
        name = class_key(class_names, int(c))
        if len(r) > k and len(f) > k:
            out["per_class"][name] = prdc(r, f, k)
    if out["per_class"]:
        out["mean_per_class"] = {m: float(np.mean([v[m] for v in out["per_class"].values()]))
                                 for m in ("precision", "recall", "density", "coverage")}
    return out


@torch.no_grad()
def teacher_features(teacher, images, batch_size: int = 512, workers: int | None = None) -> np.ndarray:
    """Penultimate features (float32, on the CPU) of an image tensor or a dataset, streamed."""
    from prism_gui.engine.data.datasets import TensorImages, make_loader

    ds = TensorImages(images) if isinstance(images, torch.Tensor) else images
    dev = teacher.device
    feats = [teacher.features(xb.to(dev, non_blocking=True)).float().cpu()
             for xb, _ in make_loader(ds, batch_size, device=dev, workers=workers)]
    if not feats:
        return np.zeros((0, 0), np.float32)
    return torch.cat(feats).numpy()


def catalog_prdc_job(teacher, reference, project: str | Path, runs: list[str] | None = None, *,
                 statuses=("unreviewed", "keep"), k: int = 5, mapping=None, max_real: int | None = None,
                 seed: int = 0, save: bool = True, cancel: CancelToken | None = None) -> Iterator[Event]:
    """P/R/D/C of each generation run of a project against a real ``reference`` set (a built-in
    set's name, a labelled folder, or a dataset), overall and per class, streamed and chunked.
    Saved to ``runs/<run>/prdc.json`` when ``save``; the last event carries ``data['results']``."""
    import json

    from prism_gui.engine.data.catalog import Catalog
    from prism_gui.engine.data.datasets import catalog_dataset, image_set
    from prism_gui.engine.data.files import atomic_write_text
    from prism_gui.engine.data.layout import RunPaths

    cancel = cancel or CancelToken()
    root = Path(project)
    with Catalog(root, create=False) as cat:
        all_runs = [r["id"] for r in cat.runs("generate")]
    runs = list(runs) if runs else all_runs
    if not runs:
        raise ValueError(f"'{root}' has no generated images yet: run a generation first")
    unknown = sorted(set(runs) - set(all_runs))
    if unknown:
        raise ValueError(f"'{root}' has no generation run(s) {unknown}; its runs are {all_runs}")
    ref = image_set(reference, teacher, mapping) if reference is None or isinstance(reference, (str, Path)) \
        else reference
    if ref is None:
        raise ValueError("precision/recall need a real reference set: choose one for the project "
                         "(a labelled image folder, or 'digits-test' in the Digits world)")
    real_y = np.asarray(ref.labels)
    if max_real is not None and len(ref) > max_real:  # subsample before the features: only those are computed
        from torch.utils.data import Subset

        keep = np.sort(np.random.default_rng(seed).choice(len(ref), max_real, replace=False))
        ref, real_y = Subset(ref, keep.tolist()), real_y[keep]
    n = len(runs) + 1
    yield Event("metrics", 0, n, f"features of the reference set ({len(ref)} images)")
    real = teacher_features(teacher, ref)
    out = {}
    for i, run in enumerate(runs):
        cancel.raise_if_cancelled()
        ds = catalog_dataset(root, teacher, run=run, statuses=list(statuses))
        if len(ds) <= k:
            out[run] = {"error": f"only {len(ds)} images"}
        else:
            m = prdc_per_class(real, real_y, teacher_features(teacher, ds), ds.labels, k=k,
                               class_names=teacher.class_names)
            out[run] = {**m["overall"], "per_class": m["per_class"], "images": len(ds), "reference_images": len(real),
                        "reference": str(reference) if isinstance(reference, (str, Path)) else "dataset"}
            if max_real is not None:
                out[run]["reference_subsample_seed"] = seed
            if save:
                atomic_write_text(RunPaths.of(root, run).prdc, json.dumps(out[run], indent=2))
        yield Event("metrics", i + 2, n, f"{run}: " + ", ".join(
            f"{key} {out[run][key]:.2f}" for key in ("precision", "recall", "density", "coverage") if key in out[run]),
            {"run": run, "prdc": out[run]})
    yield Event("metrics", n, n, "done", {"results": out})
