"""``prism-gui``: PRISM Studio, opening on the built-in Digits world.

With no display (Linux without ``DISPLAY``/``WAYLAND_DISPLAY`` and no ``QT_QPA_PLATFORM``), or
with ``--headless``, it runs the same Digits pipeline without a window and writes its results.
"""

from __future__ import annotations

import argparse
import os
import sys


def has_display() -> bool:
    if os.environ.get("QT_QPA_PLATFORM"):
        return True
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="prism-gui", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--headless", action="store_true", help="run the Digits pipeline without a window")
    p.add_argument("--out", default="prism-digits-run", help="results folder for headless runs")
    p.add_argument("--images-per-class", type=int, default=10)
    p.add_argument("--screenshot", help="save a screenshot of the window to this PNG and quit")
    return p.parse_args(argv)


def run_headless(args) -> int:
    from prism_gui.engine.jobs import run_to_completion
    from prism_gui.engine.world import WorldCheckSpec, run_world_check

    print("No display: running the Digits pipeline headless.", flush=True)
    spec = WorldCheckSpec(out_dir=args.out, images_per_class=args.images_per_class)
    events = run_to_completion(run_world_check(spec))
    res = events[-1].data["results"]
    print(f"teacher test accuracy {100 * res['teacher_test_accuracy']:.2f}%; teacher agrees with the "
          f"prompt on {100 * res['teacher_agrees_with_prompt']:.1f}% of {res['images']} prior samples")
    print(f"results: {os.path.abspath(args.out)}/results.json, samples.png, manifest.json")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.headless or not has_display():
        return run_headless(args)
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("PRISM Studio")
    app.setOrganizationName("PRISM")
    from prism_gui.ui.main_window import MainWindow

    win = MainWindow()
    win.show()
    if args.screenshot:
        def shoot():
            win.grab().save(args.screenshot)
            app.quit()

        QTimer.singleShot(500, shoot)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
