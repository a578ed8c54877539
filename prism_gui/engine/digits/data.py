"""The Digits world's real data: scikit-learn's handwritten digits, split once.

The split (stratified, seeded) lives in ``resources/digits/split.json`` so it never changes
under the project's feet.  Data-free runs never touch the train split; the test split is only
for evaluation and reference metrics.
"""

from __future__ import annotations

import functools
import json

import numpy as np

from prism_gui.resources import resource_path

CLASS_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SPLIT_SEED = 0
TEST_FRACTION = 0.4


def make_split(seed: int = SPLIT_SEED, test_fraction: float = TEST_FRACTION) -> dict:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    y = load_digits().target
    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=test_fraction, stratify=y, random_state=seed)
    return {"seed": seed, "test_fraction": test_fraction, "train": sorted(int(i) for i in tr),
            "test": sorted(int(i) for i in te),
            "command": "python -m prism_gui.engine.digits.train_teacher --write-split"}


@functools.lru_cache(maxsize=1)
def _split() -> dict:
    path = resource_path("digits", "split.json")
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: recreate it with "
            "`python -m prism_gui.engine.digits.train_teacher --write-split`.")
    return json.loads(path.read_text())


@functools.lru_cache(maxsize=2)
def load_split(which: str) -> tuple[np.ndarray, np.ndarray]:
    """``which`` in {"train", "test"}: images (N, 8, 8) float32 in 0..16 and labels (N,)."""
    if which not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {which!r}")
    from sklearn.datasets import load_digits

    d = load_digits()
    idx = np.asarray(_split()[which])
    return d.images[idx].astype(np.float32), d.target[idx].astype(np.int64)


def to_unit(images_0_16) -> np.ndarray:
    """Digits pixel values 0..16 -> [0, 1], the teacher's input range before normalization."""
    return np.asarray(images_0_16, dtype=np.float32) / 16.0
