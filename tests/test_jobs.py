import pytest

from prism_gui.engine.jobs import Cancelled, CancelToken, Event, run_to_completion


def counting_job(n, token=None, fail_at=None):
    token = token or CancelToken()
    for i in range(n):
        token.raise_if_cancelled()
        if i == fail_at:
            raise RuntimeError("boom")
        yield Event("count", i + 1, n, f"{i + 1}")


def test_run_to_completion_collects_every_event():
    events = run_to_completion(counting_job(5), show=False)
    assert [e.step for e in events] == [1, 2, 3, 4, 5]
    assert events[-1].fraction == 1.0


def test_cancel_token_stops_a_job_at_the_next_step():
    token = CancelToken()
    seen = []
    with pytest.raises(Cancelled):
        for ev in counting_job(10, token):
            seen.append(ev)
            if ev.step == 3:
                token.cancel()
    assert len(seen) == 3


def test_errors_propagate():
    with pytest.raises(RuntimeError, match="boom"):
        run_to_completion(counting_job(5, fail_at=2), show=False)
