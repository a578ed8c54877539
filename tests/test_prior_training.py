import pytest

from prism_gui.engine.digits.prior import PriorTrainSpec, train_prior
from prism_gui.engine.generation.load import load_generator
from prism_gui.engine.generation.sampler import sample
from prism_gui.engine.jobs import Cancelled, CancelToken


def test_tiny_training_run_saves_a_loadable_prior(tmp_path):
    spec = PriorTrainSpec(out_dir=str(tmp_path / "p"), steps=26, batch_size=8, corpus_size=40, save_every=0,
                          warmup=5)
    events = list(train_prior(spec))
    assert events[-1].message == "saved"
    assert any(e.stage == "train prior" and "loss" in e.data for e in events)
    card = events[-1].data["card"]
    assert card["training"]["steps_done"] == 26
    comp = load_generator(tmp_path / "p")
    assert sample(comp, ["the digit 1"], [0], steps=2).shape == (1, 1, 8, 8)


def test_cancel_stops_training_and_saves_nothing(tmp_path):
    token = CancelToken()
    spec = PriorTrainSpec(out_dir=str(tmp_path / "p"), steps=1000, batch_size=4, corpus_size=20,
                          save_every=0)
    gen = train_prior(spec, token)
    next(gen)
    token.cancel()
    with pytest.raises(Cancelled):
        for _ in gen:
            pass
    assert not (tmp_path / "p").exists()
