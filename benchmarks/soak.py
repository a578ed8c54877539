"""Soak (issue 13): the app, offscreen, runs a random queue of jobs for a long time.

    QT_QPA_PLATFORM=offscreen python -m benchmarks.soak --minutes 30 --json benchmarks/results/soak.json

The main window on a new Digits project; after a warm-up (teacher, prompts, one plain and one
guided generation), a random job at a time through the panels' own controls, as a user clicks
them: a generation (plain or guided, a new run), pilot prompt scoring, a curation action (reject
beyond an energy line, keep the lowest per class, reject or keep a selection, undo), a
precision/recall measurement, a distillation (1 epoch), the report.  A job is cancelled at a
random moment with probability 0.25 and paused then resumed with probability 0.1; between jobs a
random pause of 0 to 1.5 s.

Figures: jobs run by kind and outcome, failed jobs and error dialogs, uncaught exceptions (Python
and threads), the longest stall of the event loop (a 20 ms timer's longest late arrival), memory
(resident set) growth per hour fitted after the first quarter, and the file handles and threads
open at the end against those after the warm-up.  ``tests/reliability/test_soak.py`` runs it for
one minute.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

KINDS = ("generate", "score", "curate", "prdc", "distill", "report")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _fd_targets() -> list[str]:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return out


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


class Soak:
    """Drives one MainWindow; :meth:`run` returns the figures."""

    def __init__(self, win, seconds: float, seed: int = 0, trace: bool = False):
        self.trace = trace  # tracemalloc from the warm-up on: where Python's memory grows (slows the jobs)
        from PySide6.QtCore import QTimer

        from prism_gui.ui.autopilot import Autopilot

        self.win = win
        self.seconds = seconds
        self.rng = random.Random(seed)
        self.pilot = Autopilot(win, quick=True, overrides={"images_per_class": 3, "oversample": 2, "steps": 4,
                                                            "epochs": 1, "prompts_per_class": 3})
        self.jobs: list[dict] = []
        self.exceptions: list[str] = []
        self.max_gap = self.job_gap = 0.0
        self.memory: list[tuple[float, float]] = []
        self._last = time.perf_counter()
        self._tick = QTimer()
        self._tick.setInterval(20)
        self._tick.timeout.connect(self._on_tick)
        self._sample = QTimer()
        self._sample.setInterval(2000)
        self._sample.timeout.connect(lambda: self.memory.append((time.perf_counter() - self.t0, _rss_mb())))
        self._gen_runs: list[str] = []

    # ---- measuring
    def _on_tick(self) -> None:
        now = time.perf_counter()
        self.max_gap = max(self.max_gap, now - self._last - 0.020)
        self.job_gap = max(self.job_gap, now - self._last - 0.020)
        self._last = now

    def _hooks(self):
        old_sys, old_thr = sys.excepthook, threading.excepthook

        def on_exc(t, v, tb):
            self.exceptions.append(f"{t.__name__}: {v}")
            old_sys(t, v, tb)

        def on_thread(args):
            self.exceptions.append(f"thread {args.exc_type.__name__}: {args.exc_value}")
            old_thr(args)

        sys.excepthook, threading.excepthook = on_exc, on_thread
        return old_sys, old_thr

    # ---- driving
    def _wait(self, job, cancel: bool = False, pause: bool = False) -> str:
        """Run the event loop until ``job`` ends; cancel or pause/resume it at a random moment."""
        from PySide6.QtCore import QEventLoop, QTimer

        if job is None:
            return "finished"
        outcome = {}
        loop = QEventLoop()
        job.ended.connect(lambda o: (outcome.setdefault("o", o), loop.quit()))
        if job.state in ("finished", "cancelled", "failed"):
            return job.state
        if cancel:
            QTimer.singleShot(int(self.rng.uniform(50, 3000)), job.cancel)
        elif pause:
            at = int(self.rng.uniform(50, 1500))
            QTimer.singleShot(at, job.pause)
            QTimer.singleShot(at + int(self.rng.uniform(100, 1500)), job.resume)
        QTimer.singleShot(600_000, loop.quit)  # a job that never ends is a failure, not a hang
        if "o" not in outcome:
            loop.exec()
        return outcome.get("o", "hung")

    def _idle(self, seconds: float) -> None:
        from PySide6.QtCore import QEventLoop, QTimer

        loop = QEventLoop()
        QTimer.singleShot(int(seconds * 1000), loop.quit)
        loop.exec()

    def _do(self, kind: str, warm: bool = False) -> None:
        p, win = self.pilot, self.win
        cancel = not warm and self.rng.random() < 0.25
        pause = not warm and not cancel and self.rng.random() < 0.1
        t = time.perf_counter()
        self.job_gap = 0.0
        if kind == "generate":
            guided = (warm and len(self._gen_runs) == 1) or (not warm and self.rng.random() < 0.5)
            base = "prism" if guided else "plain"
            win.show_panel("generate")
            per_class = 3 if warm else self.rng.randint(2, 8)
            before = dict(p.runs)
            job = p._generate(base, per_class * (2 if guided else 1), guided=guided)
            self._gen_runs.append(p.runs[base])
            self._after_generate = (base, before.get(base))
        elif kind == "score":
            win.show_panel("prompts")
            job = p.score_prompts()
        elif kind == "curate":
            win.show_panel("curate")
            c = win.curate
            c.refresh()
            action = self.rng.choice(["beyond", "lowest", "reject", "keep", "undo"])
            job = None
            if action == "beyond":
                e = c.cat.column("energy").astype(float)
                c.reject_beyond("energy", float(np.quantile(e, self.rng.uniform(0.5, 0.95))),
                                spare_kept=self.rng.random() < 0.5)  # as a user answers the question
            elif action == "lowest":
                job = c.select_per_class(self.rng.randint(2, 5), "lowest")
            elif action in ("reject", "keep") and c.model.rowCount():
                c.view.setCurrentIndex(c.model.index(self.rng.randrange(c.model.rowCount())))
                c.set_status(action)
            else:
                c.undo()
            kind = f"curate: {action}"
        elif kind == "prdc":
            win.show_panel("curate")
            win.curate.refresh()
            job = win.curate.compute_prdc(runs=self._gen_runs[-2:])
        elif kind == "distill" and not self._usable():  # curation rejected every image: generate more first
            return self._do("generate")
        elif kind == "distill":
            win.show_panel("distill")
            p.spec["epochs"] = self.rng.randint(1, 3)
            job = p._distill(self.rng.choice(self._usable()))
        else:
            win.show_panel("report")
            job = win.report.build()
        outcome = self._wait(job, cancel, pause)
        if kind == "generate" and outcome != "finished":  # a run cancelled early may hold no image:
            base, previous = self._after_generate  # distillations keep using the last whole run
            if previous is not None:
                p.runs[base] = previous
        self.jobs.append({"kind": kind, "outcome": outcome, "seconds": round(time.perf_counter() - t, 2),
                          "cancel": cancel, "pause": pause, "longest_stall_ms": round(1000 * self.job_gap, 1),
                          "end_s": round(time.perf_counter() - self.t0, 1), "rss_mb": round(_rss_mb(), 1),
                          "images": self.win.curate.cat.count()})

    def _usable(self) -> list[str]:
        """The bases ('plain', 'prism') whose latest run has images a distillation can use."""
        cat = self.win.curate.cat
        return [b for b, r in self.pilot.runs.items() if cat.count(run=r, statuses=["unreviewed", "keep"])]

    def run(self) -> dict:
        from PySide6.QtWidgets import QMessageBox

        old = self._hooks()
        self.t0 = time.perf_counter()
        self._tick.start()
        self._sample.start()
        try:
            for step in (lambda: self._wait(self.pilot.load_teacher()),
                         lambda: self._wait(self.pilot.expand_prompts())):
                if step() != "finished":
                    raise RuntimeError("the soak's warm-up failed")
            self._do("generate", warm=True)
            self._do("generate", warm=True)
            warm_gap, self.max_gap = self.max_gap, 0.0
            base = {"fds": _fds(), "fd_targets": _fd_targets(), "threads": _threads(), "rss_mb": _rss_mb(),
                    "t": time.perf_counter() - self.t0}
            if self.trace:
                import tracemalloc

                tracemalloc.start(8)
                traced0 = tracemalloc.take_snapshot()
            while time.perf_counter() - self.t0 < self.seconds:
                self._do(self.rng.choice(KINDS))
                self._idle(self.rng.uniform(0, 1.5))
            self._idle(1.0)
        finally:
            self._tick.stop()
            self._sample.stop()
            sys.excepthook, threading.excepthook = old
        elapsed = time.perf_counter() - self.t0
        import gc

        rss_end = _rss_mb()
        gc.collect()  # files that garbage awaiting collection holds (a finished report's fonts) are not a leak
        growth = None
        if self.trace:
            import gc
            import tracemalloc

            gc.collect()
            diff = tracemalloc.take_snapshot().compare_to(traced0, "traceback")
            tracemalloc.stop()
            growth = [{"kb": round(d.size_diff / 1024, 1), "blocks": d.count_diff,
                       "where": [f"{f.filename.split('site-packages/')[-1]}:{f.lineno}" for f in d.traceback]}
                      for d in diff[:25]]
        mem = [(t, m) for t, m in self.memory if t >= base["t"] + 0.25 * (elapsed - base["t"])]
        slope = float(np.polyfit([t for t, _ in mem], [m for _, m in mem], 1)[0]) * 3600 if len(mem) >= 3 else None
        dialogs = [b for b in self.win.findChildren(QMessageBox, "job_error_dialog")]
        outcomes: dict[str, int] = {}
        for j in self.jobs:
            outcomes[j["outcome"]] = outcomes.get(j["outcome"], 0) + 1
        kinds: dict[str, int] = {}
        for j in self.jobs:
            k = j["kind"].split(":")[0]
            kinds[k] = kinds.get(k, 0) + 1
        return {
            "seconds": round(elapsed, 1), "jobs": len(self.jobs), "by_kind": kinds, "outcomes": outcomes,
            "failed_jobs": [j for j in self.jobs if j["outcome"] not in ("finished", "cancelled")],
            "error_dialogs": [b.text() for b in dialogs], "uncaught_exceptions": self.exceptions,
            "longest_stall_ms": round(1000 * self.max_gap, 1), "warm_up_longest_stall_ms": round(1000 * warm_gap, 1),
            "rss_mb_after_warm_up": round(base["rss_mb"], 1), "rss_mb_end": round(rss_end, 1),
            "rss_growth_mb_per_hour": None if slope is None else round(slope, 1),
            "fds_after_warm_up": base["fds"], "fds_end": _fds(),
            "fds_opened_since_warm_up": sorted((Counter(_fd_targets()) - Counter(base["fd_targets"])).items()),
            "threads_after_warm_up": base["threads"], "threads_end": _threads(),
            "malloc_arena_max": os.environ.get("MALLOC_ARENA_MAX"), "job_log": self.jobs,
            **({"python_growth_top": growth} if growth is not None else {}),
        }


def soak(seconds: float, seed: int = 0, project: Path | None = None, trace: bool = False) -> dict:
    """Run the soak in this process's QApplication (made if there is none)."""
    from PySide6.QtWidgets import QApplication

    from prism_gui.engine.project.project import Project
    from prism_gui.ui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    tmp = tempfile.TemporaryDirectory(prefix="soak-") if project is None else None
    root = Path(tmp.name) / "project" if tmp else Path(project)
    Project.create(root)
    win = MainWindow(project=str(root), warm_up=True)
    win.show()
    app.processEvents()
    try:
        return Soak(win, seconds, seed, trace).run()
    finally:
        win.studio.jobs.cancel_all()
        win.studio.jobs.wait_all(60_000)
        win.close()
        win.deleteLater()
        app.processEvents()
        if tmp:
            tmp.cleanup()


def main(argv=None) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path)
    p.add_argument("--trace", action="store_true", help="tracemalloc after the warm-up: the Python allocations "
                   "that grew most, by traceback (slows the jobs; for finding a leak, not for the figures)")
    a = p.parse_args(argv)
    res = soak(60 * a.minutes, a.seed, trace=a.trace)
    res["command"] = "QT_QPA_PLATFORM=offscreen python -m benchmarks.soak " + " ".join(sys.argv[1:] if argv is None
                                                                                        else argv)
    print(json.dumps({k: v for k, v in res.items() if k != "job_log"}, indent=2))
    if a.json:
        a.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
