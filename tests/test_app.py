"""The app: full start-up in a subprocess, the headless Digits run, the main window offscreen
(panels, shortcuts, settings, job errors, closing with a running job) and the demo autopilot."""

import json
import os
import subprocess
import sys
import threading

import pytest
from PIL import Image
from PySide6.QtWidgets import QMessageBox

from prism_gui.engine.jobs import Event


@pytest.fixture(autouse=True)
def studio_home(tmp_path, monkeypatch):
    home = tmp_path / "studio-home"
    monkeypatch.setenv("PRISM_STUDIO_HOME", str(home))
    return home


def make_window(qtbot, tmp_path, project=None, warm_up=False):
    from prism_gui.ui.main_window import MainWindow

    win = MainWindow(project=project, warm_up=warm_up)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.studio.project is not None, timeout=5000)
    return win


def test_app_starts_in_a_subprocess_and_shows_its_window(root, tmp_path):
    shot = tmp_path / "window.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    r = subprocess.run([sys.executable, "-m", "prism_gui", "--screenshot", str(shot)], cwd=root, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    img = Image.open(shot)
    assert img.width >= 800 and img.height >= 500
    assert len(set(img.convert("L").tobytes())) > 5, "the window rendered nothing"
    # first launch: a Digits project in the user data folder, ready to run
    assert (tmp_path / "studio-home" / "projects" / "digits" / "project.json").exists()


def test_window_shows_before_torch_is_imported(root):
    code = ("import sys, os\nos.environ['QT_QPA_PLATFORM']='offscreen'\n"
            "from PySide6.QtWidgets import QApplication\napp = QApplication([])\n"
            "from prism_gui.ui.main_window import MainWindow\nw = MainWindow(warm_up=False)\nw.show()\n"
            "app.processEvents()\nprint('torch' in sys.modules, 'diffusers' in sys.modules, 'timm' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120,
                       env={**os.environ})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False", "False"]


def test_without_a_display_the_app_runs_the_digits_pipeline_headless(root, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "prism_gui", "--out", str(out), "--images-per-class", "2"],
                       cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "headless" in r.stdout
    res = json.loads((out / "results.json").read_text())
    assert res["teacher_accuracy"] >= 0.97 and res["images_per_class"] == 2
    assert set(res["methods"]) == {"real-data KD (upper bound)", "plain prompts", "PRISM"}
    assert res["methods"]["PRISM"]["training_images"] == 20
    assert "PRISM" in (out / "results.txt").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["versions"]["torch"] and manifest["spec"]["images_per_class"] == 2
    assert Image.open(out / "samples.png").size[0] > 50


def test_world_panel_samples_the_prior_through_a_job(qtbot, tmp_path):
    win = make_window(qtbot, tmp_path)
    win.world.count.setValue(1)
    win.world.button.click()
    assert not win.world.button.isEnabled()
    job = win.jobs.jobs[-1]
    qtbot.waitUntil(lambda: job.state == "finished", timeout=120000)
    qtbot.waitUntil(lambda: win.world.button.isEnabled(), timeout=5000)
    assert win.world.image.pixmap() is not None and not win.world.image.pixmap().isNull()
    assert "teacher agrees" in win.world.status.text()


def test_panels_shortcuts_projects_and_typed_settings(qtbot, tmp_path):
    from PySide6.QtCore import Qt

    proj = tmp_path / "p1"
    win = make_window(qtbot, tmp_path, project=proj)
    assert (proj / "project.json").exists() and win.windowTitle().endswith("p1")
    for i, name in enumerate(("teacher", "prompts", "generate", "curate", "distill", "report")):
        qtbot.keyClick(win, Qt.Key(Qt.Key.Key_1 + i), Qt.KeyboardModifier.ControlModifier)
        assert win.tabs.currentWidget() is win.panels[name]
    qtbot.keyClick(win, Qt.Key.Key_M, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert win.tabs.currentWidget() is win.map
    qtbot.keyClick(win, Qt.Key.Key_6, Qt.KeyboardModifier.ControlModifier)
    assert all(win.tabs.tabToolTip(i) for i in range(win.tabs.count()))
    win.open_project(tmp_path / "p2")
    assert win.settings.recent_projects()[:2] == [str(tmp_path / "p2"), str(proj)]
    assert [a.text() for a in win.recent_menu.actions()][:2] == [str(tmp_path / "p2"), str(proj)]
    win.close()
    assert win.settings.int("window/tab", -1) == 7 and win.settings.bytes("window/geometry")  # the report's tab
    win2 = make_window(qtbot, tmp_path)
    assert win2.studio.project.root == tmp_path / "p2"  # the last project reopens
    assert win2.tabs.currentWidget() is win2.report


def test_a_failing_job_shows_a_dialog_and_the_app_stays_usable(qtbot, tmp_path):
    win = make_window(qtbot, tmp_path)

    def broken(token):
        yield Event("work", 1, 2)
        raise ValueError("the input is bad: give a good one")

    job = win.studio.submit("Broken job", broken)
    qtbot.waitUntil(lambda: job.state == "failed", timeout=10000)
    qtbot.waitUntil(lambda: bool(win.findChildren(QMessageBox, "job_error_dialog")), timeout=5000)
    box = win.findChildren(QMessageBox, "job_error_dialog")[-1]
    assert "the input is bad" in box.text() and "Traceback" in box.detailedText()
    assert box.windowTitle() == "Broken job failed"
    box.close()
    ok = win.studio.submit("Fine job", lambda token: iter([Event("work", 1, 1)]))
    qtbot.waitUntil(lambda: ok.state == "finished", timeout=10000)
    assert win.job_label.text() == "idle"


def test_closing_with_a_running_job_asks_first(qtbot, tmp_path, monkeypatch):
    win = make_window(qtbot, tmp_path)
    gate = threading.Event()

    def waiting(token):
        while not gate.wait(0.02):
            token.raise_if_cancelled()
            yield Event("wait", 0, 1)

    job = win.studio.submit("Long job", waiting)
    qtbot.waitUntil(lambda: job.state == "running", timeout=5000)
    assert "Long job" in win.job_label.text()
    answers = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: answers.pop(0))
    answers.append(QMessageBox.StandardButton.No)
    assert not win.close()
    assert win.isVisible() and job.state == "running"
    answers.append(QMessageBox.StandardButton.Yes)
    assert win.close()
    assert job.state == "cancelled"


def test_demo_autopilot_drives_every_panel_and_saves_screenshots(qtbot, tmp_path):
    win = make_window(qtbot, tmp_path, project=tmp_path / "demo", warm_up=True)
    qtbot.waitUntil(lambda: win.studio.ready, timeout=60000)
    assert win.distill.student_name.count() >= 4  # filled from the engine's STUDENTS registry
    assert "bn" in win.generate.energy_checks  # and the energy terms from ENERGIES
    assert win.device_label.text() == "device: cpu"
    shots = tmp_path / "shots"
    tiny = dict(images_per_class=2, oversample=2, prompts_per_class=2, epochs=1, steps=4, batch_size=20,
                world_per_class=1, map_method="pca")
    stages = []
    pilot = win.play_demo(quick=True, screenshots=str(shots), overrides=tiny)
    pilot.stage_changed.connect(stages.append)
    with qtbot.waitSignal(pilot.done, timeout=240000) as blocker:
        pass
    assert blocker.args == [True], pilot.failed
    assert stages[-1] == "report" and "distill: PRISM" in stages
    names = sorted(p.name for p in shots.glob("*.png"))
    assert names == ["00-overview.png", "01-teacher.png", "02-prompts.png", "03-generate.png", "04-curate.png",
                     "04b-map.png", "04c-duplicates.png", "04d-holes.png", "05-distill.png", "06-report.png",
                     "report-page.png"]
    assert win.map.data is not None and win.map.cov_table.rowCount() == 10
    assert "data:image/png;base64," in (shots / "report.html").read_text()
    with win.studio.project.catalog() as cat:
        assert cat.count(run="plain-1") == 20 and cat.count(run="prism-1") == 40
        assert cat.count(run="prism-1", statuses=["reject"]) > 0
        assert len(cat.runs("distill")) == 2


def test_open_project_never_writes_into_a_folder_the_user_did_not_confirm(qtbot, tmp_path, monkeypatch):
    """Issue 28's guard: File > Open on a folder of other files asks first; No writes nothing."""
    from PySide6.QtWidgets import QMessageBox

    win = make_window(qtbot, tmp_path, project=tmp_path / "p1")
    qtbot.waitUntil(lambda: win.studio.project is not None, timeout=10000)
    photos = tmp_path / "holiday-photos"
    photos.mkdir()
    (photos / "beach.jpg").write_bytes(b"not really a jpeg")
    asked = []
    answer = [QMessageBox.StandardButton.No]
    monkeypatch.setattr(QMessageBox, "question", lambda _p, _t, text, *a, **k: asked.append(text) or answer[0])
    assert win.open_project(photos) is None
    assert sorted(p.name for p in photos.iterdir()) == ["beach.jpg"]  # nothing written
    assert "is not a PRISM project" in asked[0] and "beach.jpg" in asked[0]
    assert win.studio.project.root == tmp_path / "p1"  # the open project stays open
    answer[0] = QMessageBox.StandardButton.Yes
    assert win.open_project(photos) is not None and (photos / "project.json").exists()
    assert win.open_project(tmp_path / "new-empty") is not None and len(asked) == 2  # a new folder: no question
    win.close()


def test_help_getting_started_explains_the_first_clicks_and_the_numbers(qtbot, tmp_path):
    from PySide6.QtWidgets import QMenu, QMessageBox

    from prism_gui.ui.main_window import MainWindow

    win = MainWindow(project=str(tmp_path / "proj"), warm_up=False)
    qtbot.addWidget(win)
    action = next(a for m in win.menuBar().findChildren(QMenu)
                  for a in m.actions() if a.text() == "&Getting started")
    action.trigger()
    box = win.findChild(QMessageBox, "getting_started")
    assert box is not None and box.isVisible()
    for words in ("Load teacher", "Expand", "Start training", "Lower is better", "EDA", "DPE", "density"):
        assert words in box.text(), words
