"""An unwritable settings folder or project folder is a clear message, not a traceback: the app
starts, says what it cannot keep and how to fix it, and the CLI names the folder."""

import os
import subprocess
import sys

from PySide6.QtWidgets import QMessageBox


def test_the_app_starts_when_its_settings_and_projects_folder_cannot_be_made(qtbot, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.write_text("a file where the app's folder should be")
    monkeypatch.setenv("PRISM_STUDIO_HOME", str(home))
    warnings = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _p, title, text, *a, **k: warnings.append((title, text)))
    from prism_gui.ui.main_window import MainWindow

    win = MainWindow(warm_up=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: bool(warnings), timeout=5000)
    assert "Settings cannot be saved" in win.statusBar().currentMessage()
    assert str(home / "config") in win.settings.problem and "PRISM_STUDIO_HOME" in win.settings.problem
    title, text = warnings[0]
    assert title == "Cannot open project" and "cannot create the project folder" in text
    assert "PRISM_STUDIO_HOME" in text and "Not a directory" in text
    win.settings.set("k", "v")  # the session's settings still work, in memory
    assert win.settings.str("k") == "v"
    assert win.studio.project is None  # no project, and still a working window: one can be opened
    assert win.open_project(tmp_path / "elsewhere") is not None


def test_the_cli_names_a_project_folder_it_cannot_make(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = subprocess.run([sys.executable, "-m", "prism_gui.cli", "demo", "--quick", "--project", str(blocker / "p")],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert str(blocker / "p") in r.stderr
