"""Distill's curves: loss (per step, and smoothed) and accuracy/agreement per evaluation, for the
latest runs, redrawn from buffers by a timer (never per event)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from prism_gui.ui.common import pg

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"]


def ema(values: np.ndarray, alpha: float = 0.1) -> np.ndarray:
    """Exponential moving average, debiased at the start (TensorBoard-style, does not lie early)."""
    out = np.empty(len(values))
    acc, w = 0.0, 0.0
    for i, v in enumerate(values):
        acc = (1 - alpha) * acc + alpha * v
        w = (1 - alpha) * w + alpha
        out[i] = acc / w
    return out


PLOTTED_RUNS = 8  # runs overlaid on the curves (a chart of more is unreadable, and each holds memory)


class RunCurves:
    def __init__(self, name: str, color: str):
        self.name, self.color = name, color
        self.loss_x: list[float] = []
        self.loss: list[float] = []
        self.acc_x: list[float] = []
        self.acc: list[float] = []
        self.agree: list[float] = []
        self.items: dict = {}


class DistillCurves:
    """A mixin of :class:`~prism_gui.ui.distill_panel.DistillPanel` (its plots and ``runs``)."""

    def _drop_curves(self, run: str) -> None:
        old = self.runs.pop(run, None)
        for item in old.items.values() if old is not None else ():
            for plot in (self.loss_plot, self.acc_plot):  # the plot's own removal takes its legend entry too
                plot.removeItem(item)

    def redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        pgm = pg()
        for rc in self.runs.values():
            if not rc.items:
                faint = pgm.mkColor(rc.color)
                faint.setAlpha(60)
                rc.items["raw"] = self.loss_plot.plot([], [], pen=pgm.mkPen(faint, width=1))
                rc.items["smooth"] = self.loss_plot.plot([], [], pen=pgm.mkPen(rc.color, width=2), name=rc.name)
                rc.items["acc"] = self.acc_plot.plot([], [], pen=pgm.mkPen(rc.color, width=2), symbol="o",
                                                     symbolSize=5, symbolBrush=rc.color, name=rc.name)
                rc.items["agree"] = self.acc_plot.plot([], [], pen=pgm.mkPen(rc.color, width=1,
                                                                             style=Qt.PenStyle.DashLine))
                for item in rc.items.values():
                    item.setSkipFiniteCheck(True)
            if rc.loss:
                x = np.asarray(rc.loss_x)
                y = np.maximum(np.asarray(rc.loss), 1e-6)
                rc.items["raw"].setData(x, y)
                rc.items["smooth"].setData(x, ema(y, 0.1))
            if rc.acc:
                rc.items["acc"].setData(np.asarray(rc.acc_x), np.asarray(rc.acc))
                rc.items["agree"].setData(np.asarray(rc.acc_x), np.asarray(rc.agree))
