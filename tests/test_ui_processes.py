"""Several processes from the app: a generation and a distillation on 2 torchrun processes
driven by their panels, the same images as one process, a project locked by another process,
and the cluster export dialog."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from prism_gui.engine.project.project import Project
from prism_gui.ui.common import make_studio
from prism_gui.ui.generate_panel import PROCESSES_TIP

CLUSTER_FILES = {"spec.json", "launch_torchrun.sh", "launch_accelerate.sh", "slurm.sbatch", "README.txt"}


@pytest.fixture
def panel(generate_panel, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the torchrun processes inherit it
    generate_panel.device.setCurrentText("cpu")
    generate_panel.show()
    return generate_panel


def _rows(project, run: str) -> dict[int, dict]:
    with project.catalog() as cat:
        return {r["seed"]: dict(r) for r in cat.query(columns="seed, prompt, class_index, path", run=run)}


def test_generation_on_two_processes_streams_the_same_images_as_one(qtbot, panel):
    assert panel.processes.value() == 1 and panel.processes.toolTip() == PROCESSES_TIP
    if panel.processes.maximum() < 2:
        pytest.skip("this machine gives one process only")
    panel.processes.setValue(2)
    assert panel.settings()["processes"] == 2
    panel.run_name.setText("two")
    job = panel.start()
    assert not panel.pause_button.isEnabled()  # torchrun's processes cannot be held between two events
    qtbot.waitUntil(lambda: job.state in ("finished", "failed"), timeout=120000)
    assert job.state == "finished", panel.error.text()
    qtbot.waitUntil(panel.start_button.isEnabled, timeout=5000)
    # the job's state is the worker thread's: its last events may still be on their way to the panel
    qtbot.waitUntil(lambda: panel.strip.count() == 20 and panel.progress.value() == 20, timeout=5000)
    xs, ys, _ = panel.curves["two"]
    assert xs and xs[-1] == 20 and all(y > 0 for y in ys)
    project = panel.studio.project
    assert Project.open(project.root).spec["generate"]["processes"] == 2  # persisted with the project

    panel.processes.setValue(1)
    panel.run_name.setText("one")
    job = panel.start()
    assert panel.pause_button.isEnabled()
    qtbot.waitUntil(lambda: job.state in ("finished", "failed"), timeout=120000)
    assert job.state == "finished", panel.error.text()
    two, one = _rows(project, "two"), _rows(project, "one")
    assert len(two) == 20 and sorted(two) == sorted(one)
    for seed, row in one.items():
        assert (two[seed]["prompt"], two[seed]["class_index"]) == (row["prompt"], row["class_index"])
        a = np.asarray(Image.open(project.root / two[seed]["path"]))
        b = np.asarray(Image.open(project.root / row["path"]))
        np.testing.assert_array_equal(a, b)


def test_a_project_another_process_writes_shows_the_lock_message(qtbot, panel):
    root = panel.studio.project.root
    code = ("import sys, time\nfrom prism_gui.engine.data.lock import project_lock\n"
            f"with project_lock({str(root)!r}, 'a test generation'):\n"
            "    print('held', flush=True)\n    sys.stdin.read()\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        job = panel.start()
        qtbot.waitUntil(lambda: job.state in ("finished", "failed"), timeout=60000)
        assert job.state == "failed"
        assert panel.error.isVisible()
        assert "is being written by a test generation" in panel.error.text()
        assert f"process {holder.pid}" in panel.error.text()
    finally:
        holder.communicate("", timeout=30)


def test_cluster_dialog_writes_the_spec_and_launch_scripts(qtbot, panel, tmp_path):
    from prism_gui.engine.prompts import PromptSet, load_bank, plain_prompts

    panel.prompt_source.setCurrentIndex(0)  # the project's prompts
    panel.studio.set_prompts(plain_prompts(panel.studio.project.class_names(), load_bank("digits")), save=False)
    panel.processes.setValue(2)
    panel.run_name.setText("big")
    panel.seed.setValue(7)
    assert panel.cluster_button.isEnabled()
    dialog = panel.export_for_cluster()
    assert dialog is not None and dialog.gpus.value() == 2
    assert dialog.out.text() == str(panel.studio.project.root / "cluster" / "big")
    out = tmp_path / "cluster"
    dialog.nodes.setValue(3)
    dialog.gpus.setValue(4)
    dialog.cpus.setValue(16)
    dialog.time_limit.setText("1-12:00:00")
    assert dialog.world.text() == "12 processes in all"
    dialog.out.setText(str(out))
    dialog.accept()
    assert not dialog.isVisible() and {p.name for p in dialog.paths} == CLUSTER_FILES
    assert {p.name for p in out.iterdir()} == CLUSTER_FILES | {"prompts.json"}
    spec = json.loads((out / "spec.json").read_text())
    assert spec["prompts"] == "prompts.json" and spec["run"] == "big" and spec["seed"] == 7
    assert (spec["images_per_class"], spec["batch_size"], spec["device"]) == (2, 10, "cpu")
    assert spec["sampler"]["steps"] == 4 and spec["project"] == str(panel.studio.project.root)
    assert PromptSet.load(out / "prompts.json").prompts == PromptSet.load(panel.studio.project.prompts_path).prompts
    sbatch = (out / "slurm.sbatch").read_text()
    assert "--nodes=3" in sbatch and "--gpus-per-node=4" in sbatch and "--time=1-12:00:00" in sbatch
    msg = panel.cluster_message
    assert msg is not None and str(out) in msg.text() and "sbatch slurm.sbatch" in msg.informativeText()
    msg.close()

    again = panel.export_for_cluster()  # a folder that cannot be written: the dialog stays open and says why
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    again.out.setText(str(blocker / "sub"))
    again.accept()
    assert again.isVisible() and "Could not export" in again.error.text()
    again.time_limit.setText("soon")  # the validator refuses letters
    assert again.time_limit.text() != "soon" or not again.time_limit.hasAcceptableInput()
    again.reject()


def test_distillation_on_two_processes_shows_its_result(qtbot, tmp_path, monkeypatch):
    from prism_gui.ui.distill_panel import DistillPanel
    from prism_gui.ui.testing import fake_catalog

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    studio = make_studio()
    studio.warm_up(wait=True)
    panel = DistillPanel(studio)
    qtbot.addWidget(panel)
    studio.set_project(fake_catalog(tmp_path / "proj", 100))
    if panel.processes.maximum() < 2:
        pytest.skip("this machine gives one process only")
    panel.processes.setValue(2)
    panel.epochs.setValue(1)
    panel.batch.setValue(32)
    job = panel.start()
    qtbot.waitUntil(lambda: job.state in ("finished", "failed"), timeout=120000)
    assert job.state == "finished", panel.error.text()
    qtbot.waitUntil(panel.start_button.isEnabled, timeout=5000)
    assert "student accuracy" in panel.result.text()
    assert panel.student is not None and panel.export_button.isEnabled()
    assert panel.runs["distill-1"].loss  # the curves follow the main process's events
    assert (tmp_path / "proj" / "runs" / "distill-1" / "student" / "model.safetensors").exists()
    assert Project.open(tmp_path / "proj").spec["distill"]["processes"] == 2


def test_opening_a_project_merges_rows_a_cluster_run_left_waiting(tmp_path, monkeypatch):
    from prism_gui.engine.data.image_files import write_image_files
    from prism_gui.engine.data.shards import shard_files, write_shard

    root = Project.create(tmp_path / "proj").root
    img = np.zeros((8, 8, 1), np.uint8)
    rows = [write_image_files(root, "cluster", i, img, class_index=0, class_name="0", prompt="p", seed=i,
                              generator="digits", settings={}) for i in range(3)]
    write_shard(root, "cluster", 1, rows)
    project = Project.open(root)
    assert not shard_files(root)
    with project.catalog() as cat:
        assert cat.count(run="cluster") == 3

    def read_only(*_a, **_k):
        raise PermissionError("read-only file system")

    monkeypatch.setattr("prism_gui.engine.scale.launch.merge_after", read_only)
    assert Project.open(root).root == root  # a project that cannot be written still opens
