"""TensorBoard event files beside a run's own records, so ``tensorboard --logdir PROJECT`` shows
PRISM's runs (``runs/<run>``) next to the user's other experiments.

Written with ``torch.utils.tensorboard.SummaryWriter`` (TensorBoard's own format).  A resumed
run passes ``purge_step``: TensorBoard then drops the earlier file's events from that step on,
so the curves show each step once, as ``metrics.jsonl`` does.  Logging is a side channel: a
folder that cannot take event files costs the curves there, never the run.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

# the tags PRISM writes (TensorBoard groups charts by the part before the slash)
DISTILL_TAGS = {"loss": "train/loss", "lr": "train/learning_rate", "test_accuracy": "eval/accuracy",
                "agreement": "eval/agreement", "teacher_accuracy": "eval/teacher_accuracy"}
GENERATE_TAGS = {"images_per_s": "generate/images_per_second", "mean_energy": "generate/mean_energy"}


class TensorBoardLog:
    def __init__(self, folder: str | Path, purge_step: int | None = None):
        self.folder = Path(folder)
        self._writer = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.folder), purge_step=purge_step or None, flush_secs=10)
        except Exception as e:  # a read-only folder, TensorBoard missing: the run goes on without curves here
            warnings.warn(f"no TensorBoard curves in {self.folder}: {type(e).__name__}: {e}", RuntimeWarning,
                          stacklevel=2)

    def scalars(self, values: dict, step: int, tags: dict[str, str]) -> None:
        if self._writer is None:
            return
        for key, value in values.items():
            if isinstance(value, (int, float)) and np.isfinite(value):
                self._writer.add_scalar(tags.get(key, key), float(value), int(step))

    def histogram(self, tag: str, values, step: int) -> None:
        values = np.asarray([v for v in values if v is not None], dtype=np.float64)
        values = values[np.isfinite(values)]
        if self._writer is not None and len(values):
            self._writer.add_histogram(tag, values, int(step))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
