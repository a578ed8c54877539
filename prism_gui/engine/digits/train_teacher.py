"""Train the Digits world's teacher (``digits_cnn``) on the teacher-train split, seeded.

    python -m prism_gui.engine.digits.train_teacher [--out resources/digits_teacher]

Writes ``model.safetensors`` and ``card.json`` (architecture, input size, normalization,
class names, test accuracy, timing, the command).  ``--write-split`` first re-creates
``resources/digits/split.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import timm
import torch

from prism_gui.engine.digits import data
from prism_gui.engine.digits.classifier import fit_classifier, predict
from prism_gui.engine.digits.models import DIGITS_MEAN, DIGITS_STD
from prism_gui.engine.versions import package_versions
from prism_gui.resources import resource_path


def train_teacher(out: Path, seed: int = 0, epochs: int = 80, log=print) -> dict:
    import safetensors.torch

    t0 = time.time()
    torch.manual_seed(seed)
    xtr, ytr = data.load_split("train")
    xte, yte = data.load_split("test")
    model = timm.create_model("digits_cnn", num_classes=10)
    info = fit_classifier(model, data.to_unit(xtr), ytr, mean=DIGITS_MEAN, std=DIGITS_STD,
                          epochs=epochs, seed=seed, log=None)
    acc_tr = float((predict(model, data.to_unit(xtr), mean=DIGITS_MEAN, std=DIGITS_STD).argmax(1) == ytr).mean())
    probs = predict(model, data.to_unit(xte), mean=DIGITS_MEAN, std=DIGITS_STD)
    acc = float((probs.argmax(1) == yte).mean())
    per_class = {data.CLASS_NAMES[k]: float((probs.argmax(1)[yte == k] == k).mean()) for k in range(10)}
    out.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                                str(out / "model.safetensors"))
    card = {
        "name": "PRISM Digits teacher",
        "architecture": "digits_cnn",
        "parameters": sum(p.numel() for p in model.parameters()),
        "input_size": [1, 8, 8],
        "pixel_range": "values/16, i.e. [0, 1] before normalization",
        "mean": list(DIGITS_MEAN),
        "std": list(DIGITS_STD),
        "num_classes": 10,
        "class_names": list(data.CLASS_NAMES),
        "class_descriptions": [f"the handwritten digit {w} ({k})" for k, w in enumerate(data.CLASS_NAMES)],
        "has_batchnorm": True,
        "train_split": {"n": len(ytr), "accuracy": acc_tr},
        "test_split": {"n": len(yte), "accuracy": acc, "per_class_accuracy": per_class},
        "training": {"seed": seed, "epochs": epochs, "optimizer": "AdamW one-cycle lr 3e-3",
                     "augmentation": "random affine: rotation 10 deg, scale 10%, shift 1 px",
                     "seconds": round(time.time() - t0, 1), "threads": torch.get_num_threads(),
                     "command": f"python -m prism_gui.engine.digits.train_teacher --seed {seed} --epochs {epochs}",
                     "versions": package_versions()},
        "data": "sklearn.datasets.load_digits, split in resources/digits/split.json",
    }
    (out / "card.json").write_text(json.dumps(card, indent=2))
    log(f"teacher test accuracy {acc:.4f} ({info['seconds']}s) -> {out}")
    return card


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=resource_path("digits_teacher"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=80)
    p.add_argument("--write-split", action="store_true")
    a = p.parse_args(argv)
    if a.write_split:
        path = resource_path("digits", "split.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data.make_split()))
        data._split.cache_clear()
        data.load_split.cache_clear()
    np.random.seed(a.seed)
    train_teacher(a.out, a.seed, a.epochs)


if __name__ == "__main__":
    main()
