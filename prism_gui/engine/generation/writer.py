"""Storing finished batches beside sampling: PNG encoding, thumbnails and catalog rows run in a
background thread while the next batch denoises (PIL's encoder and torch both release the GIL).

At most ``depth`` finished batches wait for the writer, so memory stays bounded; results come
back in submission order.  An error in the writer is raised in the job at its next call.  A
stopped job flushes what was already finished (complete images, never a partly denoised one)
before it ends, so nothing a run produced is lost.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

_STOP = object()


class BatchWriter:
    def __init__(self, store: Callable[[object], object], depth: int = 2):
        self._store = store
        self._todo: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._done: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="prism-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._todo.get()
            try:
                if item is _STOP:
                    return
                if self._error is None:
                    self._done.put(self._store(item))
            except BaseException as e:  # handed to the job, which raises it
                self._error = e
            finally:
                self._todo.task_done()

    def _check(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def submit(self, item) -> None:
        """Queue a finished batch; blocks while ``depth`` batches already wait."""
        self._check()
        self._todo.put(item)

    def completed(self) -> list:
        """Results of the batches stored since the last call, in order (does not wait)."""
        out = []
        while True:
            try:
                out.append(self._done.get_nowait())
            except queue.Empty:
                break
        self._check()
        return out

    def flush(self) -> list:
        """Wait until every queued batch is stored; their results, in order."""
        self._todo.join()
        return self.completed()

    def close(self) -> None:
        self._todo.put(_STOP)
        self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
