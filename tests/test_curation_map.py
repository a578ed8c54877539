"""Curation at scale (issue 15): the teacher-feature cache, the map, near-duplicates and holes,
on real Digits generations."""

import shutil
from collections import deque

import numpy as np
import pytest
import torch

from prism_gui.engine.analysis.duplicates import duplicates_job, knn
from prism_gui.engine.analysis.embedding import map_job, separation
from prism_gui.engine.analysis.features import class_prototypes, features_job, teacher_fingerprint
from prism_gui.engine.analysis.holes import coverage_by_class, holes_job
from prism_gui.engine.data.catalog import Catalog
from prism_gui.engine.generation.job import GenerateSpec, plan, run_generation
from prism_gui.engine.prompts import expand, load_bank

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
PER_CLASS = 40


def _last(events):
    return deque(events, maxlen=1)[0]


@pytest.fixture(scope="module")
def generated(tmp_path_factory, digits_teacher, digits_prior):
    """A project with one DPE run of 40 images per class (15 steps, unguided)."""
    root = tmp_path_factory.mktemp("curation") / "p"
    ps = expand(DIGITS, load_bank("digits"), per_class=6, seed=0)
    spec = GenerateSpec(project=str(root), run="base", images_per_class=PER_CLASS, batch_size=100, seed=3,
                        sampler={"steps": 15, "cfg": 3.0})
    _last(run_generation(spec, ps, teacher=digits_teacher, components=digits_prior))
    return root


@pytest.fixture
def project(generated, tmp_path):
    """A fresh copy of the generated project (the tests curate and add runs)."""
    dst = tmp_path / "p"
    shutil.copytree(generated, dst, ignore=shutil.ignore_patterns("analysis"))
    return dst


def _copy_images(root, ids, run, noise=0.0, seed=0):
    """Plant copies of images ``ids`` into a new run ``run`` (item = position), with optional
    Gaussian pixel noise; returns the new ids in order."""
    rng = np.random.default_rng(seed)
    new = []
    with Catalog(root) as cat:
        for j, i in enumerate(ids):
            r = cat.get(i)
            x, _, _ = cat.load_images(ids=[i])
            a = ((x[0].permute(1, 2, 0).numpy() + 1) * 127.5)
            a = np.clip(a + rng.normal(scale=noise * 127.5, size=a.shape), 0, 255).round().astype(np.uint8)
            score = {"energy": r["energy"], "energies": r["energies"] or {}, "confidence": r["confidence"],
                     "entropy": r["entropy"]}
            new.append(cat.add_image(run, j, a, class_index=r["class_index"], class_name=r["class_name"],
                                     prompt=r["prompt"], seed=10_000 + j, generator="planted", settings={},
                                     score={**score, "energy": (r["energy"] or 0) + 1.0}))
    return new


# ---------------------------------------------------------------------------- features
def test_features_are_cached_by_run_and_item_and_computed_only_for_new_images(project, digits_teacher):
    t1 = _last(features_job(project, digits_teacher)).data["table"]
    assert len(t1) == 10 * PER_CLASS and t1.computed == len(t1)
    with Catalog(project) as cat:
        x, _, ids = cat.load_images(run="base")
    direct = digits_teacher.features(x).detach().numpy()
    order = np.argsort(ids)
    np.testing.assert_allclose(t1.features, direct[order], atol=2e-2 * np.abs(direct).max())  # float16 storage
    t2 = _last(features_job(project, digits_teacher)).data["table"]
    assert t2.computed == 0 and np.array_equal(t2.features, t1.features)  # the same numbers, from the cache
    _copy_images(project, t1.ids[:5].tolist(), "more")
    t3 = _last(features_job(project, digits_teacher)).data["table"]
    assert t3.computed == 5 and len(t3) == len(t1) + 5
    only = _last(features_job(project, digits_teacher, runs=["more"])).data["table"]
    assert len(only) == 5 and only.computed == 0
    with pytest.raises(ValueError, match=r"no images in run\(s\) \['nope'\].*base"):
        _last(features_job(project, digits_teacher, runs=["nope"]))


def test_a_teacher_with_other_weights_never_reads_the_cache(project, digits_teacher):
    import copy

    other = copy.deepcopy(digits_teacher)
    with torch.no_grad():
        next(other.model.parameters()).add_(0.01)
    assert teacher_fingerprint(other) != teacher_fingerprint(digits_teacher)
    _last(features_job(project, digits_teacher))
    assert _last(features_job(project, other)).data["table"].computed == 10 * PER_CLASS


def test_a_damaged_feature_cache_is_rebuilt_not_trusted(project, digits_teacher):
    from prism_gui.engine.analysis.features import feature_cache_path

    _last(features_job(project, digits_teacher))
    path = feature_cache_path(project, teacher_fingerprint(digits_teacher))
    path.write_bytes(b"not a zip")
    assert _last(features_job(project, digits_teacher)).data["table"].computed == 10 * PER_CLASS


# ---------------------------------------------------------------------------- the map
def test_the_umap_map_separates_the_classes_of_real_and_synthetic_images(project, digits_teacher):
    pm = _last(map_job(project, digits_teacher, method="umap", reference="digits-test")).data["map"]
    assert pm.method == "umap" and pm.real.sum() > 300 and (~pm.real).sum() == 10 * PER_CLASS
    # each point's 10 map neighbours are mostly of its own class (chance: 0.1)
    assert separation(pm.xy[pm.real], pm.labels[pm.real]) > 0.8
    assert separation(pm.xy[~pm.real], pm.labels[~pm.real]) > 0.8
    again = _last(map_job(project, digits_teacher, method="umap", reference="digits-test")).data["map"]
    assert not again.refit and np.array_equal(again.xy, pm.xy)  # from the cache


def test_the_pca_map_is_updated_in_place_when_images_are_added(project, digits_teacher):
    pm = _last(map_job(project, digits_teacher, method="pca")).data["map"]
    assert separation(pm.xy, pm.labels) > 0.4  # two linear dimensions of ten classes: coarser than UMAP
    with Catalog(project) as cat:
        ids = cat.ids(run="base")[:20]
    _copy_images(project, ids, "more", noise=0.02)
    up = _last(map_job(project, digits_teacher, method="pca")).data["map"]
    assert up.updated == 20 and not up.refit
    old = np.isin(up.ids, pm.ids)
    np.testing.assert_array_equal(up.xy[old], pm.xy)  # the points already mapped do not move
    near = {int(i): xy for i, xy in zip(up.ids, up.xy, strict=True)}
    new_ids = up.ids[~old]
    # a noisy copy lands next to its original
    gaps = [np.linalg.norm(near[int(n)] - near[int(o)]) for n, o in zip(sorted(new_ids), ids, strict=True)]
    spread = np.ptp(pm.xy, axis=0).max()
    assert np.median(gaps) < 0.05 * spread


def test_map_errors_name_the_fix(project, digits_teacher, monkeypatch):
    with pytest.raises(ValueError, match="unknown map method 'tsne'"):
        _last(map_job(project, digits_teacher, method="tsne"))
    import prism_gui.engine.analysis.embedding as emb

    monkeypatch.setattr(emb, "umap_available", lambda: False)
    with pytest.raises(ValueError, match="pip install umap-learn"):
        _last(map_job(project, digits_teacher, method="umap"))
    assert _last(map_job(project, digits_teacher, method="auto")).data["map"].method == "pca"  # the fallback


# ---------------------------------------------------------------------------- near-duplicates
def test_knn_numpy_and_faiss_agree():
    pytest.importorskip("faiss")
    x = np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32)
    x[7] = x[3]  # an exact copy: each finds the other first, never itself
    for metric in ("cosine", "euclidean"):
        d1, i1 = knn(x, 5, metric=metric, use_faiss=False)
        d2, i2 = knn(x, 5, metric=metric, use_faiss=True)
        np.testing.assert_allclose(d1, d2, atol=1e-4)
        assert (i1 == i2).mean() > 0.99
        assert i1[3, 0] == 7 and i1[7, 0] == 3 and not (i1 == np.arange(300)[:, None]).any()


def test_planted_near_duplicates_are_found_and_rejected_keeping_the_lowest_energy(project, digits_teacher):
    with Catalog(project) as cat:
        originals = cat.ids(run="base", sort="id")[::37][:10]
    exact = _copy_images(project, originals[:5], "copies")
    noisy = _copy_images(project, originals[5:], "noisy", noise=0.02, seed=1)
    res = _last(duplicates_job(project, digits_teacher)).data["result"]
    planted = list(zip(originals, exact + noisy, strict=True))
    with Catalog(project) as cat:
        energy = {r["id"]: r["energy"] for r in cat.query(columns="id, energy")}
    for o, c in planted:
        g = next((g for g in res["groups"] if c in g["ids"]), None)
        assert g is not None and o in g["ids"] and c in g["reject"], (o, c)
        assert energy[g["keep"]] == min(energy[i] for i in g["ids"])  # the copy (energy + 1) is never kept
    others = [g for g in res["groups"] if not {c for _, c in planted} & set(g["ids"])]
    assert len(others) <= 0.05 * 10 * PER_CLASS  # few groups besides the planted ones
    for g in res["groups"]:  # every member is near its keeper (groups never chain through similar images)
        assert g["max_distance"] <= res["class_thresholds"][g["class"]] + 1e-5
    ev = _last(duplicates_job(project, digits_teacher, reject=True))
    with Catalog(project) as cat:
        rejected = set(cat.ids(statuses=["reject"]))
        assert {c for _, c in planted} <= rejected
        assert rejected == {i for g in ev.data["result"]["groups"] for i in g["reject"]}
        assert cat.undo() == ev.data["result"]["action"]  # one undoable step
        assert cat.count(statuses=["reject"]) == 0
    # rejected images are out of the next search
    _last(duplicates_job(project, digits_teacher, reject=True))
    again = _last(duplicates_job(project, digits_teacher)).data["result"]
    assert not {i for g in again["groups"] for i in g["ids"]} & rejected


def test_duplicate_thresholds_are_checked(project, digits_teacher):
    with pytest.raises(ValueError, match="cosine distance >= 0"):
        _last(duplicates_job(project, digits_teacher, threshold=-1))
    with pytest.raises(ValueError, match="ratio must be > 0"):
        _last(duplicates_job(project, digits_teacher, ratio=0))
    loose = _last(duplicates_job(project, digits_teacher, threshold=1.0)).data["result"]
    assert loose["duplicates"] > 0.8 * 10 * PER_CLASS  # every searched neighbour is "near"


# ---------------------------------------------------------------------------- holes
def _real(digits_teacher, project):
    from prism_gui.engine.analysis.features import reference_features

    return reference_features(project, digits_teacher, "digits-test")


def test_holes_find_a_region_left_out_and_generate_more_here_covers_it(project, digits_teacher, digits_prior):
    from sklearn.cluster import KMeans

    from prism_gui.engine.project.app_jobs import fill_holes_job

    c = 3
    real, real_y = _real(digits_teacher, project)
    table = _last(features_job(project, digits_teacher)).data["table"]
    rc = real[real_y == c]
    km = KMeans(2, n_init=4, random_state=0).fit(rc)
    # leave one region of class 3 out: reject the synthetic threes nearest to its centre
    syn = table.features[table.labels == c]
    region = np.argmin(np.linalg.norm(syn[:, None] - km.cluster_centers_[None], axis=2), axis=1) == 0
    with Catalog(project) as cat:
        cat.set_status(table.ids[table.labels == c][region].tolist(), "reject", label="plant a hole")
    res = _last(holes_job(project, digits_teacher, reference="digits-test")).data["result"]
    before = res["per_class"][c]["coverage"]
    mine = [g for g in res["regions"] if g["class"] == c]
    assert mine and mine[0]["prompts"] and mine[0]["nearest_ids"]
    # the uncovered threes are mostly the left-out region's
    unc = np.flatnonzero((real_y == c) & ~res["covered"])
    assert (km.predict(real[unc]) == 0).mean() > 0.6
    others = np.mean([v["coverage"] for k, v in res["per_class"].items() if k != c])
    assert before < others  # class 3 is now the least covered ...
    ev = _last(fill_holes_job(project, digits_teacher, mine, per_class=60, components=digits_prior))
    assert ev.data["run"] == "fill-1" and ev.data["classes"] == [c]
    with Catalog(project) as cat:
        assert cat.count(run="fill-1") == 60 and set(cat.column("class_index", run="fill-1")) == {c}
        prompts = {r["prompt"] for r in cat.query(columns="prompt", run="fill-1")}
    assert prompts <= {p["prompt"] for g in mine for p in g["prompts"]}
    after = _last(holes_job(project, digits_teacher, reference="digits-test")).data["result"]["per_class"][c]
    assert after["coverage"] > before + 0.1, (before, after["coverage"])  # ... and the fill covers it


def test_coverage_matches_the_metrics_coverage(project, digits_teacher):
    from prism_gui.engine.analysis.prdc import prdc

    real, real_y = _real(digits_teacher, project)
    table = _last(features_job(project, digits_teacher)).data["table"]
    _, per = coverage_by_class(real, real_y, table.features, table.labels, k=5)
    for c in (0, 7):
        ref = prdc(real[real_y == c], table.features[table.labels == c], k=5)["coverage"]
        assert per[c]["coverage"] == pytest.approx(ref, abs=1e-9)


def test_without_a_real_set_holes_use_the_class_prototypes(project, digits_teacher):
    w, b = class_prototypes(digits_teacher)
    assert w.shape[0] == 10 and b.shape == (10,)
    with Catalog(project) as cat:  # class 5 has no images left
        cat.set_status(cat.ids(classes=[5]), "reject")
    res = _last(holes_job(project, digits_teacher)).data["result"]
    assert res["reference"] == "prototypes"
    assert res["per_class"][5]["synthetic"] == 0 and res["per_class"][5]["coverage"] == 0
    assert res["regions"][0]["class"] == 5
    # the prototypes' verdict is the teacher's: its agreement with the images' classes
    with Catalog(project) as cat:
        for c in (0, 3):
            agree = np.array([r["correct"] for r in cat.query(columns="correct", classes=[c])])
            assert res["per_class"][c]["coverage"] == pytest.approx(agree.mean(), abs=0.03)


def test_fill_names_its_problems(project, digits_teacher):
    from prism_gui.engine.project.app_jobs import fill_holes_job

    with pytest.raises(ValueError, match="choose at least one"):
        _last(fill_holes_job(project, digits_teacher, []))
    with pytest.raises(ValueError, match="no prompt in the project's prompt set: add prompts"):
        _last(fill_holes_job(project, digits_teacher, [{"class": 1, "size": 3, "prompts": []}]))
    with pytest.raises(ValueError, match="already has a run 'base'"):
        _last(fill_holes_job(project, digits_teacher, [{"class": 1, "size": 3, "prompts": [{"prompt": "a one",
                                                                                              "count": 1}]}],
                             run="base"))
    assert not (project / "runs" / "base" / "prompts.json").exists() or \
        "holes" not in (project / "runs" / "base" / "prompts.json").read_text()  # nothing overwritten
    with pytest.raises(ValueError, match="no generation run 'x'"):
        _last(fill_holes_job(project, digits_teacher, [{"class": 1, "size": 3, "prompts": [{"prompt": "a one",
                                                                                              "count": 1}]}],
                             base_run="x"))


def test_generate_spec_classes_plans_only_those():
    ps = expand(DIGITS, load_bank("digits"), per_class=2, seed=0)
    items = plan(ps, 4, seed=1, classes=[2, 7])
    assert [it.class_index for it in items] == [2] * 4 + [7] * 4
    with pytest.raises(ValueError, match="not class indices"):
        plan(ps, 4, seed=1, classes=[12])
    with pytest.raises(ValueError, match="classes is empty"):
        GenerateSpec(project="p", classes=[])
    assert GenerateSpec(project="p", classes=[7, 2, 7]).classes == [2, 7]


# ---------------------------------------------------------------------------- the CLI
def test_cli_map_duplicates_holes_write_json_and_png(project, capsys):
    import json

    from prism_gui.cli import main

    out = project / "out"
    assert main(["map", str(project), "--teacher", "digits", "--method", "pca", "--reference", "digits-test",
                 "--color", "energy", "--out", str(out)]) == 0
    doc = json.loads((out / "map.json").read_text())
    assert doc["method"] == "pca" and len(doc["points"]) > 10 * PER_CLASS
    assert {"id", "x", "y", "class", "real", "run", "status"} <= set(doc["points"][0])
    assert (out / "map.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["duplicates", str(project), "--teacher", "digits", "--out", str(out)]) == 0
    dup = json.loads((out / "duplicates.json").read_text())
    assert {"groups", "density", "class_thresholds", "duplicates"} <= set(dup)
    assert (out / "duplicates.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["holes", str(project), "--teacher", "digits", "--reference", "digits-test", "--out", str(out),
                 "--fill", "5", "--fill-classes", "three"]) == 0
    holes = json.loads((out / "holes.json").read_text())
    assert holes["reference"] == "real" and set(holes["per_class"]) == {str(c) for c in range(10)}
    assert (out / "holes.png").read_bytes()[:4] == b"\x89PNG"
    text = capsys.readouterr().out
    assert "into run 'fill-1'" in text
    with Catalog(project) as cat:
        assert cat.count(run="fill-1") == 5 and set(cat.column("class_index", run="fill-1")) == {3}


@pytest.mark.parametrize("args, message", [
    (["map", "{nowhere}"], "is not a PRISM project"),
    (["map", "{p}"], "has no project.json naming its teacher: add --teacher"),
    (["map", "{p}", "--teacher", "digits", "--runs", "nope"], r"has no generation run\(s\) \['nope'\]"),
    (["holes", "{p}", "--teacher", "digits", "--reference", "/no/such/folder"], "neither a folder nor a built-in"),
    (["holes", "{p}", "--teacher", "digits", "--fill", "0"], "--fill must be at least 1"),
    (["holes", "{p}", "--teacher", "digits", "--fill", "2", "--fill-classes", "eleven"],
     "'eleven' is not a class of the teacher"),
    (["duplicates", "{p}", "--teacher", "digits", "--threshold", "-0.5"], "cosine distance >= 0"),
    (["duplicates", "{p}", "--teacher", "digits", "--ratio", "0"], "--ratio must be > 0"),
])
def test_cli_bad_input_is_named(project, tmp_path, args, message):
    import re

    from prism_gui.cli import main

    argv = [a.format(p=project, nowhere=tmp_path / "nowhere") for a in args]
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert re.search(message, str(e.value)), str(e.value)


def test_features_too_large_for_float16_are_stored_as_float32():
    from prism_gui.engine.analysis.features import _storable

    assert _storable(np.ones((2, 3), np.float32)).dtype == np.float16
    big = np.array([[1e5, -2.0]], np.float32)
    assert _storable(big).dtype == np.float32 and np.isfinite(_storable(big)).all()


def test_a_region_without_proposals_takes_its_class_prompts_from_the_project(project, digits_teacher, digits_prior):
    """A class with no image the teacher agrees with is exactly the hole to fill: its region has no
    proposals, and the fill takes the class's prompts from the project's prompt set."""
    from prism_gui.engine.project.app_jobs import fill_holes_job

    ps = expand(DIGITS, load_bank("digits"), per_class=3, seed=1)
    ps.save(project / "prompts.json")
    regions = [{"class": 1, "size": 3, "prompts": []}, {"class": 2, "size": 2, "prompts": [{"prompt": "a two",
                                                                                             "count": 2}]}]
    _last(fill_holes_job(project, digits_teacher, regions, per_class=4, components=digits_prior))
    with Catalog(project) as cat:
        rows = cat.query(columns="class_index, prompt", run="fill-1")
    assert sorted(r["class_index"] for r in rows) == [1] * 4 + [2] * 4
    assert {r["prompt"] for r in rows if r["class_index"] == 1} <= {p.text for p in ps.for_class(1)}


def test_a_collapsed_class_shows_its_copies_under_the_set_wide_threshold():
    from prism_gui.engine.analysis.duplicates import find_duplicates

    rng = np.random.default_rng(0)
    spread = rng.random((60, 32)).astype(np.float32)  # class 0: distinct images
    one = rng.random(32).astype(np.float32)
    collapsed = one + 1e-3 * rng.normal(size=(60, 32)).astype(np.float32)  # class 1: copies of one picture
    x = np.concatenate([spread, collapsed])
    y = np.r_[np.zeros(60, int), np.ones(60, int)]
    res = find_duplicates(x, y, np.arange(120), np.arange(120, dtype=float))
    assert res["class_thresholds"][1] <= res["class_thresholds"][0]
    rejected = {i for g in res["groups"] for i in g["reject"]}
    assert len(rejected & set(range(60, 120))) > 30 and not rejected & set(range(60))


def test_holes_edge_cases_one_real_image_and_identical_uncovered_images():
    from prism_gui.engine.analysis.holes import Pool, find_holes

    rng = np.random.default_rng(0)
    real = np.concatenate([rng.random((20, 8)), np.ones((1, 8)), np.zeros((6, 8))]).astype(np.float32)
    ry = np.r_[np.zeros(20, int), np.ones(1, int), np.full(6, 2)]  # class 1: one image; class 2: six copies
    syn = np.concatenate([real[:20] + 1e-4, np.ones((1, 8)) + 1e-4, 5 + rng.random((3, 8))]).astype(np.float32)
    sy = np.r_[np.zeros(20, int), np.ones(1, int), np.full(3, 2)]
    ids = np.arange(len(syn))
    pool = Pool(syn, sy, ids, {int(i): f"p{i}" for i in ids})
    res = find_holes(syn, sy, ids, pool, real=real, real_labels=ry, regions=3)
    assert res["per_class"][1]["coverage"] == 1.0  # a synthetic copy right on the one real image covers it
    mine = [g for g in res["regions"] if g["class"] == 2]
    assert len(mine) == 1 and mine[0]["size"] == 6  # six identical uncovered images: one region, none empty
