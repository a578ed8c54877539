"""Distill panel: a 2-epoch training job on a small catalog, live curves from buffers (redrawn
by a timer), runs overlaid, stop, and export of the student."""

import json

import numpy as np

from prism_gui.ui.common import make_studio
from prism_gui.ui.distill_curves import ema
from prism_gui.ui.distill_panel import DistillPanel
from prism_gui.ui.testing import fake_catalog


def test_ema_is_debiased():
    y = np.array([10.0, 10.0, 10.0])
    assert np.allclose(ema(y), 10.0)


def test_training_run_curves_and_export(qtbot, tmp_path):
    studio = make_studio()
    panel = DistillPanel(studio)
    qtbot.addWidget(panel)
    studio.set_project(fake_catalog(tmp_path / "proj", 200))
    assert panel.runs_list.count() == 2
    panel.select_runs(["prism"])
    assert panel.selected_runs() == ["prism"]
    panel.epochs.setValue(2)
    panel.batch.setValue(32)
    job = panel.start()
    qtbot.waitUntil(lambda: job.state == "finished", timeout=120000)
    qtbot.waitUntil(panel.start_button.isEnabled, timeout=5000)
    rc = panel.runs["distill-1"]
    assert len(rc.loss) == 8 and len(rc.acc) == 2  # 100 images / 32 per step * 2 epochs; one eval per epoch
    def drawn(key, n):  # the 5 Hz redraw timer fills the curves; xData is None until its first tick
        return bool(rc.items) and rc.items[key].xData is not None and len(rc.items[key].xData) == n

    qtbot.waitUntil(lambda: drawn("acc", 2) and drawn("smooth", 8), timeout=3000)
    assert len(rc.items["smooth"].xData) == 8
    assert "student accuracy" in panel.result.text()
    assert (tmp_path / "proj" / "runs" / "distill-1" / "student" / "model.safetensors").exists()
    assert panel.run_name.text() == "distill-2"
    out = tmp_path / "export"
    ejob = panel.export(str(out))
    qtbot.waitUntil(lambda: ejob.state == "finished", timeout=60000)
    assert (out / "student" / "model.safetensors").exists() and (out / "student" / "config.json").exists()
    card = (out / "student" / "README.md").read_text()  # the run's model card goes with the export
    from prism_gui.engine.training.export import _fmt

    result = job.last_event.data["result"]
    assert card.startswith("---\nlibrary_name: timm\n")  # the Hub reads the front matter
    assert f"| student accuracy | {_fmt(result['test_accuracy'], True)} |" in card  # this run's own number
    assert f"| architecture | {result['student']} |" in card and "| prism |" in card  # trained on the run chosen

    panel.epochs.setValue(50)  # a second run, overlaid, stopped early
    job2 = panel.start()
    qtbot.waitUntil(lambda: len(panel.runs["distill-2"].loss) >= 2, timeout=60000)
    panel.stop_button.click()
    qtbot.waitUntil(lambda: job2.state == "cancelled", timeout=30000)
    qtbot.waitUntil(lambda: bool(panel.runs["distill-2"].items), timeout=3000)
    assert len(panel.runs) == 2


def test_speed_settings_reach_the_job_and_persist_in_the_project(qtbot, tmp_path):
    from prism_gui.engine.project.project import Project

    studio = make_studio()
    panel = DistillPanel(studio)
    qtbot.addWidget(panel)
    studio.warm_up(wait=True)
    assert panel.auto_speed == "auto on this machine (cpu): fp32, channels_last off"
    assert panel.auto_speed in panel.precision.toolTip()
    studio.set_project(fake_catalog(tmp_path / "proj", 100))
    s = panel.settings()
    assert (s["precision"], s["channels_last"], s["compile"]) == ("auto", "auto", False)  # the defaults
    panel.precision.setCurrentText("bf16")
    panel.channels_last.setCurrentText("on")
    panel.epochs.setValue(1)
    job = panel.start()
    qtbot.waitUntil(lambda: job.state == "finished", timeout=120000)
    assert job.last_event.data["result"]["speed"] == {"precision": "bf16", "channels_last": True, "compile": False}
    spec = json.loads((tmp_path / "proj" / "runs" / "distill-1" / "spec.json").read_text())
    assert (spec["precision"], spec["channels_last"], spec["compile"]) == ("bf16", True, False)
    d = Project.open(tmp_path / "proj").spec["distill"]  # saved with the project ...
    assert (d["precision"], d["channels_last"], d["compile"]) == ("bf16", True, False)
    panel.precision.setCurrentText("auto")
    panel.channels_last.setCurrentText("off")
    studio.set_project(Project.open(tmp_path / "proj"))  # ... and shown again when it is opened
    assert (panel.precision.currentText(), panel.channels_last.currentText()) == ("bf16", "on")
    assert not panel.compile.isChecked()


def test_a_run_name_that_is_a_path_is_refused_at_start(distill_panel_on, tmp_path):
    panel = distill_panel_on(fake_catalog(tmp_path / "proj", 20))
    panel.run_name.setText("../../escape")
    assert panel.start() is None and "path separator" in panel.error.text()
    assert not (tmp_path / "escape").exists() and not (tmp_path / "proj" / "runs").exists()
