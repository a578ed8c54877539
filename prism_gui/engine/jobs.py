"""Long jobs: Qt-free generators that yield progress events and honour a cancel token.

Every long piece of work in PRISM Studio (training the Digits prior, generating, distilling)
is a function ``job(spec, cancel) -> Iterator[Event]``.  The CLI drives it with a progress
bar (:func:`run_to_completion`), the GUI wraps it in a worker thread; both stop it by setting
the :class:`CancelToken`, which the job checks at every step.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from typing import Any


class Cancelled(Exception):
    """Raised inside a job when its cancel token was set."""


class CancelToken:
    """Thread-safe flag a job polls between steps (``raise_if_cancelled``)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()


@dataclasses.dataclass
class Event:
    """One progress report: ``step`` of ``total`` in ``stage``, plus free-form ``data``."""

    stage: str
    step: int = 0
    total: int = 0
    message: str = ""
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    time: float = dataclasses.field(default_factory=time.time)

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total else 0.0


def release_memory() -> None:
    """Give the memory a finished job freed back to the system.  glibc keeps freed blocks in the
    arena of the thread that used them (each job runs in a thread of its own), so without this the
    app's resident memory ratchets up job after job; ``malloc_trim`` returns the free pages of every
    arena.  Linux only (elsewhere a no-op); ctypes releases the GIL for the call."""
    import sys

    fm = sys.modules.get("matplotlib.font_manager")
    if fm is not None and hasattr(getattr(fm, "_get_font", None), "cache_clear"):
        # matplotlib caches its fonts per thread (FT2Font is not thread-safe): 64 open font files and
        # their glyph memory pile up as job threads come and go; reopening a font costs milliseconds
        fm._get_font.cache_clear()
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # another C library (musl): nothing to trim
        pass


def run_to_completion(events: Iterator[Event], show: bool = True) -> list[Event]:
    """Drive a job in the terminal with a tqdm bar per stage; returns every event."""
    from tqdm.auto import tqdm

    seen: list[Event] = []
    bars: dict[str, Any] = {}
    try:
        for ev in events:
            seen.append(ev)
            if not show:
                continue
            if ev.data.get("warning"):  # what the user must read before the job goes on
                tqdm.write(f"warning: {ev.data['warning']}")
            bar = bars.get(ev.stage)
            if bar is None and ev.total:
                bar = bars[ev.stage] = tqdm(total=ev.total, desc=ev.stage, leave=True)
            if bar is not None:
                bar.n = ev.step
                if ev.message:
                    bar.set_postfix_str(ev.message, refresh=False)
                bar.refresh()
            elif ev.message:
                tqdm.write(f"[{ev.stage}] {ev.message}")
    finally:
        for bar in bars.values():
            bar.close()
    return seen


class Ranks:
    """The processes one job runs on, as a job sees them: this process's ``rank`` of
    ``world_size``, its device, and :meth:`share` (the main process's value, on every rank).

    This single-process form is the default; :mod:`prism_gui.engine.scale` provides the one over
    ``torch.distributed``.  A job never knows more about its processes than this."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, preference: str = "auto"):
        from prism_gui.engine.devices import pick_device

        return pick_device(preference)

    def share(self, value):
        """``value`` as given by the main process (every process calls this, in the same order)."""
        return value

    def barrier(self) -> None:
        """Wait until every process gets here."""

    def all_sum(self, values):
        """Element-wise sum of a float/int array (or tensor) over the processes."""
        return values


SINGLE = Ranks()
