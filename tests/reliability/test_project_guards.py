"""Issue 26's ways to lose a project's data or write outside it, through ``prism`` as a user runs it:
a moved images folder, a run name that is a path, an output that is a project's own file, a
distillation named like a generation run.  Each must be refused with the file or key and the fix,
and the project must be intact afterwards (same rows, same statuses, no file outside it)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from prism_gui.cli import main as prism


def run(capsys, *args) -> tuple[int, str]:
    rc = prism([str(a) for a in args])
    out = capsys.readouterr()
    assert "Traceback" not in out.err, out.err
    return rc, out.err


def state(project: Path) -> dict:
    """Everything a user made in ``project``: its rows with their statuses, and every file's hash."""
    import sqlite3

    with sqlite3.connect(project / "catalog.sqlite") as db:
        rows = sorted(db.execute("SELECT run, item, status, path FROM images"))
        runs = sorted(db.execute("SELECT id, kind FROM runs"))
    files = {f.relative_to(project).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest()
             for f in project.rglob("*") if f.is_file() and "catalog.sqlite" not in f.name}
    return {"rows": rows, "runs": runs, "files": files}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A project of 20 images made by ``prism prompts`` and ``prism generate``, two of them kept."""
    import contextlib
    import io

    d = tmp_path_factory.mktemp("guards")
    (d / "prompts.json").write_text(json.dumps({"teacher": "digits", "plain_only": True,
                                                "output": str(d / "proj" / "prompts.json")}))
    (d / "proj").mkdir()
    gen = {"project": str(d / "proj"), "run": "r", "prompts": str(d / "proj" / "prompts.json"),
           "images_per_class": 2, "batch_size": 20, "sampler": {"steps": 2}}
    (d / "gen.json").write_text(json.dumps(gen))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert prism(["prompts", str(d / "prompts.json")]) == 0
        assert prism(["generate", str(d / "gen.json")]) == 0
    from prism_gui.engine.data.catalog import Catalog

    with Catalog(d / "proj") as cat:
        assert cat.count() == 20
        cat.set_status(cat.ids(run="r", sort="id")[:2], "keep")
    return d, gen


@pytest.fixture
def project(made, tmp_path):
    """A fresh copy of the made project for one test, with a generate spec pointing at it."""
    d, gen = made
    proj = tmp_path / "work" / "proj"
    shutil.copytree(d / "proj", proj)
    spec = tmp_path / "work" / "gen.json"
    spec.write_text(json.dumps({**gen, "project": str(proj), "prompts": str(proj / "prompts.json")}))
    return proj, spec


def outside(tmp_path: Path, project: Path) -> set[str]:
    return {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")
            if project not in (p, *p.parents) and p.name not in ("work", "gen.json", "spec.json")}


def test_a_moved_images_folder_stops_generation_and_deletes_no_row(project, capsys, tmp_path):
    proj, spec = project
    before = state(proj)
    shutil.move(proj / "images", tmp_path / "other-disk")
    rc, err = run(capsys, "generate", spec)
    assert rc == 1
    assert f"lists 20 image(s) in '{proj / 'images'}'" in err and "put it back" in err, err
    shutil.move(tmp_path / "other-disk", proj / "images")
    assert state(proj) == before  # every row, with its status, is still there: the folder came back
    rc, err = run(capsys, "generate", spec)  # and generation goes on as before
    assert rc == 0, err


def test_one_missing_file_keeps_its_row_and_the_run_goes_on(project, capsys):
    proj, spec = project
    first = sorted((proj / "images" / "r").glob("*.png"))[0]
    first.unlink()
    json.loads(spec.read_text())
    spec.write_text(json.dumps({**json.loads(spec.read_text()), "images_per_class": 3}))
    rc, err = run(capsys, "generate", spec)
    assert rc == 0, err
    from prism_gui.engine.data.catalog import Catalog

    with Catalog(proj) as cat:
        assert cat.count() == 30 and cat.count(statuses=["keep"]) == 2
        assert first.relative_to(proj).as_posix() in {r["path"] for r in cat.query(run="r")}


@pytest.mark.parametrize("name", ["../../escape", "a/b", "..", "x\\..\\y", "", "CON"])
def test_a_run_name_that_is_a_path_is_refused_by_every_kind_of_run(project, capsys, tmp_path, name):
    proj, spec = project
    before = state(proj)
    spec.write_text(json.dumps({**json.loads(spec.read_text()), "run": name}))
    rc, err = run(capsys, "generate", spec)
    assert rc == 1 and str(spec) in err and "'run'" in err and "run name" in err, err
    distill = tmp_path / "work" / "distill.json"
    distill.write_text(json.dumps({"project": str(proj), "run": name, "epochs": 1, "eval": ""}))
    rc, err = run(capsys, "distill", distill)
    assert rc == 1 and str(distill) in err and "run name" in err, err
    (tmp_path / "imgs" / "zero").mkdir(parents=True)
    shutil.copy(next((proj / "images" / "r").glob("*.png")), tmp_path / "imgs" / "zero" / "a.png")
    rc, err = run(capsys, "import", proj, tmp_path / "imgs", "--run", name)
    assert rc == 1 and "run name" in err, err
    rc, err = run(capsys, "export-metrics", proj, name)
    assert rc in (1, 2) and "run name" in err, err
    assert state(proj) == before
    assert outside(tmp_path, proj) == {"imgs", "imgs/zero", "imgs/zero/a.png", "work/distill.json"}
    assert not (tmp_path / "escape").exists() and not (tmp_path.parent / "escape").exists()


def test_the_engine_refuses_the_name_whoever_calls_it(tmp_path):
    """The app and the map's fills build these specs too: the engine is where the rule lives."""
    from prism_gui.engine.data.catalog import Catalog
    from prism_gui.engine.data.guard import RunNameError
    from prism_gui.engine.generation.job import GenerateSpec
    from prism_gui.engine.training.deepinversion import DeepInversionSpec
    from prism_gui.engine.training.distill import DistillSpec

    for make in (lambda: GenerateSpec(project=str(tmp_path), run="../x"), lambda: DistillSpec(run="a/b"),
                 lambda: DeepInversionSpec(project=str(tmp_path), run=".."),
                 lambda: Catalog(tmp_path).start_run("../../x", "import", {})):
        with pytest.raises(RunNameError, match="run name"):
            make()
    assert not (tmp_path.parent / "x").exists()


@pytest.mark.parametrize("target", ["catalog.sqlite", "curation.jsonl", "project.json", "images/r/x.png",
                                    "runs/r/manifest.json", "SPEC"])
def test_no_command_writes_over_a_project_file_or_its_own_spec(project, capsys, tmp_path, target):
    proj, _ = project
    (proj / "curation.jsonl").touch()
    (proj / "project.json").write_text("{}")
    before = state(proj)
    spec = tmp_path / "work" / "metrics.json"
    out = spec if target == "SPEC" else proj / target
    spec.write_text(json.dumps({"project": str(proj), "reference": "digits-test", "output": str(out)}))
    spec_text = spec.read_text()
    rc, err = run(capsys, "metrics", spec)
    assert rc == 1 and str(out) in err and ("the file this command reads" in err or "would overwrite" in err), err
    assert spec.read_text() == spec_text and state(proj) == before
    rc, err = run(capsys, "report", proj, "--out", out)
    if target != "SPEC":
        assert rc == 1 and "would overwrite" in err, err
    assert state(proj) == before


def test_a_distillation_cannot_take_a_generation_runs_name_or_folder(project, capsys, tmp_path):
    proj, _ = project
    before = state(proj)
    d = tmp_path / "work" / "distill.json"
    for settings, words in (({"run": "r"}, "already the name of a generate run"),
                            ({"run": "s", "out_dir": str(proj / "runs" / "r")}, "inside run 'r''s folder"),
                            ({"run": "s", "out_dir": str(proj / "images")}, "inside the 'images/' folder"),
                            ({"run": "s", "out_dir": str(proj)}, "is the project folder")):
        d.write_text(json.dumps({"project": str(proj), "epochs": 1, "eval": "", **settings}))
        rc, err = run(capsys, "distill", d)
        assert rc == 1 and words in err, (settings, err)
        assert state(proj) == before, settings


def test_distilling_a_run_that_misses_classes_says_which(project, capsys, tmp_path):
    """Issue 28: a run interrupted after a few classes was trained on without a word."""
    from prism_gui.engine.data.catalog import Catalog

    proj, _ = project
    with Catalog(proj) as cat:
        cat.set_status(cat.ids(classes=list(range(4, 10))), "reject")
    spec = tmp_path / "work" / "distill.json"
    spec.write_text(json.dumps({"project": str(proj), "run": "d", "epochs": 1, "eval": ""}))
    rc = prism(["distill", str(spec)])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "warning: 6 of 10 classes have no image (four, five, six, seven, eight, nine)" in out.out + out.err


def test_distilling_with_image_files_missing_names_them_and_the_fix(project, capsys, tmp_path):
    proj, _ = project
    first = sorted((proj / "images" / "r").glob("*.png"))[0]
    first.unlink()
    spec = tmp_path / "work" / "distill.json"
    spec.write_text(json.dumps({"project": str(proj), "run": "d", "epochs": 1, "eval": ""}))
    rc, err = run(capsys, "distill", spec)
    assert rc == 1 and "1 of the 20 images" in err and first.name in err and "put the files back" in err, err


def test_an_output_under_a_file_says_the_file_is_not_a_folder(project, capsys, tmp_path):
    proj, _ = project
    (tmp_path / "notes.txt").write_text("mine")
    rc, err = run(capsys, "report", proj, "--out", tmp_path / "notes.txt" / "report.html")
    assert rc == 1 and f"'{tmp_path / 'notes.txt'}' is a file, not a folder" in err, err
    assert (tmp_path / "notes.txt").read_text() == "mine"
