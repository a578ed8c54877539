"""The app in a real X window on a laptop-sized screen (issue 28).

    python -m benchmarks.laptop_fit --json benchmarks/results/laptop_fit.json --shots docs/screenshots/laptop

Starts Xvfb (1366x768) with the openbox window manager, opens the app on a project of 2,000
images (``prism_gui.ui.testing.fake_catalog``) maximized, as a laptop user would, visits every
tab, sets the long status texts that used to widen the window, and records per tab: the window's
frame geometry as the window manager placed it, whether it lies on the screen, the window's
minimum size, and a screenshot of the whole screen.  Needs xvfb and openbox;
``tests/test_ui_fit.py`` is the offscreen check that runs in the default suite.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCREEN = (1366, 768)
TABS = ("world", "teacher", "prompts", "generate", "curate", "map", "distill", "report")
LONG = "a status text long enough to widen any row that does not wrap it " * 4


def _in_window(project: str, shots: str | None) -> dict:
    """Run inside the X session: the app, each tab, its geometry and a screenshot."""
    from PySide6.QtWidgets import QApplication

    from prism_gui.ui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    win = MainWindow(project=project, warm_up=False)
    win.showMaximized()

    def settle(seconds: float = 0.6) -> None:
        end = time.time() + seconds
        while time.time() < end:
            app.processEvents()
            time.sleep(0.02)

    settle(2.0)
    for label in (win.curate.message, win.curate.beyond, win.map.sel_label, win.map.status, win.generate.note,
                  win.distill.result):
        label.setText(LONG)
    out = {}
    for i, tab in enumerate(TABS):
        win.show_panel(tab)
        settle()
        frame = win.frameGeometry()
        hint = win.minimumSizeHint()
        on_screen = frame.left() >= 0 and frame.top() >= 0 and frame.right() < SCREEN[0] and \
            frame.bottom() < SCREEN[1]
        out[tab] = {"frame": [frame.x(), frame.y(), frame.width(), frame.height()],
                    "window": [win.width(), win.height()], "minimum": [hint.width(), hint.height()],
                    "on_screen": bool(on_screen)}
        if shots:  # the whole X screen, the window manager's frame included
            app.primaryScreen().grabWindow(0).save(str(Path(shots) / f"{i:02d}-{tab}.png"))
    win.close()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", type=Path)
    p.add_argument("--shots", type=Path, help="a folder for one screenshot per tab")
    p.add_argument("--inside", help=argparse.SUPPRESS)  # the project, when run inside the X session
    a = p.parse_args(argv)
    if a.inside:
        print("RESULT " + json.dumps(_in_window(a.inside, str(a.shots) if a.shots else None)), flush=True)
        return 0
    for tool in ("Xvfb", "openbox"):
        if shutil.which(tool) is None:
            print(f"laptop_fit needs {tool} (apt: xvfb, openbox)", file=sys.stderr)
            return 2
    from prism_gui.ui.testing import fake_catalog

    with tempfile.TemporaryDirectory(prefix="laptop-fit-") as tmp:
        project = fake_catalog(Path(tmp) / "project", 2000).root
        display = ":97"
        xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", f"{SCREEN[0]}x{SCREEN[1]}x24", "-nolisten", "tcp"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb", "HF_HUB_OFFLINE": "1",
               "PRISM_STUDIO_HOME": str(Path(tmp) / "home")}
        time.sleep(1.0)
        wm = subprocess.Popen(["openbox"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        try:
            if a.shots:
                a.shots.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, "-m", "benchmarks.laptop_fit", "--inside", str(project)]
            cmd += ["--shots", str(a.shots.resolve())] if a.shots else []
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        finally:
            wm.terminate()
            xvfb.terminate()
        line = next((x for x in r.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            print(r.stdout[-2000:], r.stderr[-4000:], file=sys.stderr)
            return 1
    tabs = json.loads(line[len("RESULT "):])
    res = {"screen": list(SCREEN), "window_manager": "openbox", "tabs": tabs,
           "all_on_screen": all(t["on_screen"] for t in tabs.values()),
           "largest_minimum": [max(t["minimum"][i] for t in tabs.values()) for i in (0, 1)],
           "command": "python -m benchmarks.laptop_fit " + " ".join(sys.argv[1:] if argv is None else argv)}
    print(json.dumps(res, indent=2))
    if a.json:
        a.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0 if res["all_on_screen"] else 1


if __name__ == "__main__":
    sys.exit(main())
