"""Map panel: the project in the teacher's feature space (issue 15).

A 2-D map (UMAP or PCA, a job) of every synthetic image and, when the project has one, its real
reference set, drawn with pyqtgraph so it stays fluid at 100,000 points: colour by class, energy,
confidence, run, status, real vs synthetic or density; hover shows the image; a lasso or a box
selects points, which the Curate gallery can show, or which are kept or rejected in one undoable
step.  Beside it, near-duplicate groups (reject all but the lowest-energy image of each) and the
holes view: per-class coverage of the real set, the uncovered regions on the map, and "generate
more here", which queues a generation job for those classes with the proposed prompts.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QSplitter,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from prism_gui.ui.common import Studio, button, error_label, load_tile, pg, show_error, two_panes, wrapping
from prism_gui.ui.map_duplicates import DuplicatesTab
from prism_gui.ui.map_holes import HolesTab
from prism_gui.ui.map_plot import PALETTE, RAMP, STATUS_COLOURS, SelectViewBox, viridis

COLOURS = ("class", "energy", "confidence", "run", "status", "real vs synthetic", "density")
METHODS = {"auto (UMAP when installed)": "auto", "UMAP": "umap", "PCA (fast)": "pca"}
REFERENCES = ("the project's evaluation set", "none")
HOVER_PX = 8  # a point under the mouse: within this many pixels
STRIP = 56  # thumbnail size of the chosen group's / region's images


class MapPanel(HolesTab, DuplicatesTab, QWidget):
    show_ids = Signal(list)  # ask the Curate gallery to show these image ids

    def __init__(self, studio: Studio, parent: QWidget | None = None):
        super().__init__(parent)
        self.studio = studio
        self.job = None
        self.data = None  # the ProjectMap
        self.columns: dict = {}
        self.density: np.ndarray | None = None  # per point, from the duplicates search
        self.selected = np.zeros(0, np.int64)  # point indices
        self.dups: dict | None = None
        self.holes: dict | None = None
        self._tree = None

        self._build_controls()
        self._build_the_plot()
        self._build_selection_bar()
        self._build_hover_card()

    def _build_controls(self) -> None:
        """Controls."""
        self.method = QComboBox()
        self.method.addItems(list(METHODS))
        self.method.setToolTip("UMAP keeps neighbourhoods (minutes at 100,000 points, once: the map is cached "
                               "and updated as images are added); PCA is a fast linear view")
        self.reference = QComboBox()
        self.reference.addItems(list(REFERENCES))
        self.reference.setToolTip("Real images drawn beside the synthetic ones (as crosses): the project's "
                                  "evaluation set (Distill tab), or none")
        self.colour = QComboBox()
        self.colour.addItems(list(COLOURS))
        self.colour.setToolTip("What the colour of a point shows")
        self.colour.currentIndexChanged.connect(lambda _i: self.recolour())
        self.compute_button = button("Compute map", "Embed every image in the teacher's feature space (a job; "
                                     "features and the map are cached in the project)", lambda: self.compute())
        self.status = wrapping(QLabel("No map yet: press Compute map."))
        self.status.setStyleSheet("color: #345;")
        self.tools = QButtonGroup(self)
        tool_row = QHBoxLayout()
        for name, tip in (("pan", "Drag to pan, wheel to zoom"), ("lasso", "Drag a free shape around points"),
                          ("box", "Drag a rectangle around points")):
            b = QToolButton()
            b.setText(name.capitalize())
            b.setToolTip(tip)
            b.setCheckable(True)
            b.setChecked(name == "pan")
            b.setObjectName(f"tool_{name}")
            self.tools.addButton(b)
            b.toggled.connect(lambda on, n=name: on and self.set_tool(n))
            tool_row.addWidget(b)
        self._top = QVBoxLayout()  # two rows, so the tab fits a laptop's screen
        rows = ((QLabel("Method"), self.method, QLabel("Real images"), self.reference, self.compute_button),
                (QLabel("Colour by"), self.colour))
        for widgets in rows:
            row = QHBoxLayout()
            for w in widgets:
                row.addWidget(w)
            if widgets is rows[1]:
                row.addLayout(tool_row)
            row.addStretch(1)
            self._top.addLayout(row)

    def _build_the_plot(self) -> None:
        """The map: one scatter item per colour, the marks and the legend."""
        pgm = pg()
        self.vb = SelectViewBox.make(self._select_shape)
        self.plot = pgm.PlotWidget(viewBox=self.vb)
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.plot.setMenuEnabled(False)
        self.plot.setToolTip("")
        # one scatter item per colour (a single brush each: setting 150,000 points' colours is one
        # vectorized call per colour, not a Python loop over points), made as colours are needed
        self.syn_items: list = []
        self.real_items: list = []
        self.mark_item = pgm.ScatterPlotItem(pxMode=True, size=10, brush=None,
                                             pen=pgm.mkPen("#000", width=1.6), symbol="o")
        self.hole_item = pgm.ScatterPlotItem(pxMode=True, size=12, brush=None,
                                             pen=pgm.mkPen("#e000e0", width=2), symbol="o")
        for z, it in ((3, self.hole_item), (4, self.mark_item)):
            it.setZValue(z)
            self.plot.addItem(it)
        self.legend = QLabel()
        self.legend.setWordWrap(True)
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.plot.scene().sigMouseMoved.connect(self._hover)

    def _build_selection_bar(self) -> None:
        """Selection bar."""
        self.sel_label = wrapping(QLabel("Nothing selected: choose Lasso or Box and drag on the map."))
        self.gallery_button = button("Show in gallery", "Show the selected images in the Curate tab's gallery",
                                     lambda: self.show_in_gallery(), enabled=False)
        self.keep_button = button("Keep", "Keep the selected images (one undoable step)",
                                  lambda: self.set_status("keep"), enabled=False)
        self.reject_button = button("Reject", "Reject the selected images (one undoable step)",
                                    lambda: self.set_status("reject"), enabled=False)
        self.undo_button = button("Undo", "Undo the last curation step", lambda: self.undo())
        self.clear_button = button("Clear", "Clear the selection", lambda: self.select_points(np.zeros(0, int)))
        srow = QHBoxLayout()
        srow.addWidget(self.sel_label, 1)
        for b in (self.gallery_button, self.keep_button, self.reject_button, self.undo_button, self.clear_button):
            srow.addWidget(b)
        self.message = wrapping(QLabel())
        self.message.setStyleSheet("color: #345;")
        self.error = error_label()
        self._left = QWidget()
        ll = QVBoxLayout(self._left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addLayout(self._top)
        ll.addWidget(self.status)
        ll.addWidget(self.plot, 1)
        ll.addWidget(self.legend)
        ll.addLayout(srow)
        ll.addWidget(self.message)
        ll.addWidget(self.error)

    def _build_hover_card(self) -> None:
        """The hover card, the side tabs (holes, near-duplicates) and the panel's two panes."""
        self.hover_image = QLabel()
        self.hover_image.setFixedSize(112, 112)
        self.hover_image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hover_image.setStyleSheet("background: white; border: 1px solid #ccc;")
        self.hover_text = QLabel("Hover a point to see its image.")
        self.hover_text.setWordWrap(True)
        self.hover_text.setTextFormat(Qt.TextFormat.RichText)
        hbox = QGroupBox("Under the mouse")
        hv = QVBoxLayout(hbox)
        hl = QHBoxLayout()
        hl.addWidget(self.hover_image)
        hl.addWidget(self.hover_text, 1)
        hv.addLayout(hl)
        self.strip_title = QLabel("")
        self.strip_title.setStyleSheet("color: #345;")
        self.strip = QLabel()  # the chosen group's or region's images
        self.strip.setMinimumHeight(STRIP + 6)
        hv.addWidget(self.strip_title)
        hv.addWidget(self.strip)

        self.side_tabs = QTabWidget()
        self.side_tabs.addTab(self._build_holes_tab(), "Holes")
        self.side_tabs.addTab(self._build_duplicates_tab(), "Near-duplicates")
        side = QSplitter(Qt.Orientation.Vertical)
        side.addWidget(hbox)
        side.addWidget(self.side_tabs)
        side.setSizes([150, 600])
        two_panes(self, self._left, side, stretch=(3, 1), sizes=(900, 380))
        self._hover_timer = QTimer(self)
        self._hover_timer.setSingleShot(True)
        self._hover_timer.setInterval(30)
        self._hover_timer.timeout.connect(self._show_hover)
        self._hover_pos = None
        self.studio.project_changed.connect(lambda _p: self.clear())


    # ------------------------------------------------------------------ map
    def _for(self, root, slot):
        """``slot`` for a job's result, dropped when the project it was computed on is no longer
        the open one (its image ids mean other images in another project)."""
        def call(*args):
            if self.studio.project is not None and self.studio.project.root == root:
                slot(*args)
        return call

    def _submit(self, name: str, factory, done, button=None, failed=None):
        """Queue a job on the open project: its result goes to ``done`` only while that project is
        still open; errors show in the panel; ``button`` is disabled while it runs."""
        root = self.studio.project.root
        show_error(self.error, "")
        if button is not None:
            button.setEnabled(False)
        self.job = self.studio.submit(name, factory)
        self.job.finished.connect(self._for(root, done))
        self.job.failed.connect(lambda msg, _d: (show_error(self.error, msg), failed and failed()))
        if button is not None:
            self.job.ended.connect(lambda _o: button.setEnabled(True))
        return self.job

    def clear(self) -> None:
        self.data, self.columns, self.density, self.dups, self.holes = None, {}, None, None, None
        self._tree = None
        for it in (*self.syn_items, *self.real_items, self.mark_item, self.hole_item):
            it.clear()
        self.dup_list.clear()
        self.region_list.clear()
        self.cov_table.setRowCount(0)
        self.selected = np.zeros(0, np.int64)
        self._update_selection()
        self.status.setText("No map yet: press Compute map.")

    def _reference(self) -> tuple[str, str | None]:
        if self.reference.currentIndex() == 0 and self.studio.project is not None:
            return self.studio.project.evaluation()
        return "", None

    def compute(self, method: str | None = None, refit: bool = False):
        if self.studio.project is None:
            return None
        from prism_gui.engine.project.app_jobs import map_view_job

        root, teacher = self.studio.project.root, self.studio.teacher
        method = method or METHODS[self.method.currentText()]
        reference, mapping = self._reference()
        self.status.setText("computing the map…")
        job = self._submit("Map", lambda token: map_view_job(
            root, teacher, method=method, reference=reference, mapping=mapping, refit=refit, cancel=token),
            self._mapped, self.compute_button, failed=lambda: self.status.setText(""))
        job.progress.connect(self._for(root, lambda ev: self.status.setText(ev.message)))
        return job

    def _mapped(self, ev) -> None:
        from scipy.spatial import cKDTree

        self.data, self.columns = ev.data["map"], ev.data["columns"]
        self.density = None
        self._tree = cKDTree(self.data.xy)
        self.status.setText(ev.message)
        self.selected = np.zeros(0, np.int64)
        self.recolour()
        self.plot.autoRange()
        self._update_selection()

    def point_values(self) -> tuple[np.ndarray, list[str], list[str]]:
        """(palette index per point, palette, legend entries) for the chosen colouring."""
        d, how = self.data, self.colour.currentText()
        n = len(d)
        if how == "class":
            names = self.studio.class_names()
            idx = d.labels % len(PALETTE)
            legend = [f"<span style='color:{PALETTE[c % len(PALETTE)]}'>●</span> {names[c] if c < len(names) else c}"
                      for c in range(min(len(names), 20))]
            return idx, PALETTE, legend + (["(colours repeat every 20 classes)"] if len(names) > 20 else [])
        if how in ("run", "status", "real vs synthetic"):
            cats = {"run": np.where(d.real, "real", d.runs.astype(str)), "status":
                    np.where(d.real, "real", self.columns["status"].astype(str)),
                    "real vs synthetic": np.where(d.real, "real", "synthetic")}[how]
            names = sorted(set(cats.tolist()))
            pal = [STATUS_COLOURS.get(c, "#222" if c == "real" else PALETTE[(2 * i) % len(PALETTE)])
                   for i, c in enumerate(names)]
            idx = np.searchsorted(np.array(names), cats)
            return idx, pal, [f"<span style='color:{pal[i]}'>●</span> {c}" for i, c in enumerate(names)]
        v = {"energy": self.columns.get("energy"), "confidence": self.columns.get("confidence"),
             "density": self.density}[how]
        if v is None:
            self.message.setText("Density comes from the near-duplicate search: press Find near-duplicates.")
            v = np.full(n, np.nan)
        log = False
        if how == "energy":
            from prism_gui.engine.analysis.plots import energy_for_display

            v, log = energy_for_display(v)
        v = np.asarray(v, float)
        ok = np.isfinite(v)
        lo, hi = (np.percentile(v[ok], [2, 98]) if ok.any() else (0.0, 1.0))
        idx = np.clip(((v - lo) / max(hi - lo, 1e-12) * (RAMP - 1)).round(), 0, RAMP - 1)
        idx = np.where(ok, idx, RAMP).astype(int)
        ramp = [*viridis(RAMP), "#bbbbbb"]
        unit = "log10 energy" if log else how
        return idx, ramp, [f"{unit}: <span style='color:{ramp[0]}'>■</span> {lo:.3g} … "
                           f"<span style='color:{ramp[-2]}'>■</span> {hi:.3g} (grey: none)"]

    def _items(self, pool: list, n: int, real: bool) -> list:
        pgm = pg()
        while len(pool) < n:
            it = pgm.ScatterPlotItem(pxMode=True, pen=None, symbol="x" if real else "o", useCache=True)
            it.setZValue(0 if real else 1)  # the synthetic points above the real crosses: they are what is curated
            self.plot.addItem(it)
            pool.append(it)
        for it in pool[n:]:
            it.clear()
        return pool[:n]

    def recolour(self) -> None:
        if self.data is None:
            return
        pgm = pg()
        idx, pal, legend = self.point_values()
        syn, real = ~self.data.real, self.data.real
        xy = self.data.xy
        n = int(syn.sum())
        size = 3 if n > 20000 else 5 if n > 2000 else 6
        for mask, pool, is_real in ((syn, self.syn_items, False), (real, self.real_items, True)):
            rows = np.flatnonzero(mask)
            if not len(rows):
                self._items(pool, 0, is_real)
                continue
            order = rows[np.argsort(idx[rows], kind="stable")]
            colours, starts = np.unique(idx[order], return_index=True)
            items = self._items(pool, len(colours), is_real)
            for it, c, part in zip(items, colours, np.split(order, starts[1:]), strict=True):
                colour = QColor(pal[int(c)])
                if is_real:
                    it.setData(x=xy[part, 0], y=xy[part, 1], size=size + 3, brush=None,
                               pen=pgm.mkPen(colour, width=1.4))
                else:
                    it.setData(x=xy[part, 0], y=xy[part, 1], size=size, pen=None, brush=pgm.mkBrush(colour))
        self.legend.setText(" &nbsp; ".join(legend) + (" &nbsp; × real image" if real.any() else ""))

    def drawn(self, real: bool = False) -> dict[str, int]:
        """Points drawn per colour (hex), synthetic or real."""
        out: dict[str, int] = {}
        for it in self.real_items if real else self.syn_items:
            if len(it.data):
                c = (it.opts["pen"].color() if real else it.opts["brush"].color()).name()
                out[c] = out.get(c, 0) + len(it.data)
        return out

    # ------------------------------------------------------------------ hover
    def _hover(self, pos) -> None:
        self._hover_pos = pos
        if not self._hover_timer.isActive():
            self._hover_timer.start()

    def point_at(self, x: float, y: float) -> int | None:
        """The index of the point nearest to view coordinates (x, y), if within HOVER_PX pixels."""
        if self._tree is None:
            return None
        px, py = self.vb.viewPixelSize()
        d, i = self._tree.query([x, y])
        if not np.isfinite(d):
            return None
        dx, dy = (self.data.xy[i] - [x, y]) / [max(px, 1e-12), max(py, 1e-12)]
        return int(i) if np.hypot(dx, dy) <= HOVER_PX else None

    def _show_hover(self) -> None:
        if self.data is None or self._hover_pos is None or not self.plot.sceneBoundingRect().contains(self._hover_pos):
            return
        p = self.vb.mapSceneToView(self._hover_pos)
        i = self.point_at(p.x(), p.y())
        if i is not None:
            self.describe_point(i)

    def describe_point(self, i: int) -> None:
        names = self.studio.class_names()
        c = int(self.data.labels[i])
        cname = names[c] if c < len(names) else str(c)
        if self.data.real[i]:
            self.hover_image.clear()
            self.hover_image.setText("real image")
            self.hover_text.setText(f"<b>real</b> image of class <b>{cname}</b> (reference set)")
            return
        cat = self.studio.catalog
        try:
            row = cat.get(int(self.data.ids[i])) if cat is not None else None
        except Exception:  # removed since the map was made (a repair): nothing to show
            row = None
        if row is None:
            self.hover_text.setText("(this image is no longer in the catalog: compute the map again)")
            return
        self.hover_image.setPixmap(QPixmap.fromImage(load_tile(cat.root / row["thumb"], 104)))
        energy = f"{row['energy']:.3f}" if row["energy"] is not None else "-"
        conf = f"{row['confidence']:.2f}" if row["confidence"] is not None else "-"
        self.hover_text.setText(f"<b>#{row['id']}</b> · <b>{cname}</b> · <i>{row['status']}</i><br>"
                                f"energy {energy} · confidence {conf}<br>run {row['run']}<br>"
                                f"<span style='font-size:8pt'>{row['prompt']}</span>")

    def show_strip(self, title: str, ids: list[int], keep: int | None = None, limit: int = 10) -> None:
        """A row of images (a duplicate group: the kept one framed green, the others red)."""
        from PySide6.QtGui import QPainter, QPen

        cat = self.studio.catalog
        ids = list(ids)[:limit]
        self.strip_title.setText(title)
        if cat is None or not ids:
            self.strip.clear()
            return
        pm = QPixmap(len(ids) * (STRIP + 6), STRIP + 6)
        pm.fill(QColor("white"))
        painter = QPainter(pm)
        for j, i in enumerate(ids):
            try:
                row = cat.get(int(i))
            except Exception:  # removed since the analysis: leave its cell empty
                continue
            x = j * (STRIP + 6) + 3
            painter.drawImage(x, 3, load_tile(cat.root / row["thumb"], STRIP))
            if keep is not None:
                painter.setPen(QPen(QColor("#2e7d32" if i == keep else "#c62828"), 3))
                painter.drawRect(x - 1, 2, STRIP + 1, STRIP + 1)
        painter.end()
        self.strip.setPixmap(pm)

    # ------------------------------------------------------------------ selection
    def set_tool(self, name: str) -> None:
        self.vb.tool = name
        self.vb.setMouseEnabled(x=name == "pan", y=name == "pan")

    def _select_shape(self, shape: np.ndarray) -> None:
        if self.data is None or len(shape) < 3:
            return
        from matplotlib.path import Path as MplPath

        inside = MplPath(shape).contains_points(self.data.xy)
        self.select_points(np.flatnonzero(inside & ~self.data.real))

    def select_points(self, points) -> None:
        self.selected = np.asarray(points, np.int64)
        self._update_selection()

    def selected_ids(self) -> list[int]:
        if self.data is None or not len(self.selected):
            return []
        return [int(i) for i in self.data.ids[self.selected] if i >= 0]

    def _update_selection(self) -> None:
        n = len(self.selected)
        for b in (self.gallery_button, self.keep_button, self.reject_button):
            b.setEnabled(n > 0)
        if self.data is None or not n:
            self.mark_item.clear()
            self.sel_label.setText("Nothing selected: choose Lasso or Box and drag on the map.")
            return
        xy = self.data.xy[self.selected]
        self.mark_item.setData(x=xy[:, 0], y=xy[:, 1], size=9 if n < 2000 else 6)
        classes = np.bincount(self.data.labels[self.selected])
        names = self.studio.class_names()
        top = np.argsort(-classes)[:3]
        self.sel_label.setText(f"<b>{n:,}</b> images selected (" + ", ".join(
            f"{names[c] if c < len(names) else c} {classes[c]}" for c in top if classes[c]) + ")")

    def show_in_gallery(self) -> None:
        ids = self.selected_ids()
        if ids:
            self.show_ids.emit(ids)

    def set_status(self, status: str) -> int | None:
        ids = self.selected_ids()
        cat = self.studio.catalog
        if not ids or cat is None:
            return None
        action = cat.set_status(ids, status, label=f"{status} {len(ids)} on the map")
        self.message.setText(f"{status}: {len(ids):,} images; Undo reverts it.")
        self._refresh_status()
        self.studio.catalog_changed.emit()
        return action

    def undo(self) -> None:
        cat = self.studio.catalog
        if cat is None:
            return
        self.message.setText("Undone." if cat.undo() is not None else "Nothing to undo.")
        self._refresh_status()
        self.studio.catalog_changed.emit()

    def _refresh_status(self) -> None:
        """Statuses changed: re-read them (the map itself stays)."""
        cat = self.studio.catalog
        if self.data is None or cat is None:
            return
        st = {r[0]: r[1] for r in cat.query(columns="id, status")}
        self.columns["status"] = np.array([st.get(int(i), "") if i >= 0 else "" for i in self.data.ids], dtype=object)
        if self.colour.currentText() == "status":
            self.recolour()


__all__ = ["MapPanel"]
