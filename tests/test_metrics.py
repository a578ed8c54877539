import numpy as np
import pytest

from prism_gui.engine.analysis.prdc import prdc, prdc_per_class


def test_identical_sets_have_full_precision_and_recall():
    x = np.random.default_rng(0).normal(size=(200, 8))
    m = prdc(x, x, k=5)
    assert m["precision"] == 1.0 and m["recall"] == 1.0 and m["coverage"] == 1.0
    assert m["density"] == pytest.approx(1.0 + 5 / 5 * 0, abs=0.5)


def test_collapsed_set_is_precise_but_has_no_recall():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(500, 4))
    fake = real[:3].repeat(40, axis=0) + rng.normal(scale=0.01, size=(120, 4))  # mode collapse onto 3 points
    m = prdc(real, fake, k=5)
    assert m["precision"] > 0.9 and m["recall"] < 0.3 and m["coverage"] < 0.3


def test_shifted_set_has_low_precision():
    rng = np.random.default_rng(2)
    m = prdc(rng.normal(size=(300, 4)), rng.normal(size=(300, 4)) + 6.0, k=5)
    assert m["precision"] < 0.05 and m["density"] < 0.05


def test_per_class_and_errors():
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(60, 3)), rng.normal(size=(60, 3))
    y = np.repeat([0, 1], 30)
    out = prdc_per_class(real, y, fake, y, k=3, class_names=["a", "b"])
    assert set(out["per_class"]) == {"a", "b"} and "mean_per_class" in out
    with pytest.raises(ValueError, match="need more than k=5"):
        prdc(real[:3], fake, k=5)
