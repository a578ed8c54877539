"""Precision/recall of a synthetic set against a real reference set, in a feature space.

- Improved precision and recall (Kynkäänniemi et al., 2019): k-NN balls around real
  (resp. synthetic) features approximate each manifold; precision is the share of synthetic
  points inside the real manifold, recall the share of real points inside the synthetic one.
- Density and coverage (Naeem et al., 2020): density counts how many real k-NN balls hold each
  synthetic point (divided by k; can exceed 1), coverage is the share of real points whose
  k-NN ball holds at least one synthetic point.

The engine computes them in the teacher's penultimate features (:meth:`Teacher.features`),
overall and per class.
"""

from __future__ import annotations

import numpy as np
import torch


def _kth_nn_radius(x: torch.Tensor, k: int) -> torch.Tensor:
    d = torch.cdist(x, x)
    # k+1 because the nearest point of each x is itself
    return d.kthvalue(k + 1, dim=1).values


def prdc(real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage between two feature sets (N, D) and (M, D)."""
    real = torch.as_tensor(np.asarray(real), dtype=torch.float64)
    fake = torch.as_tensor(np.asarray(fake), dtype=torch.float64)
    if len(real) <= k or len(fake) <= k:
        raise ValueError(f"precision/recall need more than k={k} real and synthetic samples "
                         f"(got {len(real)} and {len(fake)}): add samples or lower k.")
    r_real = _kth_nn_radius(real, k)
    r_fake = _kth_nn_radius(fake, k)
    d_rf = torch.cdist(real, fake)  # (N, M)
    inside_real = d_rf <= r_real[:, None]  # fake j inside real ball i
    precision = inside_real.any(dim=0).double().mean()
    recall = (d_rf <= r_fake[None, :]).any(dim=1).double().mean()
    density = inside_real.double().sum(dim=0).mean() / k
    coverage = inside_real.any(dim=1).double().mean()
    return {"precision": float(precision), "recall": float(recall), "density": float(density),
            "coverage": float(coverage)}


def prdc_per_class(real: np.ndarray, real_labels: np.ndarray, fake: np.ndarray, fake_labels: np.ndarray,
                   k: int = 5, class_names=None) -> dict:
    """Overall PRDC plus PRDC within each class (classes with too few samples are skipped)."""
    out = {"overall": prdc(real, fake, k), "per_class": {}}
    for c in np.unique(real_labels):
        r, f = real[real_labels == c], fake[fake_labels == c]
        name = class_names[c] if class_names is not None else str(int(c))
        if len(r) > k and len(f) > k:
            out["per_class"][name] = prdc(r, f, k)
    if out["per_class"]:
        out["mean_per_class"] = {m: float(np.mean([v[m] for v in out["per_class"].values()]))
                                 for m in ("precision", "recall", "density", "coverage")}
    return out


@torch.no_grad()
def teacher_features(teacher, images_pm1: torch.Tensor, batch_size: int = 512) -> np.ndarray:
    return torch.cat([teacher.features(images_pm1[i : i + batch_size]).float()
                      for i in range(0, len(images_pm1), batch_size)]).cpu().numpy()
