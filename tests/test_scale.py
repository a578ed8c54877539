"""Scale-out on 2 CPU processes (gloo on loopback, started by torchrun through `prism ... --processes 2`):
the split, identical outputs to 1 process, one catalog writer, resume after killing a rank (on another
number of processes), the project lock, the launcher's errors and stop, and the cluster export."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
from PIL import Image

from prism_gui.engine.data.catalog import Catalog
from prism_gui.engine.data.lock import ProjectLocked, holder, project_lock

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="torchrun's launcher: Linux and macOS")


def cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "prism_gui.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    d = tmp_path_factory.mktemp("prompts")
    (d / "p.toml").write_text(f'bank = "digits"\nper_class = 3\noutput = "{d / "prompts.json"}"\n')
    r = cli("prompts", d / "p.toml")
    assert r.returncode == 0, r.stderr
    return d / "prompts.json"


def gen_spec(path: Path, project: Path, prompts: Path, **kw) -> Path:
    spec = {"project": str(project), "run": "a", "images_per_class": 3, "batch_size": 4, "prompts": str(prompts),
            "device": "cpu", "sampler": {"steps": 4, "cfg": 2.0, "scheduler": "euler_a"},  # stochastic steps
            "guidance": {"scale": 0.05, "window": [0.5, 1.0]}, **kw}
    path.write_text(json.dumps(spec))
    return path


def rows_of(project) -> dict[int, dict]:
    with Catalog(project, create=False) as cat:
        return {r["item"]: dict(r) for r in cat.query()}


def pixels(project, row) -> np.ndarray:
    with Image.open(Path(project) / row["path"]) as im:
        return np.asarray(im)


def assert_same_images(a_project, b_project):
    a, b = rows_of(a_project), rows_of(b_project)
    assert sorted(a) == sorted(b)
    for i in a:
        key = ("seed", "prompt", "class_index")
        assert [a[i][k] for k in key] == [b[i][k] for k in key]
        np.testing.assert_array_equal(pixels(a_project, a[i]), pixels(b_project, b[i]))
        assert abs(a[i]["energy"] - b[i]["energy"]) < 1e-4


HOLD = textwrap.dedent("""
    import sys, time
    from prism_gui.engine.data.lock import project_lock
    with project_lock(sys.argv[1], "prism generate (run 'other')"):
        print("held", flush=True)
        time.sleep(600)
""")


@pytest.fixture
def other_writer(tmp_path):
    """Another process holding the project's lock (as a CLI run or another app window would)."""
    project = tmp_path / "proj"
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(project)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    yield project, p
    p.kill()
    p.wait()


def test_the_lock_refuses_a_second_writer_names_it_and_frees_itself_when_it_dies(other_writer):
    project, p = other_writer
    with pytest.raises(ProjectLocked) as e:
        with project_lock(project, "test"):
            pass
    msg = str(e.value)
    assert f"process {p.pid}" in msg and "prism generate (run 'other')" in msg and "wait for that job" in msg
    assert holder(project)["pid"] == p.pid
    p.send_signal(signal.SIGKILL)  # a crash leaves no stale lock
    p.wait()
    assert holder(project) is None
    with project_lock(project, "test") as info, project_lock(project, "nested"):  # re-entrant in a process
        assert info["pid"] == os.getpid() and holder(project)["purpose"] == "test"
    assert holder(project) is None


def test_cli_generation_is_refused_while_another_process_writes_the_project(other_writer, prompts, tmp_path):
    project, p = other_writer
    r = cli("generate", gen_spec(tmp_path / "g.json", project, prompts))
    assert r.returncode == 1
    assert "is being written by" in r.stderr and f"process {p.pid}" in r.stderr
    assert not (project / "images").exists()


ONE_WRITER_HOOK = textwrap.dedent("""
    import os, sqlite3
    if os.environ.get("RANK", "0") != "0":  # log every catalog connection a non-main rank opens
        _connect = sqlite3.connect
        def connect(*a, **k):
            with open(os.environ["PRISM_TEST_LOG"], "a") as f:
                f.write(f"rank {os.environ['RANK']} opened {a[0] if a else k}\\n")
            return _connect(*a, **k)
        sqlite3.connect = connect
""")


def test_two_processes_make_the_same_images_seeds_and_energies_with_one_catalog_writer(prompts, tmp_path):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(ONE_WRITER_HOOK)
    log = tmp_path / "connections.log"
    env = {"PYTHONPATH": os.pathsep.join([str(hook), *filter(None, [os.environ.get("PYTHONPATH")])]),
           "PRISM_TEST_LOG": str(log)}
    r = cli("generate", gen_spec(tmp_path / "g2.json", tmp_path / "two", prompts), "--processes", "2", env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "30/30 images" in r.stdout and "2 processes" in r.stdout
    assert not log.exists() or log.read_text() == "", log.read_text()  # rank 1 never opened the catalog
    # rank 1's rows came through shards, all merged
    assert not list((tmp_path / "two" / "runs" / "a" / "shards").glob("*"))
    r = cli("generate", gen_spec(tmp_path / "g1.json", tmp_path / "one", prompts))
    assert r.returncode == 0, r.stderr[-3000:]
    assert_same_images(tmp_path / "one", tmp_path / "two")
    with Catalog(tmp_path / "two") as cat:
        assert cat.runs()[0]["status"] == "finished"


def _rank_process(launcher: subprocess.Popen, rank: int, timeout: float = 120) -> psutil.Process:
    t0 = time.time()
    while time.time() - t0 < timeout:
        for child in psutil.Process(launcher.pid).children(recursive=True):
            try:
                env = child.environ()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if env.get("RANK") == str(rank) and "PRISM_EVENTS" in env:
                return child
        time.sleep(0.1)
    raise AssertionError(f"rank {rank} never started")


def _wait_for(predicate, timeout=180, what="a condition"):
    t0 = time.time()
    while not predicate():
        assert time.time() - t0 < timeout, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.long  # the same-number resume and the rank-error tests stay in the default suite
def test_a_run_whose_rank_is_killed_resumes_on_another_number_of_processes(prompts, tmp_path):
    project = tmp_path / "p"
    spec = gen_spec(tmp_path / "g.json", project, prompts, images_per_class=4, batch_size=2,
                    sampler={"steps": 6, "cfg": 2.0, "scheduler": "euler_a"})
    p = subprocess.Popen([sys.executable, "-m", "prism_gui.cli", "generate", str(spec), "--processes", "2"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    rank1 = _rank_process(p, 1)

    def stored():
        try:
            with Catalog(project, create=False) as cat:
                return cat.count()
        except Exception:
            return 0

    _wait_for(lambda: stored() >= 8, what="8 stored images")
    rank1.send_signal(signal.SIGKILL)
    _, err = p.communicate(timeout=180)
    assert p.returncode != 0
    assert "a process ended unexpectedly" in err and "run it again to resume" in err
    partial = stored()
    assert 8 <= partial < 40
    with Catalog(project) as cat:
        assert cat.runs()[0]["status"] == "interrupted"
    r = cli("generate", spec)  # finishes the same plan on one process
    assert r.returncode == 0, r.stderr[-3000:]
    assert "40/40 images" in r.stdout
    rows = rows_of(project)
    assert sorted(rows) == list(range(40)) and len({r["seed"] for r in rows.values()}) == 40
    stored_files = {f.relative_to(project).as_posix() for f in (project / "images").rglob("*.png")}
    assert stored_files == {r["path"] for r in rows.values()}  # no orphan left by the killed rank
    ref = gen_spec(tmp_path / "ref.json", tmp_path / "ref", prompts, images_per_class=4, batch_size=8,
                   sampler={"steps": 6, "cfg": 2.0, "scheduler": "euler_a"})
    r = cli("generate", ref)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_same_images(tmp_path / "ref", project)


def test_the_launcher_reports_a_ranks_error_and_stops_cleanly(prompts, tmp_path, monkeypatch):
    from prism_gui.engine.generation.job import load_generate_file
    from prism_gui.engine.jobs import Cancelled, CancelToken
    from prism_gui.engine.prompts import PromptSet
    from prism_gui.engine.scale.launch import launch_generation

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    # started through the app's own entry point (`<app> cli ...`), as a frozen app re-executes itself
    import prism_gui.engine.scale.launch as launch_module

    monkeypatch.setattr(launch_module, "self_command", lambda: [sys.executable, "-m", "prism_gui", "cli"])
    project = tmp_path / "p"
    spec, _, _ = load_generate_file(gen_spec(tmp_path / "g.json", project, prompts, images_per_class=4,
                                             batch_size=2))
    ps = PromptSet.load(prompts, [str(k) for k in range(10)])
    token = CancelToken()
    seen = []
    with pytest.raises(Cancelled):
        for ev in launch_generation(spec, ps, 2, cancel=token):
            seen.append(ev)
            if ev.data.get("new_ids"):
                token.cancel()
    assert any(ev.data.get("processes") == 2 for ev in seen)
    rows = rows_of(project)
    assert 0 < len(rows) < 40
    assert not list((project / "runs" / "a" / "shards").glob("rank*"))  # every finished row merged
    with Catalog(project) as cat:
        assert cat.runs()[0]["status"] == "interrupted"
    # a rank's error reaches the user with its own message (here: the run exists with other settings)
    r = cli("generate", gen_spec(tmp_path / "g2.json", project, prompts, images_per_class=4, batch_size=2, seed=5),
            "--processes", "2")
    assert r.returncode == 1 and "exists with different settings" in r.stderr
    r = cli("generate", tmp_path / "g.json", "--processes", "0")
    assert r.returncode == 1 and "processes must be at least 1" in r.stderr


def _losses(folder: Path) -> np.ndarray:
    return np.array([json.loads(x)["loss"] for x in (folder / "metrics.jsonl").read_text().splitlines()
                     if '"loss"' in x])


def _weights(folder: Path) -> dict:
    import safetensors.torch

    return safetensors.torch.load_file(str(folder / "student" / "model.safetensors"))


def test_distillation_on_two_processes_matches_one_and_resumes_after_a_rank_is_killed(tmp_path):
    """Same global batch, data order and augmentation on 1 and 2 processes.  With a student whose
    normalization does not depend on the batch (GroupNorm) the first steps agree to float
    precision (the share-weighted gradient average is the whole batch's gradient); later, Adam's
    normalized steps amplify float-rounding differences, so the runs agree within a tolerance.
    A 2-process run killed mid-epoch and resumed equals the uninterrupted 2-process run."""
    base = {"data": "digits-train", "eval": "digits-test", "student": "test_efficientnet_gn", "batch_size": 50,
            "seed": 3, "device": "cpu", "checkpoint_every": 3, "epochs": 2}

    def spec(name, **kw):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({**base, "out_dir": str(tmp_path / name), **kw}))
        return path

    r = cli("distill", spec("one"))
    assert r.returncode == 0, r.stderr[-3000:]
    r = cli("distill", spec("two"), "--processes", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    one, two = tmp_path / "one", tmp_path / "two"
    l1, l2 = _losses(one), _losses(two)
    assert len(l1) == len(l2) == 44
    np.testing.assert_allclose(l2[:4], l1[:4], atol=1e-4)
    np.testing.assert_allclose(l2, l1, rtol=0.1)
    res1, res2 = (json.loads((d / "result.json").read_text()) for d in (one, two))
    assert res2["processes"] == 2 and res2["test_accuracy"] == pytest.approx(res1["test_accuracy"], abs=0.06)
    assert res2["eval_images"] == res1["eval_images"]  # the evaluation split over ranks covers the set once
    # a 2-process run whose rank 1 is killed resumes from its last step checkpoint
    killed = spec("killed")
    p = subprocess.Popen([sys.executable, "-m", "prism_gui.cli", "distill", str(killed), "--processes", "2"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    rank1 = _rank_process(p, 1)
    _wait_for(lambda: (tmp_path / "killed" / "metrics.jsonl").exists() and len(_losses(tmp_path / "killed")) >= 7,
              what="7 training steps")
    rank1.send_signal(signal.SIGKILL)
    _, err = p.communicate(timeout=180)
    assert p.returncode != 0 and not (tmp_path / "killed" / "result.json").exists()
    assert "a process ended unexpectedly" in err and "run it again to resume" in err
    r = cli("distill", killed, "--processes", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    wk, w2 = _weights(tmp_path / "killed"), _weights(two)
    assert all(torch.allclose(wk[k].float(), w2[k].float(), atol=1e-5) for k in wk)


def test_cluster_export_writes_scripts_that_run(prompts, tmp_path):
    spec = gen_spec(tmp_path / "g.json", tmp_path / "proj", prompts, images_per_class=1)
    out = tmp_path / "cluster"
    r = cli("cluster", "generate", spec, "--out", out, "--nodes", "1", "--gpus-per-node", "2")
    assert r.returncode == 0, r.stderr
    names = {"spec.json", "prompts.json", "launch_torchrun.sh", "launch_accelerate.sh", "slurm.sbatch", "README.txt"}
    assert {f.name for f in out.iterdir()} == names
    assert json.loads((out / "spec.json").read_text())["prompts"] == "prompts.json"
    sbatch = (out / "slurm.sbatch").read_text()
    assert "#SBATCH --nodes=1" in sbatch and "--nproc-per-node=2" in sbatch and "srun" in sbatch
    r4 = cli("cluster", "generate", spec, "--out", tmp_path / "c4", "--nodes", "4", "--gpus-per-node", "8")
    assert r4.returncode == 0 and "--num_processes 32" in (tmp_path / "c4" / "launch_accelerate.sh").read_text()
    # the torchrun script, as a node runs it (1 node x 2 CPU processes here)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": os.pathsep.join([str(Path(sys.executable).parent),
                                                                           os.environ.get("PATH", "")]),
           "PRISM": f"{sys.executable} -m prism_gui.cli"}
    r = subprocess.run(["bash", str(out / "launch_torchrun.sh")], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(rows_of(tmp_path / "proj")) == 10
    r = cli("cluster", "generate", tmp_path / "missing.json", "--out", tmp_path / "x")
    assert r.returncode == 1 and "does not exist" in r.stderr
