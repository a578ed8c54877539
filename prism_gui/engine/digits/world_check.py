"""The Digits world check: the headless pipeline behind ``prism-gui`` on a machine without a
display and ``prism world``.

It loads the built-in teacher and prior, measures the teacher on the real test split, samples
the prior with plain prompts ("the digit k"), scores every sample with the teacher and writes
``results.json``, ``samples.png`` and ``manifest.json`` to an output folder.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from prism_gui.engine.jobs import CancelToken, Event


@dataclasses.dataclass
class WorldCheckSpec:
    out_dir: str = "prism-digits-run"
    images_per_class: int = 10
    seed: int = 0
    steps: int = 30
    cfg: float = 3.0
    scheduler: str = "ddim"
    batch_size: int = 50


def run_world_check(spec: WorldCheckSpec, cancel: CancelToken | None = None) -> Iterator[Event]:
    from prism_gui.engine.data.imaging import grid, to_uint8
    from prism_gui.engine.digits.data import CLASS_NAMES, load_split
    from prism_gui.engine.generation.load import load_generator
    from prism_gui.engine.generation.sampler import sample
    from prism_gui.engine.teachers.load import load_teacher
    from prism_gui.engine.versions import manifest

    cancel = cancel or CancelToken()
    t0 = time.time()
    out = Path(spec.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    yield Event("load", 0, 2, "teacher and prior")
    teacher = load_teacher("digits")
    comp = load_generator("digits")
    yield Event("load", 2, 2, "loaded")
    x, y = load_split("test")
    with torch.no_grad():
        pred = teacher.logits(torch.from_numpy(x).unsqueeze(1) / 8 - 1).argmax(1).numpy()
    teacher_acc = float((pred == y).mean())
    labels = np.repeat(np.arange(10), spec.images_per_class)
    prompts = [f"the digit {k}" for k in labels]
    seeds = [spec.seed * 1_000_000 + i for i in range(len(labels))]
    images = []
    n = len(prompts)
    for i in range(0, n, spec.batch_size):
        cancel.raise_if_cancelled()
        images.append(sample(comp, prompts[i : i + spec.batch_size], seeds[i : i + spec.batch_size],
                             steps=spec.steps, cfg=spec.cfg, scheduler=spec.scheduler))
        yield Event("generate", min(n, i + spec.batch_size), n, f"{min(n, i + spec.batch_size)}/{n} images")
    imgs = torch.cat(images)
    with torch.no_grad():
        probs = teacher.logits(imgs).softmax(-1).numpy()
    agree = probs.argmax(1) == labels
    results = {
        "teacher_test_accuracy": teacher_acc,
        "images": int(n),
        "teacher_agrees_with_prompt": float(agree.mean()),
        "per_class_agreement": {CLASS_NAMES[k]: float(agree[labels == k].mean()) for k in range(10)},
        "mean_teacher_confidence": float(probs.max(1).mean()),
        "seconds": round(time.time() - t0, 2),
    }
    grid(to_uint8(imgs), 10, spec.images_per_class).save(out / "samples.png")
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "manifest.json").write_text(json.dumps(
        manifest(dataclasses.asdict(spec), {"seeds": [seeds[0], seeds[-1]]}, job="world-check"), indent=2))
    yield Event("done", 1, 1, f"wrote {out}", {"results": results})
