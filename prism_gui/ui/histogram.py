"""A histogram of one catalog column with a draggable threshold line (the Curate tab's energy and
confidence), optionally over a log axis."""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QVBoxLayout, QWidget

from prism_gui.ui.common import pg


class _Format:
    """Formats the threshold label of a log-scale axis (the line sits at log10 of the value)."""

    def __init__(self, log: bool):
        self.log = log

    def format(self, value: float) -> str:
        return f"{10 ** value:.3g}" if self.log else f"{value:.2f}"


class Histogram(QWidget):
    """A histogram of one catalog column with a draggable threshold line (optionally over a
    log axis: energies span several decades)."""

    def __init__(self, title: str, xlabel: str, color, log: bool = False, parent=None):
        super().__init__(parent)
        pgm = pg()
        self.log = log
        self.plot = pgm.PlotWidget()
        self.plot.setTitle(title, size="10pt")
        self.plot.setLabel("bottom", xlabel)
        self.plot.setLabel("left", "images")
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.setMenuEnabled(False)
        if log:
            self.plot.getAxis("bottom").setLogMode(True)
        self.curve = self.plot.plot([0, 1], [0], stepMode="center", fillLevel=0, brush=color, pen=pgm.mkPen(color))
        self.line = pgm.InfiniteLine(pos=0, angle=90, movable=True, pen=pgm.mkPen("#c62828", width=2),
                                     label=_Format(log), labelOpts={"position": 0.9, "color": "#c62828"})
        self.line.setToolTip("Drag the threshold")
        self.plot.addItem(self.line)
        self.plot.setMinimumHeight(120)  # title, axis and bars stay readable on a laptop screen
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot)
        self.values = np.zeros(0)

    def _x(self, v):
        return np.log10(np.maximum(v, 1e-4)) if self.log else v

    def set_values(self, values: np.ndarray, bins: int = 40, rng=None) -> None:
        v = np.asarray(values, float)
        v = v[np.isfinite(v)]
        self.values = v
        if len(v) == 0:
            self.curve.setData([0, 1], [0])
            return
        x = self._x(v)
        if rng is not None:
            rng = tuple(self._x(np.asarray(rng, float)))
        counts, edges = np.histogram(x, bins=bins, range=rng)
        self.curve.setData(edges, counts)
        self.line.setBounds((edges[0], edges[-1]))

    @property
    def threshold(self) -> float:
        v = float(self.line.value())
        return float(10 ** v) if self.log else v

    def set_threshold(self, value: float) -> None:
        self.line.setValue(float(self._x(np.asarray(float(value)))))
