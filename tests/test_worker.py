"""The one worker pattern, offscreen: start, progress, pause, cancel, error, queue."""

import threading
import time

import pytest

from prism_gui.engine.jobs import CancelToken, Event
from prism_gui.ui.worker import Job, JobQueue


def slow_job(n, delay=0.01, fail_at=None, gate: threading.Event | None = None):
    def factory(token: CancelToken):
        for i in range(n):
            token.raise_if_cancelled()
            if gate is not None:
                gate.wait(5)
            if i == fail_at:
                raise ValueError("bad input: the fix is to pass a good one")
            time.sleep(delay)
            yield Event("work", i + 1, n)

    return factory


@pytest.fixture(autouse=True, scope="module")
def engine_imported():
    """A job imports the engine before it runs (``import_engine``): done once here, so the
    tests' timeouts measure the worker, not torch's import on a loaded machine."""
    from prism_gui.engine.preload import import_engine

    import_engine()


def test_job_runs_to_completion_with_progress(qtbot):
    job = Job("count", slow_job(5))
    seen = []
    job.progress.connect(lambda ev: seen.append(ev.step))
    with qtbot.waitSignal(job.finished, timeout=5000) as blocker:
        job.start()
    assert blocker.args[0].step == 5
    assert seen == [1, 2, 3, 4, 5]
    assert job.state == "finished"


def test_cancel_is_confirmed_by_the_worker(qtbot):
    job = Job("long", slow_job(1000, delay=0.005))
    job.start()
    qtbot.waitUntil(lambda: job.last_event is not None, timeout=5000)
    assert job.state == "running"
    with qtbot.waitSignal(job.cancelled, timeout=5000):
        job.cancel()
    assert job.state == "cancelled"
    assert job.last_event.step < 1000


def test_pause_blocks_between_events_and_resume_continues(qtbot):
    job = Job("long", slow_job(200, delay=0.005))
    job.start()
    qtbot.waitUntil(lambda: job.last_event is not None, timeout=5000)
    with qtbot.waitSignal(job.paused_changed, timeout=5000, check_params_cb=lambda p: p):
        job.pause()
    assert job.state == "paused"
    step = job.last_event.step
    qtbot.wait(150)
    assert job.last_event.step <= step + 1
    with qtbot.waitSignal(job.finished, timeout=10000):
        job.resume()
    assert job.state == "finished"


def test_cancel_while_paused(qtbot):
    job = Job("long", slow_job(200, delay=0.005))
    job.start()
    qtbot.waitUntil(lambda: job.last_event is not None, timeout=5000)
    job.pause()
    qtbot.waitUntil(lambda: job.state == "paused", timeout=5000)
    with qtbot.waitSignal(job.cancelled, timeout=5000):
        job.cancel()


def test_an_exception_in_a_job_is_reported_not_raised(qtbot):
    job = Job("bad", slow_job(5, fail_at=2))
    with qtbot.waitSignal(job.failed, timeout=5000) as blocker:
        job.start()
    message, details = blocker.args
    assert "ValueError: bad input" in message and "Traceback" in details
    qtbot.waitUntil(lambda: job.state == "failed", timeout=5000)


def test_queue_runs_jobs_one_after_another(qtbot):
    q = JobQueue()
    gate = threading.Event()
    a = q.submit("a", slow_job(3, gate=gate))
    b = q.submit("b", slow_job(3))
    assert a.running and b.state == "queued" and q.busy
    with qtbot.waitSignal(b.finished, timeout=10000):
        gate.set()
    assert a.state == "finished" and not q.busy


def test_cancelling_a_queued_job_never_starts_it(qtbot):
    q = JobQueue()
    gate = threading.Event()
    a = q.submit("a", slow_job(3, gate=gate))
    b = q.submit("b", slow_job(3))
    b.cancel()
    assert b.state == "cancelled"
    with qtbot.waitSignal(a.finished, timeout=10000):
        gate.set()
    assert b.last_event is None


def test_an_ended_job_keeps_what_it_said_not_what_it_made(qtbot):
    """Found by the soak: the session's job list kept every job's last event, with its images and
    students, so memory grew with every job.  Listeners get the full event; the list keeps the
    plain data."""
    import weakref

    import torch

    made = [torch.zeros(1000, 1000)]
    ref = weakref.ref(made[0])

    def job_fn(token):
        yield Event("make", 1, 1, "done", {"images": made.pop(), "result": {"accuracy": 0.9}})

    got = []
    job = Job("make", job_fn)
    job.finished.connect(lambda ev: got.append(ev.data["images"].shape))
    with qtbot.waitSignal(job.ended, timeout=5000):
        job.start()
    assert got == [(1000, 1000)]  # the listener had the tensor
    assert job.last_event.message == "done" and job.last_event.data == {"result": {"accuracy": 0.9}}
    del job_fn
    import gc

    gc.collect()
    assert ref() is None  # nothing of the job holds the tensor any more
