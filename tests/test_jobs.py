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


def test_typed_payloads_read_by_attribute_and_as_a_mapping_and_keep_their_type_across_processes():
    """Progress payloads (engine/events.py): attributes for panels, a mapping for scripts (a field
    left None is absent, as the dictionaries they replaced left the key out), and the class name
    travels with a multi-process run's event lines."""
    from prism_gui.engine.events import BatchStored, DistillDone, GenerationNote
    from prism_gui.engine.jobs import Event
    from prism_gui.engine.scale.worker import event_line, parse_event

    note = GenerationNote(batch_size=5)
    assert note.batch_size == 5 and "batch_size" in note and "memory" not in note and dict(note) == {"batch_size": 5}
    stored = BatchStored([3, 4], eta_s=None, mean_energy=0.25)
    assert stored["new_ids"] == [3, 4] and stored.get("eta_s") is None and "eta_s" not in stored
    back = parse_event(event_line(Event("generate", 2, 10, "2/10", stored)))
    assert isinstance(back.data, BatchStored) and back.data == stored
    done = parse_event(event_line(Event("distill", 1, 1, "done", DistillDone({"test_accuracy": 0.9}, object()))))
    assert isinstance(done.data, DistillDone) and done.data.result == {"test_accuracy": 0.9}
    assert done.data.student is None  # a model does not cross processes: the launcher loads it from the folder
    plain = parse_event(event_line(Event("report", 1, 1, "done", {"report": "x"})))
    assert plain.data == {"report": "x"}  # one-off results stay dictionaries


def test_a_launcher_line_with_another_process_output_after_it_still_reads():
    """Processes share the launcher's pipe: an event or error line followed by other output (seen once
    in the suite as 'Extra data' from the JSON reader) reads as its object; a broken line is text."""
    from prism_gui.engine.events import BatchStored
    from prism_gui.engine.jobs import Event
    from prism_gui.engine.scale.worker import event_line, first_json, parse_event

    line = event_line(Event("generate", 2, 10, "2/10", BatchStored([1, 2])))
    assert parse_event(line + '{"stage": "other"}').data == BatchStored([1, 2])
    assert parse_event(line[:-5]) is None  # cut short: not an event, the launcher keeps it as text
    assert first_json('{"type": "ValueError", "message": "m"}rank 1: boom') == {"type": "ValueError", "message": "m"}
