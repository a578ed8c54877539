"""The shipped Digits prior: loadable like Stable Diffusion, and good enough to build on."""

import json

import pytest
import torch

from prism_gui.engine.digits.evaluate_prior import evaluate_prior
from prism_gui.engine.generation.load import GeneratorLoadError, load_generator
from prism_gui.engine.generation.sampler import sample
from prism_gui.resources import resource_path

PRIOR = resource_path("digits_prior")


def test_prior_is_a_diffusers_style_folder_with_a_card():
    for sub in ("unet", "scheduler", "text_encoder", "tokenizer"):
        assert (PRIOR / sub).is_dir(), sub
    index = json.loads((PRIOR / "model_index.json").read_text())
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"]
    card = json.loads((PRIOR / "card.json").read_text())
    assert card["training"]["total_minutes"] <= 60 and "quality" in card  # the card carries its measurements
    size = sum(p.stat().st_size for p in PRIOR.rglob("*") if p.is_file())
    assert size < 20 * 2**20


def test_prior_loads_through_the_generic_loader_and_samples_deterministically():
    comp = load_generator("digits")
    assert comp.vae is None and comp.resolution == 8 and comp.channels == 1 and comp.world == "digits"
    a = sample(comp, ["the digit 3", "a bold seven"], [1, 2], steps=8)
    b = sample(comp, ["the digit 3", "a bold seven"], [1, 2], steps=8)
    assert a.shape == (2, 1, 8, 8)
    assert torch.equal(a, b)
    assert a.min() >= -1 and a.max() <= 1


def test_sample_needs_one_seed_per_prompt():
    comp = load_generator("digits")
    with pytest.raises(ValueError, match="one seed per prompt"):
        sample(comp, ["the digit 1"], [1, 2], steps=2)


def test_missing_generator_folder_is_a_clear_error(tmp_path):
    with pytest.raises(GeneratorLoadError, match="not found"):
        load_generator(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GeneratorLoadError, match="no unet/ subfolder"):
        load_generator(tmp_path / "empty")


def test_uncached_hub_id_is_refused_offline_not_downloaded():
    with pytest.raises(GeneratorLoadError, match="not in the local Hugging Face cache"):
        load_generator("prism-test/definitely-not-cached")


def test_prior_quality_measured_on_a_small_sample():
    """The quality bar measured here, not read from the card: 20 plain-prompt samples per class are
    judged as prompted (>= 80% per class; the long test below takes 200 per class and 90%), the
    teacher's accuracy on them stays within 15 points of its accuracy on renders, bold has more ink."""
    rep = evaluate_prior(PRIOR, n_per_class=20, n_judge=2000, n_holdout=500, n_attr=10)
    assert rep["judge"]["accuracy_on_heldout_renders"] >= 0.9
    per_class = {k: v["judge_accuracy_on_samples"] for k, v in rep["per_class"].items()}
    assert min(per_class.values()) >= 0.8, per_class
    assert abs(rep["teacher_gap_points"]) <= 15, rep["teacher_gap_points"]
    assert rep["ink_bold"] > rep["ink_thin"]


@pytest.mark.long
def test_prior_quality_bar_on_shipped_weights():
    """200 plain-prompt samples per class: judged as prompted >= 90% per class; the teacher's
    accuracy on them within 10 points of its accuracy on renders; bold carries more ink than thin."""
    rep = evaluate_prior(PRIOR, n_per_class=200)
    assert rep["judge"]["accuracy_on_heldout_renders"] >= 0.9
    per_class = {k: v["judge_accuracy_on_samples"] for k, v in rep["per_class"].items()}
    assert min(per_class.values()) >= 0.9, per_class
    assert abs(rep["teacher_gap_points"]) <= 10, rep["teacher_gap_points"]
    assert rep["ink_bold"] > rep["ink_thin"]
    bold_wins = sum(v["ink_bold"] > v["ink_thin"] for v in rep["per_class"].values())
    assert bold_wins >= 9
