"""The app: full start-up in a subprocess, the headless Digits run, and the window offscreen."""

import json
import os
import subprocess
import sys

from PIL import Image


def test_app_starts_in_a_subprocess_and_shows_its_window(root, tmp_path):
    shot = tmp_path / "window.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    r = subprocess.run([sys.executable, "-m", "prism_gui", "--screenshot", str(shot)], cwd=root, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    img = Image.open(shot)
    assert img.width >= 800 and img.height >= 500
    assert len(set(img.convert("L").getdata())) > 5, "the window rendered nothing"


def test_without_a_display_the_app_runs_the_digits_pipeline_headless(root, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "prism_gui", "--out", str(out), "--images-per-class", "2"],
                       cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "headless" in r.stdout
    res = json.loads((out / "results.json").read_text())
    assert res["teacher_test_accuracy"] >= 0.97 and res["images"] == 20
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["versions"]["torch"] and manifest["spec"]["images_per_class"] == 2
    assert Image.open(out / "samples.png").size[0] > 50


def test_world_panel_samples_the_prior_through_a_job(qtbot):
    from prism_gui.ui.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    win.world.count.setValue(1)
    win.world.button.click()
    assert not win.world.button.isEnabled()
    job = win.jobs.jobs[-1]
    qtbot.waitUntil(lambda: job.state == "finished", timeout=120000)
    qtbot.waitUntil(lambda: win.world.button.isEnabled(), timeout=5000)
    assert win.world.image.pixmap() is not None and not win.world.image.pixmap().isNull()
    assert "teacher agrees" in win.world.status.text()
