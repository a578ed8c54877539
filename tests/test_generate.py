"""Generation into the catalog: scores stored, resumable after a kill, no duplicates/orphans."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import torch

from prism_gui.engine.data.catalog import Catalog
from prism_gui.engine.generation.job import GenerateSpec, plan, run_generation
from prism_gui.engine.jobs import Cancelled, CancelToken
from prism_gui.engine.prompts import expand, load_bank

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def small_spec(project, **kw):
    return GenerateSpec(project=str(project), run=kw.pop("run", "r"), images_per_class=kw.pop("n", 3),
                        batch_size=kw.pop("batch_size", 10), sampler={"steps": 4, "cfg": 2.0}, **kw)


def test_plan_is_balanced_deterministic_and_follows_weights():
    ps = expand(DIGITS, load_bank("digits"), per_class=4, seed=0)
    ps.prompts[0].weight = 0
    items = plan(ps, 6, seed=2)
    assert len(items) == 60 and len({it[4] for it in items}) == 60
    assert [it[1] for it in items].count(0) == 6
    assert ps.prompts[0].text not in [it[2] for it in items if it[1] == 0]
    assert plan(ps, 6, seed=2) == items


def test_generation_stores_scored_images(tmp_path, digits_teacher, digits_prior):
    ps = expand(DIGITS, load_bank("digits"), per_class=3, seed=0)
    events = list(run_generation(small_spec(tmp_path), ps, teacher=digits_teacher, components=digits_prior))
    stored = [e for e in events if "new_ids" in e.data]
    assert sum(len(e.data["new_ids"]) for e in stored) == 30
    assert any("batch_step" in e.data for e in events)
    with Catalog(tmp_path) as cat:
        rows = cat.query()
        assert len(rows) == 30
        r = cat.get(rows[0]["id"])
        assert set(r["energies"]) == {"class", "free", "bn"} and len(r["top5"]) == 5
        assert r["settings"]["sampler"]["steps"] == 4


def test_cancelled_batch_is_discarded(tmp_path, digits_teacher, digits_prior):
    ps = expand(DIGITS, load_bank("digits"), per_class=2, seed=0)
    token = CancelToken()
    batches_started = 0
    with pytest.raises(Cancelled):
        for ev in run_generation(small_spec(tmp_path, batch_size=20), ps, teacher=digits_teacher,
                                 components=digits_prior, cancel=token):
            # The first batch may still be in the writer thread when the second one samples:
            # cancel by the sampler's own progress, not by when the first batch's rows appear.
            batches_started += ev.data.get("batch_step") == 1
            if batches_started == 2 and ev.data.get("batch_step") == 2:
                token.cancel()
    with Catalog(tmp_path) as cat:
        assert cat.count() == 20  # the first batch only; the cancelled one left nothing
        assert cat.runs()[0]["status"] == "interrupted"
    assert len(list((tmp_path / "images" / "r").iterdir())) == 20


def test_changed_settings_need_a_new_run(tmp_path, digits_teacher, digits_prior):
    ps = expand(DIGITS, load_bank("digits"), per_class=2, seed=0)
    list(run_generation(small_spec(tmp_path, n=1), ps, teacher=digits_teacher, components=digits_prior))
    with pytest.raises(ValueError, match="exists with different settings"):
        list(run_generation(small_spec(tmp_path, n=1, seed=9), ps, teacher=digits_teacher, components=digits_prior))


KILL_SCRIPT = """
import sys
from prism_gui.engine.generation.job import GenerateSpec, run_generation
from prism_gui.engine.prompts import expand, load_bank
DIGITS = {digits!r}
ps = expand(DIGITS, load_bank("digits"), per_class=3, seed=0)
spec = GenerateSpec(project=sys.argv[1], run="r", images_per_class=8, batch_size=4,
                    sampler={{"steps": 4, "cfg": 2.0}})
for ev in run_generation(spec, ps):
    pass
"""


def test_killed_run_resumes_to_exactly_the_requested_count(tmp_path, root, digits_teacher, digits_prior):
    script = tmp_path / "gen.py"
    script.write_text(KILL_SCRIPT.format(digits=DIGITS))
    proj = tmp_path / "proj"
    proc = subprocess.Popen([sys.executable, str(script), str(proj)], cwd=root)
    deadline = time.time() + 180
    n = 0
    while time.time() < deadline:
        if (proj / "catalog.sqlite").exists():
            try:
                con = sqlite3.connect(proj / "catalog.sqlite", timeout=1)
                n = con.execute("SELECT COUNT(*) FROM images").fetchone()[0]
                con.close()
            except sqlite3.OperationalError:
                n = 0
        if n >= 10:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 10 <= n < 80, "the run must be killed mid-way"
    ps = expand(DIGITS, load_bank("digits"), per_class=3, seed=0)
    spec = GenerateSpec(project=str(proj), run="r", images_per_class=8, batch_size=4,
                        sampler={"steps": 4, "cfg": 2.0})
    events = list(run_generation(spec, ps, teacher=digits_teacher, components=digits_prior))
    assert events[0].data["resumed"]
    with Catalog(proj) as cat:
        rows = cat.query()
        assert len(rows) == 80
        assert len({r["seed"] for r in rows}) == 80 and len({r["item"] for r in rows}) == 80
        files = {str(p.relative_to(proj)) for p in (proj / "images").rglob("*.png")}
        assert files == {r["path"] for r in rows}
        assert not list(proj.rglob("*.tmp"))
        for r in rows:
            assert (proj / r["thumb"]).exists()


def test_batches_are_stored_by_the_writer_thread_in_order(tmp_path, digits_teacher, digits_prior, monkeypatch):
    import prism_gui.engine.data.image_files as image_files

    threads = []
    real = image_files.write_image_files

    def write_image_files(*a, **k):
        import threading

        threads.append(threading.current_thread().name)
        return real(*a, **k)

    monkeypatch.setattr(image_files, "write_image_files", write_image_files)
    ps = expand(DIGITS, load_bank("digits"), per_class=2, seed=0)
    events = list(run_generation(small_spec(tmp_path, batch_size=7, n=5), ps, teacher=digits_teacher,
                                 components=digits_prior))
    stored = [ev for ev in events if "new_ids" in ev.data]
    assert [ev.step for ev in stored] == [7, 14, 21, 28, 35, 42, 49, 50]
    assert set(threads) == {"prism-writer"} and len(threads) == 50
    ids = [i for ev in stored for i in ev.data["new_ids"]]
    with Catalog(tmp_path) as cat:
        assert [cat.get(i)["item"] for i in ids] == list(range(50))
        assert cat.runs()[0]["status"] == "finished"


def test_a_writer_error_stops_the_job_and_keeps_the_stored_batches(tmp_path, digits_teacher, digits_prior,
                                                                   monkeypatch):
    import prism_gui.engine.data.image_files as image_files
    from prism_gui.engine.generation.writer import BatchWriter

    calls = []
    real = image_files.write_image_files

    def write_image_files(*a, **k):
        calls.append(1)
        if len(calls) == 15:
            raise OSError("No space left on device")
        return real(*a, **k)

    monkeypatch.setattr(image_files, "write_image_files", write_image_files)
    ps = expand(DIGITS, load_bank("digits"), per_class=2, seed=0)
    with pytest.raises(OSError, match="No space left"):
        for _ in run_generation(small_spec(tmp_path, batch_size=10, n=5), ps, teacher=digits_teacher,
                                components=digits_prior):
            pass
    with Catalog(tmp_path) as cat:
        # a batch is stored whole or not at all: the first batch of 10 is kept
        assert cat.count() == 10 and cat.runs()[0]["status"] == "interrupted"
    # the writer itself: results in order, errors raised in the caller, nothing after an error
    with BatchWriter(lambda x: 10 * x, depth=1) as w:
        for i in range(5):
            w.submit(i)
        assert w.flush() == [0, 10, 20, 30, 40]
    w = BatchWriter(lambda x: 1 / x)
    w.submit(0)
    w.submit(1)
    with pytest.raises(ZeroDivisionError):
        w.flush()
    w.close()


def _oom_above(limit, monkeypatch):
    """Make sampling fail like a GPU out of memory for batches larger than ``limit``."""
    import torch

    import prism_gui.engine.generation.job as job

    real = job.sample_steps
    sizes = []

    def sample_steps(comp, prompts, *a, **kw):
        sizes.append(len(prompts))
        if len(prompts) > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        yield from real(comp, prompts, *a, **kw)

    monkeypatch.setattr(job, "sample_steps", sample_steps)
    return sizes


def test_out_of_memory_halves_the_batch_and_gives_the_same_images(tmp_path, digits_teacher, digits_prior,
                                                                    monkeypatch):
    ps = expand(DIGITS, load_bank("digits"), per_class=2, seed=0)
    list(run_generation(small_spec(tmp_path / "a", n=2, batch_size=20), ps, teacher=digits_teacher,
                        components=digits_prior))
    sizes = _oom_above(6, monkeypatch)
    events = list(run_generation(small_spec(tmp_path / "b", n=2, batch_size=20), ps, teacher=digits_teacher,
                                 components=digits_prior))
    assert sizes[:4] == [20, 10, 5, 5]  # 20 and 10 fail; 5 fits and stays
    notes = [e.message for e in events if "batch_size" in e.data]
    assert notes == ["out of memory at a batch of 20 images: continuing with batches of 10",
                     "out of memory at a batch of 10 images: continuing with batches of 5"]
    with Catalog(tmp_path / "a") as a, Catalog(tmp_path / "b") as b:
        ra, rb = a.query(), b.query()
        assert len(rb) == 20 and [r["seed"] for r in ra] == [r["seed"] for r in rb]
        assert torch.equal(a.load_images(run="r")[0], b.load_images(run="r")[0])


def test_out_of_memory_at_one_image_or_without_back_off_is_a_clear_error(tmp_path, digits_teacher, digits_prior,
                                                                         monkeypatch):
    ps = expand(DIGITS, load_bank("digits"), per_class=2, seed=0)
    _oom_above(0, monkeypatch)
    with pytest.raises(MemoryError, match=r"out of memory at a batch of 1 image.*smaller resolution"):
        list(run_generation(small_spec(tmp_path / "a", batch_size=4), ps, teacher=digits_teacher,
                            components=digits_prior))
    with pytest.raises(MemoryError, match=r"batch of 10 image.*auto_batch = true"):
        list(run_generation(small_spec(tmp_path / "b", auto_batch=False), ps, teacher=digits_teacher,
                            components=digits_prior))
    with Catalog(tmp_path / "b") as cat:
        assert cat.runs()[0]["status"] == "interrupted"
