"""One process of a multi-process run: the job for this rank, and how it reports.

``prism generate SPEC`` and ``prism distill SPEC`` run here when started by ``torchrun`` or
``accelerate launch`` (``WORLD_SIZE`` > 1 in the environment).  Every rank runs the same job with
its :class:`~.ranks.DistRanks`; the main rank reports:

- to a launcher (``PRISM_EVENTS=jsonl``, set by :mod:`.launch`): one ``PRISM-EVENT {json}``
  line per event on stdout, and ``PRISM-ERROR {json}`` with the error's type and message when
  the job fails, so the app and the CLI show the same message as a one-process run;
- to a person (launched by hand): a progress bar.

SIGTERM (what ``torchrun`` sends every rank when one fails or the launcher stops the run) sets
the job's cancel token: a rank stops between steps, stores its finished images and exits.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
from collections.abc import Callable, Iterator

from prism_gui.engine.events import payload_from_json, payload_to_json
from prism_gui.engine.jobs import CancelToken, Event

EVENT_PREFIX = "PRISM-EVENT "
ERROR_PREFIX = "PRISM-ERROR "


def _jsonable(value):
    """``value`` with what JSON cannot hold left out (models, tensors); NaN as None."""
    if isinstance(value, dict):
        return {str(k): v for k, v in ((k, _jsonable(v)) for k, v in value.items()) if v is not _DROP}
    if isinstance(value, list | tuple):
        return [v for v in (_jsonable(v) for v in value) if v is not _DROP]
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    try:  # numpy scalars
        import numpy as np

        if isinstance(value, np.generic):
            return _jsonable(value.item())
    except ImportError:
        pass
    return _DROP


_DROP = object()


def event_line(ev: Event) -> str:
    kind, data = payload_to_json(ev.data)
    return EVENT_PREFIX + json.dumps({"stage": ev.stage, "step": ev.step, "total": ev.total, "message": ev.message,
                                      "payload": kind, "data": _jsonable(data), "time": ev.time})


def first_json(text: str):
    """The JSON object at the start of ``text``, or None.  Processes share the launcher's pipe: a
    line may carry another process's output after the object (seen once in the suite), which must
    not turn a rank's message into a JSON error."""
    try:
        obj = json.JSONDecoder().raw_decode(text.strip())[0]
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def parse_event(line: str) -> Event | None:
    if not line.startswith(EVENT_PREFIX):
        return None
    d = first_json(line[len(EVENT_PREFIX):])
    if d is None or not {"stage", "step", "total", "message", "data", "time"} <= set(d):
        return None
    return Event(d["stage"], d["step"], d["total"], d["message"], payload_from_json(d.get("payload"), d["data"]),
                 d["time"])


PEER_LOST = ("Connection reset by peer", "Connection closed by peer", "gloo/transport", "NCCL error",
             "Broken pipe", "NCCL communicator was aborted")


def lost_peer(e: BaseException) -> bool:
    """Whether ``e`` is a collective failing because another process of the run died."""
    import torch.distributed

    return isinstance(e, torch.distributed.DistError) or any(k in str(e) for k in PEER_LOST)


def run_rank(job: Callable[[object, CancelToken], Iterator[Event]], device: str = "auto") -> int:
    """Run ``job(ranks, cancel)`` as this rank of a ``torch.distributed`` run; returns an exit code."""
    from prism_gui.engine.scale.ranks import DistRanks

    cancel = CancelToken()
    signal.signal(signal.SIGTERM, lambda *_: cancel.cancel())
    ranks = DistRanks(device)
    to_launcher = os.environ.get("PRISM_EVENTS") == "jsonl"
    try:
        events = job(ranks, cancel)
        if not ranks.is_main:
            for _ in events:
                pass
        elif to_launcher:
            for ev in events:
                print(event_line(ev), flush=True)
        else:
            from prism_gui.engine.jobs import run_to_completion

            seen = run_to_completion(events)
            if seen:
                print(seen[-1].message)
        return 0
    except BaseException as e:
        from prism_gui.engine.jobs import Cancelled

        if isinstance(e, Cancelled):
            if ranks.is_main:
                print(ERROR_PREFIX + json.dumps({"type": "Cancelled", "message": "stopped"}), flush=True)
            return 130
        # a collective that failed because another process died: the launcher reports that death
        kind = "ProcessLost" if lost_peer(e) else type(e).__name__
        if ranks.is_main and to_launcher:
            print(ERROR_PREFIX + json.dumps({"type": kind, "message": str(e)}), flush=True)
        import traceback

        traceback.print_exc()
        print(f"rank {ranks.rank}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        if isinstance(e, KeyboardInterrupt | SystemExit):
            raise
        return 1
    finally:
        ranks.close()
