"""Teacher energies (EDA): how far an image lies from what the teacher knows.

Every term maps images in [-1, 1] and their intended classes to one energy per image (lower
is more in-distribution); terms are differentiable, so the sampler can follow their gradient,
and the same numbers rank and filter stored samples.

- ``free``: free energy ``-T * logsumexp(f(x) / T)`` (class-agnostic);
- ``class``: class-conditional energy, the cross-entropy to the intended class;
- ``bn``: BatchNorm-statistics energy (DeepInversion-style): distance of each image's
  per-channel feature mean and variance to the running statistics of every BN layer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
import torch.nn.functional as F

from prism_gui.engine.registry import Registry

ENERGIES = Registry("energy term")


@dataclasses.dataclass
class TeacherPass:
    """One forward pass of the teacher, with what energy terms may need from it."""

    logits: torch.Tensor
    bn_stats: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]  # (mu, var, run_mu, run_var)


def teacher_pass(teacher, images: torch.Tensor, need_bn: bool) -> TeacherPass:
    stats: list = []
    hooks = []
    if need_bn:
        for m in teacher.model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                def hook(mod, inp, _out):
                    x = inp[0]
                    dims = [d for d in range(x.dim()) if d != 1 and d != 0]
                    stats.append((x.mean(dims), x.var(dims, unbiased=False), mod.running_mean, mod.running_var))

                hooks.append(m.register_forward_hook(hook))
    try:
        logits = teacher.logits(images)
    finally:
        for h in hooks:
            h.remove()
    return TeacherPass(logits=logits.float(), bn_stats=stats)


@ENERGIES.register("class", "class-conditional energy: cross-entropy to the intended class")
def class_energy(p: TeacherPass, targets: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    return F.cross_entropy(p.logits / temperature, targets, reduction="none")


@ENERGIES.register("free", "free energy -T*logsumexp(f/T): low where the teacher is confident")
def free_energy(p: TeacherPass, targets: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    return -temperature * torch.logsumexp(p.logits / temperature, dim=-1)


@ENERGIES.register("bn", "BatchNorm-statistics energy (DeepInversion): feature stats vs running stats")
def bn_energy(p: TeacherPass, targets: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    if not p.bn_stats:
        raise ValueError("The teacher has no BatchNorm layers, so the 'bn' energy is undefined: "
                         "set its weight to 0 or choose 'class'/'free'.")
    total = torch.zeros(p.logits.shape[0], device=p.logits.device)
    for mu, var, rmu, rvar in p.bn_stats:
        total = total + torch.linalg.vector_norm(mu - rmu, dim=1) + torch.linalg.vector_norm(var - rvar, dim=1)
    return total / len(p.bn_stats)


@dataclasses.dataclass
class EnergySpec:
    """Weights of the energy terms (0 switches a term off) and the temperature."""

    weights: dict[str, float] = dataclasses.field(default_factory=lambda: {"class": 1.0})
    temperature: float = 1.0

    def __post_init__(self):
        for name in self.weights:
            ENERGIES.get(name)  # raises a clear KeyError for unknown terms

    @property
    def active(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.weights.items() if v}


def compute_energies(teacher, images: torch.Tensor, targets: torch.Tensor, spec: EnergySpec,
                     all_terms: bool = True) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """Returns (weighted total per image, every term per image, logits).

    With ``all_terms`` every registered term is computed (for scoring); otherwise only the
    active ones (for guidance, cheaper)."""
    names = ENERGIES.names() if all_terms else list(spec.active)
    need_bn = "bn" in names and teacher.has_batchnorm
    p = teacher_pass(teacher, images, need_bn)
    terms: dict[str, torch.Tensor] = {}
    for name in names:
        if name == "bn" and not need_bn:
            if name in spec.active:
                bn_energy(p, targets)  # raises the explanatory error
            continue
        fn: Callable = ENERGIES.get(name)
        terms[name] = fn(p, targets, spec.temperature)
    total = sum((w * terms[n] for n, w in spec.active.items()), torch.zeros_like(p.logits[:, 0]))
    return total, terms, p.logits
