"""The Map tab's plot parts: its colours and a view box whose drag draws a lasso or a box."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from prism_gui.ui.common import pg

# 20 distinguishable colours (matplotlib's tab20), reused for classes past 20
PALETTE = ["#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896", "#9467bd",
           "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7", "#bcbd22", "#dbdb8d",
           "#17becf", "#9edae5"]


RAMP = 32  # steps of the continuous colour ramp


STATUS_COLOURS = {"unreviewed": "#1f77b4", "keep": "#2e7d32", "reject": "#c62828"}


def viridis(n: int) -> list[str]:
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    return [matplotlib.colors.to_hex(cmap(i / max(1, n - 1))) for i in range(n)]


class SelectViewBox:
    """Factory of a pyqtgraph ViewBox whose drag draws a lasso or a box instead of panning."""

    @staticmethod
    def make(on_select):
        pgm = pg()

        class _VB(pgm.ViewBox):
            def __init__(self):
                super().__init__()
                self.tool = "pan"
                self._path: list = []
                self.outline = pgm.PlotCurveItem(pen=pgm.mkPen("#222", width=1.5, style=Qt.PenStyle.DashLine))
                self.outline.setZValue(20)
                self.addItem(self.outline, ignoreBounds=True)

            def mouseDragEvent(self, ev, axis=None):
                if self.tool == "pan" or ev.button() != Qt.MouseButton.LeftButton:
                    return super().mouseDragEvent(ev, axis)
                ev.accept()
                p = self.mapSceneToView(ev.scenePos())
                if ev.isStart():
                    self._path = [(p.x(), p.y())]
                else:
                    self._path.append((p.x(), p.y()))
                pts = np.array(self._path)
                if self.tool == "box":
                    (x0, y0), (x1, y1) = pts[0], pts[-1]
                    pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]])
                    self._shape = pts
                else:
                    self._shape = np.vstack([pts, pts[:1]])
                self.outline.setData(self._shape[:, 0], self._shape[:, 1])
                if ev.isFinish():
                    self.outline.setData([], [])
                    on_select(self._shape)

        return _VB()
