"""The one worker pattern: a QThread runs an engine job (a generator of ``Event``s).

The GUI never changes state on a button press alone: it waits for the worker's signals
(``started``, ``progress``, ``paused_changed``, ``finished``, ``cancelled``, ``failed``).
Pause blocks the job between two events; cancel sets the job's ``CancelToken``, which the
engine checks every step, and is confirmed by ``cancelled`` once the job has really stopped.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable, Iterator

from PySide6.QtCore import QObject, QThread, Signal

from prism_gui.engine.jobs import Cancelled, CancelToken, Event, release_memory
from prism_gui.engine.preload import import_engine

JobFactory = Callable[[CancelToken], Iterator[Event]]


class _Runner(QObject):
    progress = Signal(object)
    done = Signal(object, str)  # (last event, outcome: finished | cancelled | failed)
    failed = Signal(str, str)
    paused_changed = Signal(bool)

    def __init__(self, factory: JobFactory, token: CancelToken, resume: threading.Event):
        super().__init__()
        self._factory, self._token, self._resume = factory, token, resume

    def run(self) -> None:
        try:
            self._run()
        finally:
            self._factory = None  # what the job's closure holds (a teacher, prompts, images) goes with it
            release_memory()  # in this thread, not the GUI's: what the job freed goes back to the system
            # end the thread's event loop from inside, so ``Job.wait`` returns even while the GUI
            # thread is blocked in it (closing the app with a running job)
            QThread.currentThread().quit()

    def _run(self) -> None:
        last = None
        try:
            import_engine()  # waits for the app's warm-up rather than importing beside it
            for ev in self._factory(self._token):
                last = ev
                self.progress.emit(ev)
                if not self._resume.is_set():
                    self.paused_changed.emit(True)
                    while not self._resume.wait(0.05):
                        if self._token.cancelled:
                            break
                    self.paused_changed.emit(False)
                self._token.raise_if_cancelled()
        except Cancelled:
            self.done.emit(last, "cancelled")
            return
        except Exception as e:
            self.failed.emit(f"{type(e).__name__}: {e}", traceback.format_exc())
            self.done.emit(last, "failed")
            return
        self.done.emit(last, "finished")


class Job(QObject):
    """One engine job on its own QThread."""

    started = Signal()
    progress = Signal(object)
    paused_changed = Signal(bool)
    finished = Signal(object)  # last event
    cancelled = Signal()
    failed = Signal(str, str)  # message, details
    ended = Signal(str)  # outcome, after any of the three above

    def __init__(self, name: str, factory: JobFactory, parent: QObject | None = None):
        super().__init__(parent)
        self.name = name
        self.token = CancelToken()
        self._resume = threading.Event()
        self._resume.set()
        self._thread: QThread | None = None
        self._runner: _Runner | None = None
        self.state = "queued"  # queued | running | paused | finished | cancelled | failed
        self.last_event: Event | None = None
        self._factory = factory

    def start(self) -> None:
        self._thread = QThread()
        self._runner = _Runner(self._factory, self.token, self._resume)
        self._runner.moveToThread(self._thread)
        self._thread.started.connect(self._runner.run)
        self._runner.progress.connect(self._on_progress)
        self._runner.paused_changed.connect(self._on_paused)
        self._runner.failed.connect(self.failed)
        self._runner.done.connect(self._on_done)
        self.state = "running"
        self._thread.start()
        self.started.emit()

    def pause(self) -> None:
        self._resume.clear()

    def resume(self) -> None:
        self._resume.set()

    def cancel(self) -> None:
        self.token.cancel()
        self._resume.set()
        if self.state == "queued":
            self.state = "cancelled"
            self.cancelled.emit()
            self.ended.emit("cancelled")

    @property
    def running(self) -> bool:
        return self.state in ("running", "paused")

    def wait(self, ms: int = 30000) -> bool:
        """Block until the job's thread has ended (its final signals are delivered by the event loop)."""
        return self._thread.wait(ms) if self._thread is not None else True

    def _on_progress(self, ev: Event) -> None:
        self.last_event = ev
        self.progress.emit(ev)

    def _on_paused(self, paused: bool) -> None:
        if self.state in ("running", "paused"):
            self.state = "paused" if paused else "running"
        self.paused_changed.emit(paused)

    def _on_done(self, last, outcome: str) -> None:
        self.state = outcome
        if self._thread is not None:
            self._thread.quit()
            self._thread.wait()
        if outcome == "finished":
            self.finished.emit(last)
        elif outcome == "cancelled":
            self.cancelled.emit()
        self.ended.emit(outcome)
        # the job stays in the session's list: keep what it said, not what it made (images, a
        # student, a report's figures), which its listeners have taken by now
        self.last_event = _light(self.last_event)
        self._factory = None


def _light(ev: Event | None, limit: int = 100_000) -> Event | None:
    """``ev`` without the data values that are large or not plain data (tensors, models, images)."""
    import json

    if ev is None:
        return None
    data = {}
    for k, v in ev.data.items():
        try:
            if len(json.dumps(v)) <= limit:
                data[k] = v
        except (TypeError, ValueError):
            pass
    return Event(ev.stage, ev.step, ev.total, ev.message, data, ev.time)


class JobQueue(QObject):
    """Runs jobs one after another; the GUI observes ``changed`` and each job's signals."""

    changed = Signal()
    job_started = Signal(object)
    job_ended = Signal(object, str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.jobs: list[Job] = []

    def submit(self, name: str, factory: JobFactory) -> Job:
        job = Job(name, factory, self)
        job.ended.connect(lambda outcome, j=job: self._on_ended(j, outcome))
        self.jobs.append(job)
        self.changed.emit()
        self._next()
        return job

    @property
    def current(self) -> Job | None:
        return next((j for j in self.jobs if j.running), None)

    @property
    def pending(self) -> list[Job]:
        return [j for j in self.jobs if j.state == "queued"]

    @property
    def busy(self) -> bool:
        return self.current is not None or bool(self.pending)

    def cancel_all(self) -> None:
        for j in list(self.jobs):
            if j.state in ("queued", "running", "paused"):
                j.cancel()

    def wait_all(self, ms: int = 30000) -> None:
        for j in list(self.jobs):
            j.wait(ms)

    def _next(self) -> None:
        if self.current is None and self.pending:
            job = self.pending[0]
            job.start()
            self.job_started.emit(job)
            self.changed.emit()

    def _on_ended(self, job: Job, outcome: str) -> None:
        self.job_ended.emit(job, outcome)
        self.changed.emit()
        self._next()
