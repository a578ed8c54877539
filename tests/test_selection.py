"""Oversample-and-select strategies (engine/analysis/selection.py) and their catalog action."""

import numpy as np
import pytest

from prism_gui.engine.analysis.selection import STRATEGIES, kcenter, select_ids, select_in_catalog


def _pool(per_class=30, classes=3, prompts=3, seed=0):
    rng = np.random.default_rng(seed)
    n = per_class * classes
    return {"class_index": np.repeat(np.arange(classes), per_class),
            "energy_class": rng.normal(size=n),
            "prompt": np.array([f"p{i % prompts}" for i in range(n)], dtype=object),
            "features": rng.normal(size=(n, 4))}


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_keeps_the_budget_per_class_from_that_class(name):
    cols = _pool()
    keep = select_ids(name, cols, per_class=10, candidates_per_class=24)
    assert len(keep) == 30 and len(set(keep.tolist())) == 30
    for c in range(3):
        rows = keep[cols["class_index"][keep] == c]
        assert len(rows) == 10
        first24 = np.flatnonzero(cols["class_index"] == c)[:24]
        assert set(rows.tolist()) <= set(first24.tolist())  # only the first candidates_per_class


def test_lowest_keeps_the_lowest_class_energies():
    cols = _pool()
    keep = select_ids("lowest", cols, per_class=5)
    for c in range(3):
        rows = np.flatnonzero(cols["class_index"] == c)
        best = rows[np.argsort(cols["energy_class"][rows])[:5]]
        assert set(keep[cols["class_index"][keep] == c].tolist()) == set(best.tolist())


def test_coverage_strategies_draw_from_the_low_energy_share_and_spread_out():
    cols = _pool(per_class=60, classes=1)
    # two tight clumps of features, the low-energy candidates in both
    cols["features"] = np.concatenate([np.zeros((30, 4)), np.ones((30, 4)) * 10]) + \
        np.random.default_rng(1).normal(scale=0.01, size=(60, 4))
    cols["energy_class"] = np.concatenate([np.arange(30) * 2.0, np.arange(30) * 2.0 + 1])  # interleaved
    for name in ("kcenter", "cluster"):
        keep = select_ids(name, cols, per_class=4)
        assert cols["energy_class"][keep].max() <= np.sort(cols["energy_class"])[39]  # the low-energy two thirds
        assert (keep < 30).any() and (keep >= 30).any(), name  # both clumps
    assert select_ids("lowest", cols, per_class=4).tolist() == [0, 30, 1, 31]


def test_kcenter_is_farthest_point_order():
    f = np.array([[0.0], [1.0], [10.0], [4.0]])
    assert kcenter(f, 3).tolist() == [0, 2, 3]


def test_quota_gives_every_prompt_a_share():
    cols = _pool(per_class=30, classes=1, prompts=3)
    cols["energy_class"] = np.where(cols["prompt"] == "p0", -10.0, 0.0) + np.arange(30) * 0.01
    assert {cols["prompt"][i] for i in select_ids("lowest", cols, per_class=6)} == {"p0"}
    kept = [cols["prompt"][i] for i in select_ids("quota", cols, per_class=6)]
    assert sorted(kept) == ["p0", "p0", "p1", "p1", "p2", "p2"]


def test_unknown_strategy_and_missing_features_are_named():
    cols = _pool()
    with pytest.raises(ValueError, match=r"unknown selection strategy 'best'.*lowest"):
        select_ids("best", cols, per_class=3)
    del cols["features"]
    with pytest.raises(ValueError, match="needs the candidates' teacher features"):
        select_ids("cluster", cols, per_class=3)


def test_select_in_catalog_rejects_the_rest_in_one_undoable_action(tmp_path, digits_teacher):
    from prism_gui.engine.data.catalog import Catalog

    rng = np.random.default_rng(0)
    with Catalog(tmp_path / "p") as cat:
        for i in range(12):
            cat.add_image("r", i, rng.integers(0, 255, (8, 8, 3), np.uint8), class_index=i % 2,
                          class_name=["zero", "one"][i % 2], prompt=f"p{i % 3}", seed=i, generator="g", settings={},
                          score={"energies": {"class": float(rng.normal())}})
        before = {r["id"]: r["status"] for r in cat.query(columns="id, status")}
        action = select_in_catalog(cat, 2, strategy="cluster", teacher=digits_teacher)
        rows = cat.query(columns="id, class_index, status")
        for c in range(2):
            assert sum(r["status"] != "reject" for r in rows if r["class_index"] == c) == 2
        with pytest.raises(ValueError, match="teacher's features: load a teacher first"):
            select_in_catalog(cat, 1, strategy="kcenter")
        assert cat.undo() == action
        assert {r["id"]: r["status"] for r in cat.query(columns="id, status")} == before
