"""Train the Digits world's diffusion prior from scratch (seeded).

    python -m prism_gui.engine.digits.train_prior [--steps N] [--out DIR]

Writes a diffusers-style folder with ``card.json``; then run
``python -m prism_gui.engine.digits.evaluate_prior`` to add the quality report and grids.
"""

from __future__ import annotations

import argparse
import dataclasses

from prism_gui.engine.digits.prior import PriorTrainSpec, train_prior
from prism_gui.engine.jobs import run_to_completion


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = PriorTrainSpec()
    for f in dataclasses.fields(PriorTrainSpec):
        p.add_argument("--" + f.name.replace("_", "-"), type=type(getattr(defaults, f.name)),
                       default=getattr(defaults, f.name))
    args = p.parse_args(argv)
    spec = PriorTrainSpec(**{f.name: getattr(args, f.name) for f in dataclasses.fields(PriorTrainSpec)})
    run_to_completion(train_prior(spec))
    print(f"saved to {spec.out_dir}")


if __name__ == "__main__":
    main()
