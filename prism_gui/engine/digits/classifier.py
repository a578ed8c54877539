"""Supervised training of small Digits classifiers (the teacher, and the printed-digit judge).

Distillation has its own trainer (:mod:`prism_gui.engine.training.distill`); this is plain
cross-entropy on labelled images, used to build the Digits world itself.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from prism_gui.engine.training.augment import random_affine


def normalize(x_unit: torch.Tensor, mean, std) -> torch.Tensor:
    m = torch.tensor(mean, dtype=x_unit.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x_unit.dtype).view(1, -1, 1, 1)
    return (x_unit - m) / s


def fit_classifier(model: torch.nn.Module, images_unit: np.ndarray, labels: np.ndarray, *,
                   mean, std, epochs: int = 60, batch_size: int = 64, lr: float = 3e-3,
                   seed: int = 0, augment: bool = True, label_smoothing: float = 0.05,
                   log=None) -> dict:
    """Train ``model`` with AdamW + cosine schedule on (N, 8, 8) images in [0, 1]."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(np.asarray(images_unit, np.float32)).unsqueeze(1)
    y = torch.from_numpy(np.asarray(labels, np.int64))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    steps = epochs * math.ceil(len(x) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    t0 = time.time()
    model.train()
    for ep in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), batch_size):
            b = perm[i : i + batch_size]
            xb = random_affine(x[b], gen) if augment else x[b]
            loss = F.cross_entropy(model(normalize(xb, mean, std)), y[b], label_smoothing=label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(b)
        if log:
            log(f"epoch {ep + 1}/{epochs} loss {total / len(x):.4f}")
    model.eval()
    return {"epochs": epochs, "seconds": round(time.time() - t0, 1)}


@torch.no_grad()
def predict(model: torch.nn.Module, images_unit: np.ndarray, *, mean, std, batch_size: int = 1024):
    model.eval()
    x = torch.from_numpy(np.asarray(images_unit, np.float32)).unsqueeze(1)
    return torch.cat([model(normalize(x[i : i + batch_size], mean, std))
                      for i in range(0, len(x), batch_size)]).softmax(-1).numpy()
