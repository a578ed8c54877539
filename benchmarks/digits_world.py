"""Throughput of the Digits world's building blocks on this machine.

    python benchmarks/digits_world.py [--quick] [--out benchmarks/results/digits_world.json]

Measures (each alone, one after another): printed-digit rendering (images/s), the prior's
plain sampling (images/s at the card's sampler settings), one prior training step (s/step,
batch 128) and teacher inference (images/s).  Run it on an idle machine: a second busy
process halves these numbers on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch


def timed(fn, repeat: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def run(quick: bool = False) -> dict:
    from prism_gui.engine.digits import render
    from prism_gui.engine.digits.evaluate_prior import sampling_defaults
    from prism_gui.engine.digits.prior import build_scheduler
    from prism_gui.engine.generation.load import load_generator
    from prism_gui.engine.generation.sampler import sample
    from prism_gui.engine.teachers.load import load_teacher
    from prism_gui.resources import resource_path

    n_render = 20 if quick else 500
    batch = 10 if quick else 200
    sampling = sampling_defaults(resource_path("digits_prior"))
    if quick:
        sampling = {**sampling, "steps": 3}
    res: dict = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": torch.get_num_threads(),
                             "torch": torch.__version__}, "quick": quick, "sampling": sampling}
    t = timed(lambda: render.render_corpus(n_render, 1), 1)
    res["render_images_per_s"] = round(n_render / t, 1)

    comp = load_generator("digits")
    prompts = [f"the digit {i % 10}" for i in range(batch)]
    seeds = list(range(batch))
    t = timed(lambda: sample(comp, prompts, seeds, steps=sampling["steps"], cfg=sampling["cfg"],
                             scheduler=sampling["scheduler"]), 1 if quick else 3)
    res["prior_sampling_images_per_s"] = round(batch / t, 1)

    unet = comp.unet.train().requires_grad_(True)
    opt = torch.optim.AdamW(unet.parameters(), 1e-4)
    sched = build_scheduler()
    bs = 16 if quick else 128
    x = torch.randn(bs, 1, 8, 8)
    cond = torch.randn(bs, comp.tokenizer.model_max_length, comp.text_encoder.config.hidden_size)

    def step():
        tt = torch.randint(0, 1000, (bs,))
        loss = (unet(sched.add_noise(x, x, tt), tt, cond).sample - x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    res["prior_train_seconds_per_step"] = round(timed(step, 2 if quick else 10), 4)
    res["prior_train_batch"] = bs

    teacher = load_teacher("digits")
    imgs = torch.rand(2048 if not quick else 64, 1, 8, 8) * 2 - 1

    def infer():
        with torch.no_grad():
            teacher.logits(imgs)

    res["teacher_images_per_s"] = round(len(imgs) / timed(infer, 2 if quick else 10), 1)
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes, for the test suite")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    res = run(a.quick)
    res["command"] = "python benchmarks/digits_world.py" + (" --quick" if a.quick else "")
    text = json.dumps(res, indent=2)
    print(text)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
