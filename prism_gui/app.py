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
    p.add_argument("--images-per-class", type=int, default=20, help="training images per class of a "
                   "headless run")
    p.add_argument("--screenshot", help="save a screenshot of the window to this PNG and quit")
    p.add_argument("--project", help="open this project folder (made if missing)")
    p.add_argument("--demo", action="store_true", help="open a fresh Digits demo project")
    p.add_argument("--autoplay", action="store_true", help="with --demo: play the demo at once")
    p.add_argument("--quick", action="store_true", help="with --demo: small settings (DemoSpec.quick())")
    p.add_argument("--screenshots", help="with --autoplay: save a PNG of every panel (and report.html) here")
    p.add_argument("--quit-when-done", action="store_true", help="with --autoplay: exit when the demo ends "
                   "(status 0 on success)")
    p.add_argument("--startup-time", type=float, metavar="T0", help="print 'SHOWN <seconds>' from T0 (a time.time() "
                   "taken by the caller before launching) to the window's first paint, then quit (benchmarks)")
    return p.parse_args(argv)


def run_headless(args) -> int:
    """The app's demo pipeline (``prism demo --quick``) without a window: prompts, guided
    generation, curation by energy, distillation and evaluation on the Digits world."""
    import dataclasses
    import json
    from pathlib import Path

    from prism_gui.engine.data.catalog import Catalog
    from prism_gui.engine.data.imaging import grid, to_uint8
    from prism_gui.engine.jobs import run_to_completion
    from prism_gui.engine.project.demo import DemoSpec, run_demo
    from prism_gui.engine.versions import manifest

    print("No display: running the Digits pipeline headless.", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = DemoSpec.quick(project=str(out / "project"), images_per_class=args.images_per_class)
    events = run_to_completion(run_demo(spec))
    res = events[-1].data["results"]
    (out / "results.json").write_text(json.dumps(res, indent=2))
    (out / "results.txt").write_text(res["table"] + "\n")
    (out / "manifest.json").write_text(json.dumps(
        manifest(dataclasses.asdict(spec), {"seed": spec.seed}, job="headless-demo"), indent=2, default=str))
    with Catalog(out / "project") as cat:
        ids = [i for k in range(10) for i in cat.ids(run="prism", classes=[k], statuses=["unreviewed", "keep"],
                                                        sort="energy_class")[:10]]
        x, _, _ = cat.load_images(ids=ids)
    cols = max(1, len(ids) // 10)
    grid(to_uint8(x), 10, cols).save(out / "samples.png")
    print(res["table"])
    print(f"results: {out.resolve()}/results.json, results.txt, samples.png (kept PRISM images), manifest.json; "
          f"the project (catalog, images, prompts) is in {out.resolve()}/project")
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["cli"]:  # `<app> cli COMMAND ...`: the CLI, e.g. torchrun's ranks re-executing a frozen app
        from prism_gui.cli import main as cli_main

        return cli_main(argv[1:])
    args = parse_args(argv)
    if args.headless or not has_display():
        return run_headless(args)
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("PRISM Studio")
    app.setOrganizationName("PRISM")
    from prism_gui.ui.main_window import MainWindow

    project = args.project
    if args.demo and not project:
        import time

        from prism_gui.engine.project.project import studio_home

        project = str(studio_home() / "projects" / time.strftime("demo-%Y%m%d-%H%M%S"))
    win = MainWindow(project=project)
    win.show()
    if args.demo and args.autoplay:
        QTimer.singleShot(300, lambda: win.play_demo(quick=args.quick, screenshots=args.screenshots,
                                                     quit_when_done=args.quit_when_done))
    if args.startup_time:
        import time

        def shown():
            print(f"SHOWN {time.time() - args.startup_time:.4f}", flush=True)
            app.quit()

        QTimer.singleShot(0, shown)
    if args.screenshot:
        def shoot():
            win.grab().save(args.screenshot)
            app.quit()

        QTimer.singleShot(500, shoot)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
