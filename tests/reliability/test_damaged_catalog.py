"""A damaged catalog is named on open and rebuilt from the images, the runs' manifests and the
curation journal, with every row, score and status back; the damaged file is kept."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from prism_gui.engine.data.catalog import Catalog, CatalogDamaged, CatalogError
from prism_gui.engine.data.recover import check_catalog, rebuild_catalog
from prism_gui.engine.generation.job import GenerateSpec, run_generation
from prism_gui.engine.project.project import Project
from prism_gui.engine.prompts import expand, load_bank

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def state(root):
    with Catalog(root, create=False) as cat:
        return {(r["run"], r["item"]): (r["seed"], r["prompt"], r["class_index"], r["class_name"], r["energy"],
                                        r["energy_class"], r["confidence"], r["status"], r["path"], r["thumb"])
                for r in cat.query()}


@pytest.fixture(scope="module")
def curated(tmp_path_factory, digits_teacher, digits_prior):
    """A project with two generated runs and a history of curation (rejects, keeps, an undo)."""
    root = tmp_path_factory.mktemp("curated") / "p"
    Project.create(root)
    ps = expand(DIGITS, load_bank("digits"), per_class=2, seed=0)
    for run in ("a", "b"):
        spec = GenerateSpec(project=str(root), run=run, images_per_class=2, batch_size=10, sampler={"steps": 4})
        for _ in run_generation(spec, ps, teacher=digits_teacher, components=digits_prior):
            pass
    with Catalog(root) as cat:
        ids = cat.ids(sort="id")
        cat.set_status(ids[:6], "reject")
        cat.set_status(ids[6:9], "keep")
        cat.set_status(ids[9:12], "reject")
        cat.undo()  # ids[9:12] back to unreviewed
        cat.reject_beyond(float(np.median(cat.column("energy"))), run="b")
    return root, state(root)


def _truncate(db):
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])


def _zero(db):
    db.write_bytes(b"")


def _scramble(db):
    data = bytearray(db.read_bytes())
    rng = np.random.default_rng(0)
    data[4096:-1] = rng.integers(0, 256, len(data) - 4097, dtype=np.uint8).tobytes()
    db.write_bytes(bytes(data))


def _header(db):
    data = bytearray(db.read_bytes())
    data[:16] = b"not a database!!"
    db.write_bytes(bytes(data))


def _delete(db):
    db.unlink()


DAMAGE = {"truncated": _truncate, "empty": _zero, "random bytes": _scramble, "bad header": _header,
          "deleted": _delete}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_each_kind_of_damage_is_named_and_the_rebuild_brings_everything_back(curated, tmp_path, kind):
    src, before = curated
    root = tmp_path / "p"
    shutil.copytree(src, root)
    DAMAGE[kind](root / "catalog.sqlite")
    assert check_catalog(root) is not None
    with pytest.raises(CatalogDamaged) as e:
        Project.open(root)
    assert "repair-catalog" in str(e.value) and "images are intact" in str(e.value)
    report = rebuild_catalog(root)
    assert report["images"] == len(before) == 40 and report["unreadable_images"] == 0 and report["runs"] == 2
    after = state(root)
    assert after == before  # rows, scores, paths and every curation status
    if kind != "deleted":  # the damaged file is kept aside, never deleted
        assert report["moved_aside"] and (root / report["moved_aside"]).exists()
    Project.open(root)
    assert check_catalog(root) is None
    with Catalog(root) as cat:
        assert {r["id"]: r["status"] for r in cat.runs()} == {"a": "recovered", "b": "recovered"}


def test_the_cli_checks_and_rebuilds_and_a_cut_journal_line_is_ignored(curated, tmp_path):
    src, before = curated
    root = tmp_path / "p"
    shutil.copytree(src, root)
    with open(root / "curation.jsonl", "a") as f:
        f.write('{"time": 1, "set": "reject", "items": [["a", 1')  # a crash in the middle of a line
    _truncate(root / "catalog.sqlite")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cli = [sys.executable, "-m", "prism_gui.cli", "repair-catalog"]
    r = subprocess.run([*cli, str(root), "--check"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 1 and "damaged" in r.stdout
    r = subprocess.run([*cli, str(root)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout[r.stdout.index("{"):])["images"] == 40
    assert state(root) == before
    r = subprocess.run([*cli, str(tmp_path / "nowhere")], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 1 and "is not a folder" in r.stderr


def test_a_catalog_from_a_newer_version_is_refused_untouched(tmp_path):
    with Catalog(tmp_path) as cat:
        cat._conn.execute("PRAGMA user_version=99")
        cat._conn.commit()
    before = (tmp_path / "catalog.sqlite").read_bytes()
    with pytest.raises(CatalogError, match="newer PRISM Studio"):
        Catalog(tmp_path)
    assert (tmp_path / "catalog.sqlite").read_bytes() == before


def test_the_app_offers_the_rebuild_on_open_and_opens_the_project(curated, tmp_path, qtbot, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from prism_gui.ui.main_window import MainWindow

    monkeypatch.setenv("PRISM_STUDIO_HOME", str(tmp_path / "home"))
    src, before = curated
    root = tmp_path / "p"
    shutil.copytree(src, root)
    _scramble(root / "catalog.sqlite")
    asked = []

    def question(parent, title, text, *a, **k):
        asked.append(text)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", question)
    win = MainWindow(warm_up=False)
    qtbot.addWidget(win)
    project = win.open_project(root)
    assert project is not None and win.studio.project.root == root
    assert len(asked) == 1 and "is damaged" in asked[0] and "Rebuild" in asked[0]
    assert "Catalog rebuilt: 40 images" in win.statusBar().currentMessage()
    assert state(root) == before


def test_images_whose_rows_wait_in_shards_are_not_a_missing_catalog(tmp_path):
    from prism_gui.engine.data.image_files import write_image_files
    from prism_gui.engine.data.shards import write_shard

    img = np.zeros((8, 8, 1), np.uint8)
    rows = [write_image_files(tmp_path, "r", i, img, class_index=0, class_name="zero", prompt="p", seed=i,
                              generator="g", settings={}) for i in range(3)]
    write_shard(tmp_path, "r", 1, rows)  # a cluster run's rows, no catalog yet
    assert check_catalog(tmp_path) is None
    write_image_files(tmp_path, "r", 9, img, class_index=0, class_name="zero", prompt="p", seed=9, generator="g",
                      settings={})  # an image nothing accounts for
    assert check_catalog(tmp_path) == "it is missing, but the project has images"


def test_a_damaged_project_prompt_file_is_kept_aside_and_the_project_opens(qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from prism_gui.engine.project.project import Project
    from prism_gui.ui.main_window import MainWindow

    monkeypatch.setenv("PRISM_STUDIO_HOME", str(tmp_path / "home"))
    project = Project.create(tmp_path / "p")
    damaged = b'{"class_names": ["zero"], "prompts": [{"class_ind'  # cut by a crash of another program
    project.prompts_path.write_bytes(damaged)
    warnings = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _p, title, text, *a, **k: warnings.append((title, text)))
    win = MainWindow(project=project.root, warm_up=False)
    qtbot.addWidget(win)
    qtbot.waitUntil(lambda: win.studio.project is not None and bool(warnings), timeout=5000)
    assert win.studio.prompts is None  # the project is open, without prompts
    title, text = warnings[0]
    assert title == "Prompts not loaded" and "cannot be read" in text and "A copy is kept as" in text
    copies = list(project.root.glob("prompts.json.damaged-*"))
    assert len(copies) == 1 and copies[0].read_bytes() == damaged and copies[0].name in text
    assert project.prompts_path.read_bytes() == damaged  # nothing was changed in place


def test_a_rebuild_brings_back_a_distillations_curves_from_its_metrics_file(tmp_path):
    root = tmp_path / "p"
    with Catalog(root) as cat:
        cat.add_image("gen", 0, np.zeros((8, 8, 3), np.uint8), class_index=0, class_name="zero", prompt="p", seed=0,
                      generator="g", settings={})
    out = root / "runs" / "distill-1" / "student"  # where the app puts a distillation's output
    out.mkdir(parents=True)
    lines = [{"step": s, "epoch": s / 4, "time": 1.0, "loss": 1.0 / s, "lr": 0.01} for s in range(1, 5)]
    lines.append({"step": 4, "epoch": 1.0, "time": 2.0, "test_accuracy": 0.75, "agreement": 0.8})
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"step": 5, "lo')
    (out / "manifest.json").write_text(json.dumps({"job": "distill", "spec": {"epochs": 1}}))
    (root / "catalog.sqlite").write_bytes(b"")  # damaged
    report = rebuild_catalog(root)
    assert report["metrics_runs"] == 1
    with Catalog(root) as cat:
        steps, loss = cat.metrics("distill-1", "loss")
        assert steps.tolist() == [1, 2, 3, 4] and loss.tolist() == [1.0, 0.5, 1 / 3, 0.25]
        assert cat.metrics("distill-1", "test_accuracy")[1].tolist() == [0.75]
        assert {r["id"]: r["kind"] for r in cat.runs()}["distill-1"] == "distill"
