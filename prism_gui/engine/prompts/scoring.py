"""Precision-aware diversity: pilot samples per prompt, scored by the teacher's class energy; the
prompts whose samples lie farthest from what the teacher knows are disabled or down-weighted."""

from __future__ import annotations

import dataclasses

import numpy as np

from prism_gui.engine.prompts import PromptError, PromptSet


def apply_scores(ps: PromptSet, scores: dict[int, float], keep_fraction: float = 0.7,
                 mode: str = "drop") -> PromptSet:
    """Precision-aware diversity: per class, keep the ``keep_fraction`` of prompts with the
    lowest pilot energy; the rest get weight 0 (``drop``) or a reduced weight (``downweight``).
    Scores are stored on every prompt either way."""
    if not 0 < keep_fraction <= 1:
        raise ValueError("keep_fraction must be in (0, 1]")
    for i, p in enumerate(ps.prompts):
        if i in scores:
            p.score = float(scores[i])
    for k in range(len(ps.class_names)):
        idx = [i for i, p in enumerate(ps.prompts) if p.class_index == k and p.score is not None]
        if not idx:
            continue
        order = sorted(idx, key=lambda i: ps.prompts[i].score)
        n_keep = max(1, round(keep_fraction * len(order)))
        for rank, i in enumerate(order):
            if rank >= n_keep:
                ps.prompts[i].weight = 0.0 if mode == "drop" else 0.25
            else:
                ps.prompts[i].weight = 1.0
    ps.meta["precision_aware"] = {"keep_fraction": keep_fraction, "mode": mode}
    return ps


@dataclasses.dataclass
class ScoreSpec:
    """Settings of pilot scoring (precision-aware diversity, :func:`score_prompts`): the one
    definition that ``prism prompts``' ``score`` table, the Prompts panel and ``prism demo`` use."""

    generator: str = "digits"
    pilot_per_prompt: int = 1  # unguided samples drawn per prompt
    keep_fraction: float = 0.7  # of each class's prompts, the share kept at full weight
    steps: int = 15
    cfg: float = 3.0
    scheduler: str | None = "ddim"
    batch: int = 100
    seed: int = 0

    def __post_init__(self):
        if not 0 < self.keep_fraction <= 1:
            raise ValueError(f"keep_fraction must be in (0, 1], not {self.keep_fraction!r}: the share of each "
                             "class's prompts kept at full weight")

    def sampler(self):
        from prism_gui.engine.generation.sampler import SamplerSettings

        return SamplerSettings(steps=self.steps, cfg=float(self.cfg), scheduler=self.scheduler)


PILOT_SEED_BASE = 900_000_000  # pilot samples never share a seed with a generation run


def score_prompts(ps: PromptSet, components, teacher, *, pilot_per_prompt: int = 1, keep_fraction: float = 0.7,
                  sampler=None, batch_size: int = 200, seed: int = 0, cancel=None):
    """Precision-aware diversity: draw ``pilot_per_prompt`` unguided samples per prompt, score
    them with the teacher's class-conditional energy, and keep (``apply_scores``) the
    ``keep_fraction`` of each class's prompts whose samples lie closest to the teacher's data.

    A job generator: yields ``Event("prompts: pilot scoring", done, total)``; the last event
    carries ``data['prompts']``, a scored copy of ``ps`` (``ps`` itself is left unchanged)."""
    import copy

    from prism_gui.engine.generation.energies import EnergySpec
    from prism_gui.engine.generation.sampler import SamplerSettings, sample_steps, score_images
    from prism_gui.engine.jobs import CancelToken, Event

    if pilot_per_prompt < 1:
        raise PromptError("pilot_per_prompt must be at least 1 to score prompts")
    cancel = cancel or CancelToken()
    sampler = sampler or SamplerSettings()
    scored = copy.deepcopy(ps)
    texts = [p.text for p in scored.prompts for _ in range(pilot_per_prompt)]
    targets = [p.class_index for p in scored.prompts for _ in range(pilot_per_prompt)]
    seeds = [PILOT_SEED_BASE + seed * 100_000 + i for i in range(len(texts))]
    energies: list[float] = []
    correct: list[bool] = []
    yield Event("prompts: pilot scoring", 0, len(texts), f"{len(texts)} pilot samples")
    for i in range(0, len(texts), batch_size):
        images = None
        for ev in sample_steps(components, texts[i : i + batch_size], seeds[i : i + batch_size], sampler,
                               cancel=cancel):
            images = ev.data.get("images", images)
        sc = score_images(teacher, images.to(teacher.device), targets[i : i + batch_size], EnergySpec({"class": 1.0}))
        energies += [s["energy"] for s in sc]
        correct += [bool(s["correct"]) for s in sc]
        yield Event("prompts: pilot scoring", min(len(texts), i + batch_size), len(texts))
    per_prompt = np.array(energies).reshape(-1, pilot_per_prompt).mean(1)
    apply_scores(scored, dict(enumerate(per_prompt)), keep_fraction=keep_fraction)
    # how well the teacher recognises each class's unguided renders (adaptive guidance reads it)
    tg, ok = np.array(targets), np.array(correct, float)
    scored.meta["pilot"] = {"class_accuracy": [float(ok[tg == k].mean()) if (tg == k).any() else None
                                               for k in range(len(scored.class_names))],
                            "samples": len(texts)}
    yield Event("prompts: pilot scoring", len(texts), len(texts), "scored", {"prompts": scored})
