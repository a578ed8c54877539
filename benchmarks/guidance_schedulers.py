"""Energy guidance through each scheduler of the Digits prior: does it lower the teacher's class
energy, and from which scale does a multistep solver overshoot?

For each scheduler, steps (8, 30) and guidance scale, 40 samples ("the digit k", k = 0..9, seeds
300-339, CFG 1, cheap mode, class energy, the whole trajectory) are drawn with and without
guidance at the same seeds, and the teacher's mean class energy of each set is recorded (lower is
closer to what the teacher knows).  Then the demo's own guidance (DDIM, 30 steps, CFG 3, the second
half of the trajectory) at scales 0.1 to 0.8.

    python -m benchmarks.guidance_schedulers --out benchmarks/results/guidance_schedulers.json   # ~4 min here
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

SCHEDULERS = ("ddim", "ddpm", "euler", "dpm++", "unipc", "pndm")
SCALES = (0.02, 0.05, 0.15, 0.4)


def run(schedulers=SCHEDULERS, steps_list=(8, 30), scales=SCALES, n: int = 40) -> dict:
    import numpy as np

    from prism_gui.engine.generation.energies import EnergySpec
    from prism_gui.engine.generation.load import load_generator
    from prism_gui.engine.generation.sampler import GuidanceSpec, sample, score_images
    from prism_gui.engine.teachers.load import load_teacher

    comp, teacher = load_generator("digits"), load_teacher("digits")
    targets = [i % 10 for i in range(n)]
    prompts = [f"the digit {k}" for k in targets]
    seeds = list(range(300, 300 + n))

    def energy(x) -> float:
        return round(float(np.mean([r["energies"]["class"] for r in score_images(teacher, x, targets,
                                                                                   EnergySpec())])), 4)

    rows = []
    for sch in schedulers:
        for steps in steps_list:
            plain = energy(sample(comp, prompts, seeds, steps=steps, scheduler=sch))
            for scale in scales:
                g = GuidanceSpec(EnergySpec({"class": 1.0}), scale=scale, window=(0.0, 1.0), mode="cheap")
                guided = energy(sample(comp, prompts, seeds, steps=steps, scheduler=sch, guidance=g, teacher=teacher,
                                       targets=targets))
                rows.append({"scheduler": sch, "steps": steps, "scale": scale, "plain_energy": plain,
                             "guided_energy": guided, "lowered": guided < plain})
                print(rows[-1], flush=True)
    demo = []
    if "ddim" in schedulers:
        plain = energy(sample(comp, prompts, seeds, steps=30, cfg=3.0, scheduler="ddim"))
        for scale in (0.1, 0.2, 0.4, 0.8):
            g = GuidanceSpec(EnergySpec({"class": 1.0}), scale=scale, window=(0.5, 1.0), mode="cheap")
            guided = energy(sample(comp, prompts, seeds, steps=30, cfg=3.0, scheduler="ddim", guidance=g,
                                   teacher=teacher, targets=targets))
            demo.append({"scale": scale, "plain_energy": plain, "guided_energy": guided, "lowered": guided < plain})
            print(demo[-1], flush=True)
    return {"rows": rows, "demo_setting": demo, "samples": n, "cfg": 1.0, "mode": "cheap", "energy": "class"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path)
    p.add_argument("--quick", action="store_true", help="two schedulers, 8 steps, two scales (the suite's smoke run)")
    a = p.parse_args(argv)
    t0 = time.time()
    res = run(("ddim", "pndm"), (8,), (0.05, 0.15), n=10) if a.quick else run()
    res["command"] = "python -m benchmarks.guidance_schedulers " + " ".join(sys.argv[1:] if argv is None else argv)
    res["wall_s"] = round(time.time() - t0, 1)
    if a.out:
        a.out.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
