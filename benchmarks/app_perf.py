"""Performance of the desktop app (offscreen).

    QT_QPA_PLATFORM=offscreen python benchmarks/app_perf.py [--quick] [--out benchmarks/results/app_perf.json]

- ``startup``: seconds from launching ``python -m prism_gui`` to its window being shown and
  painted (median of several launches; the app prints nothing, so a tiny driver script times
  the same start-up path: QApplication, MainWindow on a fresh project, show, first paint);
- ``event_loop``: the longest gap of a 10 ms QTimer on the GUI thread while the Generate panel
  runs a generation job and then the Distill panel a training job, each streaming its progress
  into the panels (goal: under 50 ms); also while the app warms up (imports torch and the
  engine in a thread right after the window shows), reported apart;
- ``gallery``: on a 100,000-image catalog, the time to apply a filter/sort in the gallery model
  and to scroll the Curate view from top to bottom one page at a time (the longest page).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

STARTUP_DRIVER = r"""
import sys, time
t0 = float(sys.argv[1])
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
app = QApplication(sys.argv[:1])
from prism_gui.ui.main_window import MainWindow
win = MainWindow(project=sys.argv[2])
win.show()
def painted():
    print(f"SHOWN {time.time() - t0:.4f}", flush=True)
    print("TORCH_LOADED", "torch" in sys.modules, flush=True)
    app.quit()
QTimer.singleShot(0, painted)
app.exec()
"""


def bench_startup(repeat: int) -> dict:
    times, torch_loaded = [], []
    for i in range(repeat):
        proj = tempfile.mkdtemp(prefix="prism-app-perf-")
        env = {**os.environ, "PRISM_STUDIO_HOME": tempfile.mkdtemp(prefix="prism-home-")}
        out = subprocess.run([sys.executable, "-c", STARTUP_DRIVER, repr(time.time()), f"{proj}/p{i}"], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=120)
        line = next(ln for ln in out.stdout.splitlines() if ln.startswith("SHOWN"))
        times.append(float(line.split()[1]))
        torch_loaded.append("TORCH_LOADED True" in out.stdout)
    return {"launches": repeat, "seconds_median": statistics.median(times), "seconds_all": times,
            "torch_imported_before_shown": any(torch_loaded)}


def _wait(app, cond, timeout: float = 600) -> None:
    t0 = time.time()
    while not cond():
        app.processEvents()
        time.sleep(0.002)
        if time.time() - t0 > timeout:
            raise TimeoutError("job did not finish")


def bench_event_loop(quick: bool) -> dict:
    from PySide6.QtWidgets import QApplication

    from prism_gui.engine.project.project import Project
    from prism_gui.ui.common import make_studio
    from prism_gui.ui.distill_panel import DistillPanel
    from prism_gui.ui.generate_panel import GeneratePanel
    from prism_gui.ui.testing import StallProbe

    app = QApplication.instance() or QApplication([])
    studio = make_studio()
    gen, dist = GeneratePanel(studio), DistillPanel(studio)
    studio.set_project(Project.create(Path(tempfile.mkdtemp(prefix="prism-app-perf-")) / "proj"))
    gen.show()
    dist.show()
    # the app's warm-up after the window shows: torch and the engine imported in a thread
    out: dict = {}
    probe = StallProbe()
    torch_before = "torch" in sys.modules
    probe.start()
    t0 = time.time()
    studio.warm_up()
    _wait(app, lambda: studio.ready)
    probe.stop()
    out["warm_up"] = {"seconds": round(time.time() - t0, 2), "torch_imported_before": torch_before,
                      **probe.summary()}
    gen.prompt_source.setCurrentIndex(1)  # plain class names
    gen.per_class.setValue(4 if quick else 30)
    gen.steps.setValue(4 if quick else 30)
    gen.batch.setValue(10 if quick else 50)
    for name, start in (("generation", gen.start), ("distillation", None)):
        if name == "distillation":
            studio.set_project(studio.project)  # refresh the run list with the new images
            dist.select_runs(["run-1"])
            dist.epochs.setValue(2 if quick else 20)
            start = dist.start
        probe.start()
        t0 = time.time()
        job = start()
        _wait(app, lambda job=job: job.state in ("finished", "failed", "cancelled"))
        probe.stop()
        out[name] = {"job_seconds": round(time.time() - t0, 2), "state": job.state, **probe.summary()}
    out["longest_stall_ms_during_jobs"] = max(out[k]["longest_stall_ms"] for k in ("generation", "distillation"))
    out["goal_ms"] = 50
    return out


def bench_gallery(quick: bool) -> dict:
    from PySide6.QtWidgets import QApplication

    from prism_gui.ui.common import make_studio
    from prism_gui.ui.curate_panel import CuratePanel
    from prism_gui.ui.testing import fake_catalog

    app = QApplication.instance() or QApplication([])
    n = 5000 if quick else 100_000
    project = fake_catalog(Path(tempfile.mkdtemp(prefix="prism-app-perf-")) / "big", n)
    studio = make_studio()
    panel = CuratePanel(studio)
    panel.resize(1500, 850)
    panel.show()
    t0 = time.perf_counter()
    studio.set_project(project)
    app.processEvents()
    open_s = time.perf_counter() - t0
    model = panel.model
    queries = {"class 3, energy <= 0.5, by energy": ({"classes": [3], "energy_max": 0.5}, "energy", False),
               "prompt contains 'bold', by confidence": ({"text": "bold"}, "confidence", True),
               "unreviewed, by energy": ({"statuses": ["unreviewed"]}, "energy", False),
               "everything, by id": ({}, "id", False)}
    filt = {}
    for name, (f, sort, desc) in queries.items():
        t0 = time.perf_counter()
        model.set_query(f, sort=sort, descending=desc)
        app.processEvents()
        filt[name] = {"ms": 1000 * (time.perf_counter() - t0), "rows": model.rowCount()}
    # scroll the whole gallery one page at a time, painting each page; the view lays out its rows
    # in batches while idle, so the scroll range grows as it goes: stop at the last row
    model.set_query({}, sort="id")
    app.processEvents()
    bar = panel.view.verticalScrollBar()

    def at_end() -> bool:
        rect = panel.view.visualRect(model.index(model.rowCount() - 1, 0))
        return panel.view.viewport().rect().intersects(rect)

    pages, worst = 0, 0.0
    t_all = time.perf_counter()
    value = 0
    limit = 50 if quick else 100_000
    while pages < limit:
        t0 = time.perf_counter()
        bar.setValue(value)
        panel.view.viewport().repaint()
        app.processEvents()
        worst = max(worst, time.perf_counter() - t0)
        pages += 1
        if at_end():
            break
        value = min(value + bar.pageStep(), bar.maximum())
    reached_end = at_end()
    scroll_s = time.perf_counter() - t_all
    model.wait_for_thumbnails()
    return {"images": n, "open_ms": 1000 * open_s, "filter_sort": filt, "scroll_pages": pages,
            "scrolled_to_last_image": reached_end,
            "scroll_seconds": scroll_s, "slowest_page_ms": 1000 * worst,
            "mean_page_ms": 1000 * scroll_s / max(1, pages)}


def bench_thousand_classes(quick: bool) -> dict:
    """A 1,000-class project: 40,000 prompts in the Prompts panel (load, filter by class, the
    counts line), the Curate panel's class filter, and the report with its per-class table."""
    import numpy as np
    from PySide6.QtWidgets import QApplication

    from prism_gui.engine.data.catalog import Catalog
    from prism_gui.engine.project.project import Project
    from prism_gui.engine.project.report import report_job
    from prism_gui.engine.prompts import class_phrases, expand, load_bank
    from prism_gui.engine.teachers.classes import imagenet_class_ids, imagenet_class_names
    from prism_gui.ui.common import make_studio
    from prism_gui.ui.curate_panel import CuratePanel
    from prism_gui.ui.prompts_panel import PromptsPanel

    app = QApplication.instance() or QApplication([])
    names, desc = imagenet_class_names()
    project = Project.create(Path(tempfile.mkdtemp(prefix="prism-app-perf-")) / "in1k")
    project.section("teacher").update(kind="checkpoint", source="resnet50", checkpoint="/m.safetensors",
                                      class_names=names, class_ids=imagenet_class_ids())
    project.section("evaluation").update(set="", mapping=None)
    project.save()
    per_class = 4 if quick else 40
    t0 = time.perf_counter()
    ps = expand(names, load_bank("natural"), per_class=per_class, seed=0,
                phrases=class_phrases(names, desc, "definition"))
    expand_s = time.perf_counter() - t0
    studio = make_studio()
    prompts = PromptsPanel(studio)
    prompts.resize(1400, 850)
    prompts.show()
    studio.set_project(project)
    t0 = time.perf_counter()
    studio.set_prompts(ps)
    app.processEvents()
    load_ms = 1000 * (time.perf_counter() - t0)
    filter_ms = []
    for k in (134, 517, 999, 0):
        t0 = time.perf_counter()
        prompts.class_filter.setCurrentIndex(k + 1)
        app.processEvents()
        filter_ms.append(1000 * (time.perf_counter() - t0))
    t0 = time.perf_counter()
    prompts.model.setData(prompts.model.index(5, 3), "2.0")  # one edit: counts and checks are redone
    app.processEvents()
    edit_ms = 1000 * (time.perf_counter() - t0)
    # a catalog of 2 images per class for the Curate panel and the report
    rng = np.random.default_rng(0)
    with Catalog(project.root) as cat:
        cat.start_run("sd", "generate", {})
        for i in range(2 * len(names)):
            k = i // 2
            img = (rng.uniform(0, 255, 3) * np.ones((32, 32, 3))).astype(np.uint8)
            e = float(rng.uniform(0, 3))
            cat.add_image("sd", i, img, class_index=k, class_name=names[k], prompt="p", seed=i, generator="sd",
                          settings={}, score={"energy": e, "energies": {"class": e}, "top5": [[k, 0.5]],
                                              "confidence": 0.5, "entropy": 1.0, "correct": True})
        cat.finish_run("sd")
    curate = CuratePanel(studio)
    curate.resize(1400, 850)
    curate.show()
    t0 = time.perf_counter()
    studio.set_project(Project.open(project.root))
    app.processEvents()
    open_ms = 1000 * (time.perf_counter() - t0)
    t0 = time.perf_counter()
    curate.klass.setCurrentIndex(518)
    curate.apply_filters()
    app.processEvents()
    class_filter_ms = 1000 * (time.perf_counter() - t0)
    t0 = time.perf_counter()
    report = list(report_job(project.root))[-1].data["report"]
    html = report.to_html()
    report_s = time.perf_counter() - t0
    return {"classes": len(names), "prompts": len(ps.prompts), "expand_seconds": expand_s,
            "prompts_panel_load_ms": load_ms, "prompts_class_filter_ms": filter_ms, "prompts_edit_ms": edit_ms,
            "curate_open_ms": open_ms, "curate_class_filter_ms": class_filter_ms, "report_seconds": report_s,
            "report_html_kb": len(html) // 1024}


BENCHES = {"startup": None, "event_loop": bench_event_loop, "gallery": bench_gallery,
           "thousand_classes": bench_thousand_classes}


def _event_loop_in_a_new_process(quick: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.json"
        subprocess.run([sys.executable, __file__, "--only", "event_loop", "--out", str(out), *(["--quick"] if quick
                                                                                               else [])],
                       check=True, capture_output=True)
        return json.loads(out.read_text())["event_loop"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes (used by the test suite)")
    p.add_argument("--only", nargs="*", choices=sorted(BENCHES))
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "app_perf.json")
    p.add_argument("--repeat", type=int, default=1, help="event_loop: run it this many times; the results keep the "
                   "worst run (the longest stall during the jobs) and every run's stalls")
    a = p.parse_args(argv)
    res = {"command": "QT_QPA_PLATFORM=offscreen python benchmarks/app_perf.py" + (" --quick" if a.quick else ""),
           "date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count()}
    if a.only and a.out.exists():  # a partial run updates its sections of the committed results
        res = {**json.loads(a.out.read_text()), **res}
        res["command"] += " --only " + " ".join(a.only)
    if a.repeat > 1:
        res["command"] += f" --repeat {a.repeat}"
    for name in a.only or BENCHES:
        if name == "event_loop" and a.repeat > 1:
            runs = [_event_loop_in_a_new_process(a.quick) for _ in range(a.repeat)]  # each with its own warm-up
            res[name] = {**max(runs, key=lambda r: r["longest_stall_ms_during_jobs"]),
                         "repeats": [{k: round(r[k]["longest_stall_ms"], 1) for k in ("warm_up", "generation",
                                                                                      "distillation")} for r in runs]}
        else:
            res[name] = bench_startup(2 if a.quick else 5) if name == "startup" else BENCHES[name](a.quick)
        print(name, json.dumps(res[name], indent=1), flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2))
    print("wrote", a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
