"""Disk full and I/O errors (a file-size limit, RLIMIT_FSIZE, on the job's process): a clear error
that names the file and the fix, the job stops cleanly, what was written before is intact, and the
run resumes to the exact count once space is back."""

import json
import os
import resource
import subprocess
import sys

import pytest

from prism_gui.engine.data.catalog import Catalog, CatalogError
from tests.reliability import add_blank_images

pytestmark = pytest.mark.skipif(not hasattr(resource, "RLIMIT_FSIZE"), reason="POSIX file-size limits")


def cli(*args, limit=None, timeout=600):
    def cap():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, "-m", "prism_gui.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, preexec_fn=cap if limit else None,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    d = tmp_path_factory.mktemp("prompts")
    (d / "p.toml").write_text(f'bank = "digits"\nper_class = 3\noutput = "{d / "prompts.json"}"\n')
    assert cli("prompts", d / "p.toml").returncode == 0
    return d / "prompts.json"


def test_a_full_disk_during_generation_stops_cleanly_and_the_run_resumes(prompts, tmp_path):
    project = tmp_path / "p"
    spec = tmp_path / "g.json"
    spec.write_text(json.dumps({"project": str(project), "run": "a", "images_per_class": 30, "batch_size": 20,
                                "prompts": str(prompts), "sampler": {"steps": 2}}))
    r = cli("generate", spec, limit=400_000)  # the catalog and its journal outgrow this after a few batches
    assert r.returncode == 1
    assert "cannot write" in r.stderr and "Free disk space" in r.stderr and "Traceback" not in r.stderr
    with Catalog(project) as cat:
        stored = cat.count()
        assert 0 < stored < 300 and cat.runs()[0]["status"] == "interrupted"
        assert len(set(cat.column("seed"))) == stored
    r = cli("generate", spec)
    assert r.returncode == 0, r.stderr[-2000:]
    with Catalog(project) as cat:
        rows = cat.query()
        assert sorted(x["item"] for x in rows) == list(range(300)) and len({x["seed"] for x in rows}) == 300
        on_disk = {f.relative_to(project).as_posix() for f in (project / "images").rglob("*.png")}
        assert on_disk == {x["path"] for x in rows}  # no orphan, no missing file


def test_a_full_disk_at_a_checkpoint_keeps_the_previous_one_and_training_resumes(tmp_path):
    out = tmp_path / "d"
    spec = tmp_path / "d.json"
    spec.write_text(json.dumps({"data": "digits-train", "eval": "", "epochs": 2, "out_dir": str(out),
                                "checkpoint_every": 5}))
    r = cli("distill", spec, limit=40_000)  # the student's checkpoint (~60 kB) does not fit
    assert r.returncode == 1
    # the new student is written beside the last checkpoint's (student.next.safetensors) and fails
    assert "cannot write" in r.stderr and "student.next.safetensors" in r.stderr and "Traceback" not in r.stderr
    assert not list(out.rglob("*.tmp")) and not list(out.rglob("student.next.*"))  # nothing half-written left
    r = cli("distill", spec)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((out / "result.json").read_text())["epochs"] == 2


def test_an_export_that_does_not_fit_names_the_file(tmp_path):
    import numpy as np

    with Catalog(tmp_path / "p") as cat:
        for i in range(5):
            img = np.random.default_rng(i).integers(0, 255, (256, 256, 3), dtype=np.uint8)  # ~200 kB PNGs
            cat.add_image("r", i, img, class_index=0, class_name="zero", prompt="p", seed=i, generator="g",
                          settings={})
    r = cli("export", tmp_path / "p", tmp_path / "out", limit=100_000)
    assert r.returncode == 1 and "cannot write" in r.stderr and str(tmp_path / "out") in r.stderr


def test_a_project_path_that_is_a_file_is_a_clear_error(tmp_path):
    f = tmp_path / "not-a-folder"
    f.write_text("x")
    with pytest.raises((CatalogError, OSError)) as e:
        Catalog(f / "sub")
    assert "not-a-folder" in str(e.value)


CURATOR = """
import resource, sys, json
from prism_gui.engine.data.catalog import Catalog, CatalogError
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
done = 0
with Catalog(sys.argv[1]) as cat:
    ids = cat.ids()
    try:
        for i in range(100000):
            cat.set_status([ids[i % len(ids)]], "reject" if i % 2 == 0 else "keep", label="x" * 2000)
            done += 1
    except CatalogError as e:
        print(json.dumps({{"done": done, "error": str(e)}}))
"""


def test_a_full_disk_during_curation_keeps_every_acknowledged_change(tmp_path):

    from prism_gui.engine.data.recover import check_catalog, rebuild_catalog

    root = tmp_path / "p"
    with Catalog(root) as cat:
        add_blank_images(cat, 20)
    r = subprocess.run([sys.executable, "-c", CURATOR.format(limit=300_000), str(root)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["done"] > 10 and "Free disk space" in out["error"]  # catalog or journal: the file is named
    assert "catalog.sqlite" in out["error"] or "curation.jsonl" in out["error"]
    assert check_catalog(root) is None
    def statuses():
        with Catalog(root) as cat:
            return {r["item"]: r["status"] for r in cat.query()}

    def after(n):  # the statuses after the first n changes
        st = dict.fromkeys(range(20), "unreviewed")
        for i in range(n):
            st[i % 20] = "reject" if i % 2 == 0 else "keep"
        return st

    assert statuses() == after(out["done"])  # every acknowledged change is there, the failed one is not
    rebuild_catalog(root)
    # the journal is written before the commit: it holds the acknowledged changes, and the failed
    # one when the catalog's commit (not the journal) ran out of space
    assert statuses() in (after(out["done"]), after(out["done"] + 1))


def test_a_report_that_does_not_fit_keeps_the_previous_one(tmp_path):
    from prism_gui.engine.project.project import Project

    project = Project.create(tmp_path / "p")
    with Catalog(project.root) as cat:
        import numpy as np

        for i in range(10):
            cat.add_image("r", i, np.random.default_rng(i).integers(0, 255, (16, 16, 3), dtype=np.uint8),
                          class_index=i % 10, class_name="zero", prompt="p", seed=i, generator="g", settings={})
        cat.start_run("r", "generate", {})
    old = "<html><body>the previous report</body></html>"
    (project.root / "report.html").write_text(old)
    # the report (~70 kB, its figures embedded) does not fit; the catalog's 32 kB shared-memory file does
    r = cli("report", project.root, limit=40_000)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "cannot write" in r.stderr and "report.html" in r.stderr
    assert (project.root / "report.html").read_text() == old
    assert not list(project.root.glob(".*.tmp"))


def test_a_disk_too_full_to_open_the_catalog_is_not_called_damaged(tmp_path):
    """SQLite needs its 32 kB shared-memory file to read a WAL catalog: with no room for it, the
    catalog cannot be read, which says nothing about its health (before, it was called damaged
    and a rebuild was offered)."""
    import numpy as np

    from prism_gui.engine.project.project import Project

    project = Project.create(tmp_path / "p")
    with Catalog(project.root) as cat:
        cat.add_image("r", 0, np.zeros((8, 8, 3), np.uint8), class_index=0, class_name="zero", prompt="p", seed=0,
                      generator="g", settings={})
    r = cli("report", project.root, limit=20_000)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "cannot read the catalog" in r.stderr and "not known to be damaged" in r.stderr
    assert "repair-catalog" not in r.stderr
    assert not list(project.root.glob("catalog.sqlite.damaged-*"))
