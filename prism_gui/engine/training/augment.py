"""Batch augmentation for distillation and the built-in classifiers, drawn from one generator."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(x: torch.Tensor, gen: torch.Generator, rot_deg: float = 10.0, scale: float = 0.1,
                  shift_px: float = 1.0, part: tuple[int, int] | None = None) -> torch.Tensor:
    """Per-sample random rotation, scale and translation (bilinear, zero padding).  ``part =
    (offset, total)``: ``x`` is rows ``offset...`` of a batch of ``total``; the draws are the whole
    batch's, so each process of a multi-process run augments its share as one process would."""
    n, _, h, w = x.shape
    lo, total = part or (0, n)
    rows = slice(lo, lo + n)
    a = ((torch.rand(total, generator=gen) * 2 - 1) * math.radians(rot_deg))[rows]
    s = (1 + (torch.rand(total, generator=gen) * 2 - 1) * scale)[rows]
    t = ((torch.rand(total, 2, generator=gen) * 2 - 1) * shift_px * 2 / torch.tensor([w, h]))[rows]
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = torch.cos(a) / s
    theta[:, 0, 1] = -torch.sin(a) / s
    theta[:, 1, 0] = torch.sin(a) / s
    theta[:, 1, 1] = torch.cos(a) / s
    theta[:, :, 2] = t
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)


def augment_batch(x: torch.Tensor, gen: torch.Generator, part: tuple[int, int] | None = None) -> torch.Tensor:
    """Random affine per image, plus a horizontal flip for colour images (``part``: see
    :func:`random_affine`)."""
    x = random_affine(x.cpu(), gen, part=part).to(x.device)
    if x.shape[1] == 3:
        lo, total = part or (0, len(x))
        flip = (torch.rand(total, generator=gen) < 0.5)[lo : lo + len(x)]
        x[flip] = x[flip].flip(-1)
    return x
