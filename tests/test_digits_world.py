import json

import numpy as np
import pytest
import torch

from prism_gui.engine.digits import data
from prism_gui.engine.teachers.load import load_teacher
from prism_gui.resources import resource_path


def test_split_is_stratified_disjoint_and_recorded():
    split = json.loads(resource_path("digits", "split.json").read_text())
    tr, te = set(split["train"]), set(split["test"])
    assert not tr & te and len(tr | te) == 1797
    _, ytr = data.load_split("train")
    _, yte = data.load_split("test")
    assert len(yte) == round(1797 * data.TEST_FRACTION)
    ftr, fte = np.bincount(ytr) / len(ytr), np.bincount(yte) / len(yte)
    assert np.abs(ftr - fte).max() < 0.01
    # the recorded split is the one the seeded recipe makes
    assert data.make_split()["test"] == split["test"]


def test_bad_split_name_is_a_clear_error():
    with pytest.raises(ValueError, match="'train' or 'test'"):
        data.load_split("validation")


def test_shipped_teacher_meets_the_bar_and_its_card_is_true():
    t = load_teacher("digits")
    x, y = data.load_split("test")
    with torch.no_grad():
        pred = t.logits(torch.from_numpy(x).unsqueeze(1) / 8 - 1).argmax(1).numpy()
    acc = float((pred == y).mean())
    assert acc >= 0.97
    assert abs(acc - t.card["test_split"]["accuracy"]) < 1e-6
    assert t.has_batchnorm and t.input_size == (1, 8, 8) and t.num_classes == 10
    assert t.class_names[3] == "three"
    assert "command" in t.card["training"] and t.card["training"]["seconds"] > 0


def test_digits_student_is_registered_in_timm_and_smaller_than_the_teacher():
    import timm

    import prism_gui.engine.digits.models  # noqa: F401

    s = timm.create_model("digits_student", num_classes=10)
    t = timm.create_model("digits_cnn", num_classes=10)
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(s) * 5 < n(t)
    assert s(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert s.forward_head(s.forward_features(torch.zeros(2, 1, 8, 8)), pre_logits=True).shape == (2, s.num_features)
    with pytest.raises(ValueError, match="no downloadable weights"):
        timm.create_model("digits_student", pretrained=True)
