"""Kill anywhere: one random SIGKILL trial of each job (generation, distillation with its timm student
export, curation, prompt scoring, report, import, dataset export, the map), then the moments a random
kill rarely hits, made on purpose.  The full campaign
(20 trials a job) is ``python -m benchmarks.kill_anywhere``; its figures are in docs/RELIABILITY.md."""

import json

import pytest
import safetensors.torch
import torch

from benchmarks.kill_anywhere import JOBS, campaign
from prism_gui.engine.data.catalog import Catalog, CatalogError
from prism_gui.engine.training.checkpoint import NEXT_STUDENT, keep_metrics, load_checkpoint, save_checkpoint
from tests.reliability import add_blank_images


@pytest.mark.long  # eight jobs, each run three times in processes of their own: over two minutes here
def test_one_random_kill_of_each_job_loses_nothing(tmp_path):
    res = campaign(1, seed=7, work=tmp_path)
    assert set(res["summary"]) == set(JOBS)
    for job, s in res["summary"].items():
        assert (s["lost"], s["duplicates"], s["orphans"], s["corrupt"], s["errors"]) == (0, 0, 0, 0, 0), \
            (job, res["trials"])


def _student(value: float):
    m = torch.nn.Linear(3, 2)
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(value)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    return m, opt, torch.optim.lr_scheduler.StepLR(opt, 1)


def _checkpoint(folder, value: float, step: int):
    m, opt, sched = _student(value)
    save_checkpoint(folder, m, opt, sched, {"epoch": 0, "step": step, "batch": step, "logged": step})
    return safetensors.torch.load_file(str(folder / "student.safetensors"))


def test_a_kill_between_the_two_checkpoint_files_resumes_from_a_consistent_pair(tmp_path):
    ck = tmp_path / "checkpoint"
    old = _checkpoint(ck, 1.0, step=5)
    new_dir = tmp_path / "new"
    new = _checkpoint(new_dir, 2.0, step=10)

    # killed after the new student was written beside the old one, before the new state: the old pair
    (ck / NEXT_STUDENT).write_bytes((new_dir / "student.safetensors").read_bytes())
    weights, state = load_checkpoint(ck)
    assert state["step"] == 5 and all(torch.equal(weights[k], old[k]) for k in old)
    assert not (ck / NEXT_STUDENT).exists()

    # killed after the new state, before the new student replaced the old: the new pair
    (ck / NEXT_STUDENT).write_bytes((new_dir / "student.safetensors").read_bytes())
    (ck / "trainer_state.pt").write_bytes((new_dir / "trainer_state.pt").read_bytes())
    weights, state = load_checkpoint(ck)
    assert state["step"] == 10 and all(torch.equal(weights[k], new[k]) for k in new)
    assert not (ck / NEXT_STUDENT).exists()

    # a student that is not the state's (copied by hand from another run) is refused, not trained on
    (ck / "student.safetensors").write_bytes((tmp_path / "checkpoint" / "student.safetensors").read_bytes())
    _checkpoint(tmp_path / "other", 3.0, step=10)
    (ck / "student.safetensors").write_bytes((tmp_path / "other" / "student.safetensors").read_bytes())
    with pytest.raises(RuntimeError, match="inconsistent"):
        load_checkpoint(ck)


def test_metrics_are_cut_back_to_the_checkpoint_and_a_cut_line_is_dropped(tmp_path):
    lines = [{"step": i, "loss": 1.0 / i} for i in range(1, 8)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"step": 8, "lo')
    kept = keep_metrics(tmp_path, logged=5)
    assert kept == lines[:5]
    assert (tmp_path / "metrics.jsonl").read_text().splitlines() == [json.dumps(r) for r in lines[:5]]
    assert keep_metrics(tmp_path, logged=9) == lines[:5]  # fewer on disk than logged: what is there
    assert keep_metrics(tmp_path, logged=0) == [] and (tmp_path / "metrics.jsonl").read_text() == ""


def test_a_journal_that_cannot_be_written_leaves_the_catalog_unchanged(tmp_path):

    with Catalog(tmp_path / "p") as cat:
        add_blank_images(cat, 3)
        (tmp_path / "p" / "curation.jsonl").mkdir()  # the journal cannot be opened for appending
        with pytest.raises(CatalogError, match="curation journal"):
            cat.set_status(cat.ids(), "reject")
        assert set(cat.column("status")) == {"unreviewed"}  # journaled first, or not changed at all


def test_a_cut_journal_line_costs_only_itself(tmp_path):

    from prism_gui.engine.data.recover import rebuild_catalog

    root = tmp_path / "p"
    with Catalog(root) as cat:
        add_blank_images(cat, 3)
        cat.set_status([cat.ids()[0]], "reject")
        with open(root / "curation.jsonl", "a") as f:
            f.write('{"time": 1, "set": "keep", "ite')  # a crash in the middle of a line
        cat.set_status([cat.ids()[1]], "keep")  # the next change starts on a line of its own
    rebuild_catalog(root)
    with Catalog(root) as cat:
        assert [r["status"] for r in sorted(cat.query(), key=lambda r: r["item"])] == ["reject", "keep", "unreviewed"]


def test_an_import_killed_mid_write_leaves_no_stray_file_when_run_again(tmp_path):
    """What the campaign's first import trial found: a kill inside an image's atomic write left its
    temporary file, which the rerun never removed.  Now the import starts with the catalog's repair:
    temporary files go, and files whose rows never came are adopted, not copied again."""
    import sqlite3

    import numpy as np
    from PIL import Image

    from prism_gui.engine.project.importer import import_job
    from prism_gui.engine.teachers.load import load_teacher

    teacher = load_teacher("digits")
    src = tmp_path / "made-elsewhere"
    rng = np.random.default_rng(1)
    for i in range(10):
        (src / teacher.class_names[i]).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8), "L").save(src / teacher.class_names[i] / "a.png")
    project = tmp_path / "p"
    for _ in import_job(project, src, teacher, run="imp"):
        pass
    with sqlite3.connect(project / "catalog.sqlite") as db:  # the kill: three files stored, their rows not
        db.execute("DELETE FROM images WHERE item >= 7")
    (project / "images" / "imp" / ".0000010_1.png.x1y2.tmp").write_bytes(b"half an image")  # and one cut
    for _ in import_job(project, src, teacher, run="imp"):
        pass
    with Catalog(project) as cat:
        rows = cat.query(run="imp")
    assert len(rows) == 10 and len({r["path"] for r in rows}) == 10
    assert sorted(p.relative_to(project).as_posix() for p in (project / "images").rglob("*") if p.is_file()) == \
        sorted(r["path"] for r in rows)  # no copy beside an orphan, no temporary file left
