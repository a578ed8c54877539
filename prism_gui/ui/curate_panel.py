"""Curate panel: the gallery with filters and keyboard curation, a detail pane, per-class
energy/confidence histograms with a draggable threshold, and precision/recall as a job."""

from __future__ import annotations

import json

import numpy as np
from PySide6.QtCore import QItemSelectionModel, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QPixmap, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QPushButton,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from prism_gui.ui.class_table import ClassTable
from prism_gui.ui.common import Studio, dspin, error_label, load_tile, show_error, spin, two_panes, wrapping
from prism_gui.ui.curate_prdc import PrdcSection
from prism_gui.ui.gallery import GalleryModel, IdRole, RowRole, TileDelegate
from prism_gui.ui.histogram import Histogram

DETAIL_PX = 128  # the selected image, larger than a tile; small enough for a laptop screen beside the histograms
SORTS = {"energy (low first)": ("energy", False), "energy (high first)": ("energy", True),
         "confidence (high first)": ("confidence", True), "confidence (low first)": ("confidence", False),
         "class": ("class_index", False), "newest": ("id", True), "oldest": ("id", False),
         "entropy (high first)": ("entropy", True)}
STATUS_FILTERS = {"all": None, "not rejected": ["unreviewed", "keep"], "unreviewed": ["unreviewed"],
                  "kept": ["keep"], "rejected": ["reject"]}


class CuratePanel(PrdcSection, QWidget):
    regenerate = Signal(dict)  # "generate again with these settings": the image's catalog row

    def __init__(self, studio: Studio, parent: QWidget | None = None):
        super().__init__(parent)
        self.studio = studio
        self.cat = None
        self.job = None

        self._build_filter_bar()
        self._build_gallery()
        self._build_detail_pane()
        self._build_histograms()

    def _build_filter_bar(self) -> None:
        """Filter bar."""
        self.run = QComboBox()
        self.run.setToolTip("Show one generation run, or all")
        self.klass = QComboBox()
        self.klass.setToolTip("Show one class (also selects the histograms' class)")
        self.status = QComboBox()
        self.status.addItems(list(STATUS_FILTERS))
        self.status.setToolTip("Curation status")
        self.sort = QComboBox()
        self.sort.addItems(list(SORTS))
        self.sort.setToolTip("Sort order")
        self.text = QLineEdit()
        self.text.setPlaceholderText("prompt contains…")
        self.text.setToolTip("Filter by prompt text")
        self.text.setClearButtonEnabled(True)
        self.energy_max_on = QCheckBox("energy ≤")
        self.energy_max = dspin(-100, 100, 1.0, "Show only images with at most this energy", 0.1, 2)
        self.conf_min_on = QCheckBox("confidence ≥")
        self.conf_min = dspin(0, 1, 0.5, "Show only images the teacher is at least this confident about", 0.05, 2)
        self.count = QLabel()
        self.text.setMinimumWidth(160)
        self.map_ids: list[int] | None = None  # a selection made on the Map tab
        self.map_chip = QPushButton()
        self.map_chip.setToolTip("The gallery shows the images selected on the Map tab: click to show all again")
        self.map_chip.setStyleSheet("QPushButton { background: #e3f2fd; border: 1px solid #90caf9; "
                                    "border-radius: 9px; padding: 1px 8px; }")
        self.map_chip.clicked.connect(lambda: self.show_ids(None))
        self.map_chip.hide()
        row1 = QHBoxLayout()
        for w in (QLabel("Run"), self.run, QLabel("Class"), self.klass, QLabel("Status"), self.status,
                  QLabel("Sort"), self.sort):
            row1.addWidget(w)
        row1.addStretch(1)
        row2 = QHBoxLayout()
        for w in (self.text, self.energy_max_on, self.energy_max, self.conf_min_on, self.conf_min, self.map_chip):
            row2.addWidget(w)
        row2.addStretch(1)
        self._bar = QVBoxLayout()
        self._bar.addLayout(row1)
        self._bar.addLayout(row2)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(250)
        self._debounce.timeout.connect(self.apply_filters)
        for w in (self.run, self.klass, self.status, self.sort):
            w.currentIndexChanged.connect(self._debounce.start)
        self.text.textChanged.connect(self._debounce.start)
        for w in (self.energy_max, self.conf_min):
            w.valueChanged.connect(self._debounce.start)
        for w in (self.energy_max_on, self.conf_min_on):
            w.toggled.connect(self._debounce.start)

    def _build_gallery(self) -> None:
        """Gallery."""
        self.model = GalleryModel(self)
        self.view = QListView()
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setUniformItemSizes(True)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setLayoutMode(QListView.LayoutMode.Batched)
        self.view.setBatchSize(500)
        self.view.setSelectionMode(QListView.SelectionMode.ExtendedSelection)
        self.view.setModel(self.model)
        self.view.setItemDelegate(TileDelegate(self.model, self.view))
        self.view.setToolTip("Arrows move · K keep · R reject · U unreviewed · Ctrl+Z undo")
        self.view.selectionModel().currentChanged.connect(lambda cur, _prev: self.show_detail(cur))
        self.model.count_changed.connect(self._update_count)
        for key, fn in (("K", lambda: self.set_status("keep")), ("R", lambda: self.set_status("reject")),
                        ("U", lambda: self.set_status("unreviewed")), ("Ctrl+Z", self.undo)):
            sc = QShortcut(QKeySequence(key), self.view)
            sc.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            sc.activated.connect(fn)
        keep = QPushButton("Keep (K)")
        keep.clicked.connect(lambda: self.set_status("keep"))
        reject = QPushButton("Reject (R)")
        reject.clicked.connect(lambda: self.set_status("reject"))
        undo = QPushButton("Undo (Ctrl+Z)")
        undo.setToolTip("Undo the last curation action (a threshold rejection is one action)")
        undo.clicked.connect(self.undo)
        self.message = wrapping(QLabel())
        self.message.setStyleSheet("color: #345;")
        crow = QHBoxLayout()
        crow.addWidget(self.count)
        crow.addStretch(1)
        crow.addWidget(self.message)
        for b in (keep, reject, undo):
            crow.addWidget(b)
        self._gallery = QWidget()
        gl = QVBoxLayout(self._gallery)
        gl.setContentsMargins(0, 0, 0, 0)
        gl.addLayout(self._bar)
        gl.addWidget(self.view, 1)
        gl.addLayout(crow)

    def _build_detail_pane(self) -> None:
        """Detail pane."""
        self.image = QLabel()
        self.image.setFixedSize(DETAIL_PX + 8, DETAIL_PX + 8)
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setStyleSheet("background: white; border: 1px solid #ccc;")
        self.detail = QTextBrowser()
        self.detail.setOpenLinks(False)
        self.again = QPushButton("Generate again with these settings")
        self.again.setToolTip("Fill the Generate panel with this image's generator, sampler, guidance and seed")
        self.again.setEnabled(False)
        self.again.clicked.connect(self._regenerate)
        self._detail_row: dict | None = None
        self._dbox = QGroupBox("Selected image")
        dl = QHBoxLayout(self._dbox)
        il = QVBoxLayout()
        il.addWidget(self.image)
        il.addWidget(self.again)
        il.addStretch(1)
        dl.addLayout(il)
        dl.addWidget(self.detail, 1)

    def _build_histograms(self) -> None:
        """The histograms and their actions, the per-class table, and the panel's two panes."""
        self.h_energy = Histogram("Teacher energy (log scale)", "energy (lower = more in-distribution)",
                                  (31, 119, 180, 140), log=True)
        self.h_energy.plot.setToolTip("Teacher energy of each image (the guidance energy's terms, e.g. the class "
                                      "energy: minus the log-probability the teacher gives the intended class). Lower "
                                      "is closer to what the teacher knows; 0 is a certain, correct teacher. Drag the "
                                      "red line, then 'Reject energy above line'")
        self.h_conf = Histogram("Teacher confidence", "confidence", (44, 160, 44, 140))
        self.h_energy.line.sigPositionChanged.connect(self._threshold_moved)
        self.h_conf.line.sigPositionChanged.connect(self._threshold_moved)
        self.reject_energy = QPushButton("Reject energy above line")
        self.reject_energy.setToolTip("Reject every image of the shown run/class with energy above the red line "
                                      "(one undoable step)")
        self.reject_energy.clicked.connect(lambda: self.reject_beyond("energy"))
        self.reject_conf = QPushButton("Reject confidence below line")
        self.reject_conf.setToolTip("Reject every image of the shown run/class the teacher is less confident about "
                                    "(one undoable step)")
        self.reject_conf.clicked.connect(lambda: self.reject_beyond("confidence"))
        self.beyond = wrapping(QLabel())
        self.keep_n = spin(1, 100000, 20, "Images to keep per class")
        self.keep_button = QPushButton("Keep per class:")
        self.keep_button.setToolTip("Oversample-and-select: per class keep N images of the shown run, chosen as the "
                                    "menu says, and reject the rest (one undoable step)")
        self.keep_button.clicked.connect(lambda: self.select_per_class())
        from prism_gui.engine.analysis.selection import DESCRIPTIONS, STRATEGIES
        from prism_gui.engine.project.demo_settings import FULL

        self.keep_by = QComboBox()
        for name in STRATEGIES:
            if name != "first":
                self.keep_by.addItem(DESCRIPTIONS[name], name)
        self.keep_by.setCurrentIndex(max(0, self.keep_by.findData(FULL["select"])))
        self.keep_by.setToolTip("How the kept images are chosen. The default is the demo's (docs/BENCHMARKS.md); "
                                "the coverage choices compare images in the teacher's features (a job)")
        self.prdc_button = QPushButton("Precision / recall vs. real images")
        self.prdc_button.setToolTip("Precision, recall, density and coverage of the non-rejected images against the "
                                    "project's evaluation set (Digits test split, an image folder such as ImageNet "
                                    "val), in the teacher's features (a job)")
        self.prdc_button.clicked.connect(self.compute_prdc)
        self.prdc = QLabel("")
        self.prdc.setWordWrap(True)
        self.prdc.setTextFormat(Qt.TextFormat.RichText)
        self.error = error_label()
        hbox = QGroupBox("Distributions (shown run and class)")
        hl = QVBoxLayout(hbox)
        hrow = QHBoxLayout()
        hrow.addWidget(self.h_energy)
        hrow.addWidget(self.h_conf)
        hl.addLayout(hrow, 1)
        brow = QHBoxLayout()
        brow.addWidget(self.reject_energy)
        brow.addWidget(self.reject_conf)
        hl.addLayout(brow)
        krow = QHBoxLayout()
        krow.addWidget(self.keep_button)
        krow.addWidget(self.keep_n)
        krow.addWidget(self.keep_by, 1)
        hl.addLayout(krow)
        hl.addWidget(self.beyond)
        prow = QHBoxLayout()
        prow.addWidget(self.prdc_button)
        prow.addWidget(self.prdc, 1)
        hl.addLayout(prow)
        hl.addWidget(self.error)

        self.class_table = ClassTable()
        self.class_table.class_chosen.connect(self.show_class)
        self._per_class: dict = {}
        cbox = QGroupBox("Per class (sort by a column; double-click to show the class)")
        QVBoxLayout(cbox).addWidget(self.class_table)
        side = QSplitter(Qt.Orientation.Vertical)
        side.addWidget(self._dbox)
        side.addWidget(hbox)
        side.addWidget(cbox)
        side.setSizes([220, 380, 200])
        two_panes(self, self._gallery, side, stretch=(3, 2), sizes=(700, 520))
        self.studio.project_changed.connect(self._on_project)
        self.studio.catalog_changed.connect(self.refresh)
        self.studio.teacher_changed.connect(lambda _t: self._fill_combos())


    # ---- project and catalog
    def _on_project(self, project) -> None:
        self.clear_detail()  # the previous project's image must not stay, nor "Generate again" with its settings
        self.map_ids = None
        self.map_chip.hide()
        self.cat = self.studio.catalog  # the GUI thread's one read connection (the studio closes it)
        self.model.set_catalog(self.cat)
        self._per_class = {}
        self._fill_combos()
        self.apply_filters()
        self.fill_class_table()

    def _fill_combos(self) -> None:
        runs = [r["id"] for r in self.cat.runs("generate")] if self.cat is not None else []
        classes = ["all classes", *self.studio.class_names()]
        for combo, items in ((self.run, ["all runs", *runs]), (self.klass, classes)):
            cur = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(items)
            if cur in items:
                combo.setCurrentText(cur)
            combo.blockSignals(False)

    def refresh(self) -> None:
        """New images or curation elsewhere: re-run the query, keep the filters."""
        if self.cat is None:
            return
        self._fill_combos()
        self.apply_filters()
        self.fill_class_table()

    def fill_class_table(self) -> None:
        if self.cat is None:
            return
        t = self.studio.project.spec.get("teacher", {}) if self.studio.project is not None else {}
        self.class_table.set_rows(self.cat.class_summary(), self.studio.class_names(), t.get("class_ids"),
                                  self._per_class)

    def show_class(self, k: int) -> None:
        """Show class ``k`` in the gallery (from the per-class table)."""
        self.klass.setCurrentIndex(k + 1)
        self.apply_filters()

    def filters(self) -> dict:
        f: dict = {}
        if self.run.currentIndex() > 0:
            f["run"] = self.run.currentText()
        if self.klass.currentIndex() > 0:
            f["classes"] = [self.klass.currentIndex() - 1]
        st = STATUS_FILTERS[self.status.currentText()]
        if st is not None:
            f["statuses"] = st
        if self.text.text().strip():
            f["text"] = self.text.text().strip()
        if self.energy_max_on.isChecked():
            f["energy_max"] = self.energy_max.value()
        if self.conf_min_on.isChecked():
            f["confidence_min"] = self.conf_min.value()
        if self.map_ids is not None:
            f["ids"] = self.map_ids
        return f

    def show_ids(self, ids: list[int] | None) -> None:
        """Show only ``ids`` (a Map selection; the other filters still apply), or None for all."""
        self.map_ids = list(ids) if ids is not None else None
        self.map_chip.setText(f"map selection: {len(ids):,} images  ✕" if ids is not None else "")
        self.map_chip.setVisible(ids is not None)
        self.apply_filters()

    def apply_filters(self) -> None:
        if self.cat is None:
            return
        sort, desc = SORTS[self.sort.currentText()]
        self.model.set_query(self.filters(), sort, desc)
        self.update_histograms()

    def _update_count(self, n: int) -> None:
        total = self.cat.count() if self.cat is not None else 0
        self.count.setText(f"{n:,} of {total:,} images")

    # ---- histograms and thresholds
    def _scope(self) -> dict:
        f = {}
        if self.run.currentIndex() > 0:
            f["run"] = self.run.currentText()
        if self.klass.currentIndex() > 0:
            f["classes"] = [self.klass.currentIndex() - 1]
        return f

    def update_histograms(self) -> None:
        if self.cat is None:
            return
        scope = self._scope()
        e = self.cat.column("energy", **scope).astype(float) if self.cat.count(**scope) else np.zeros(0)
        c = self.cat.column("confidence", **scope).astype(float) if len(e) else np.zeros(0)
        e = e[np.isfinite(e)]
        c = c[np.isfinite(c)]
        if len(e):
            lo, hi = max(float(np.min(e)), 1e-4), max(float(np.max(e)), 1e-3)
            hi = max(hi, lo * 1.01)
            self.model.energy_range = (float(np.percentile(e, 5)), float(np.percentile(e, 95)))
            old = self.h_energy.threshold
            self.h_energy.set_values(np.clip(e, lo, hi), rng=(lo, hi))
            self.h_energy.set_threshold(old if lo < old < hi else float(np.percentile(e, 80)))
        else:
            self.h_energy.set_values(e)
        self.h_conf.set_values(c, bins=25, rng=(0.0, 1.0))
        if not (0 < self.h_conf.threshold < 1):
            self.h_conf.set_threshold(0.5)
        self._threshold_moved()
        self.view.viewport().update()

    def _threshold_moved(self, *_args) -> None:
        ne = int((self.h_energy.values > self.h_energy.threshold).sum())
        nc = int((self.h_conf.values < self.h_conf.threshold).sum())
        self.beyond.setText(f"{ne} images above the energy line, {nc} below the confidence line")

    def reject_beyond(self, column: str = "energy", threshold: float | None = None,
                      spare_kept: bool | None = None) -> int | None:
        """Reject the shown run/class's images beyond the histogram's line (one undoable step);
        images kept by hand are spared or not as ``spare_kept`` says, or as the user answers."""
        if self.cat is None:
            return None
        h = self.h_energy if column == "energy" else self.h_conf
        thr = h.threshold if threshold is None else threshold
        above = column == "energy"
        hit = self.cat.beyond(thr, column=column, above=above, **self._scope())
        kept = self.cat.count(ids=hit, statuses=["keep"]) if hit else 0
        spare = bool(spare_kept)
        if kept and spare_kept is None:  # a bulk action never overrides what the user kept by hand without asking
            spare = self.ask_spare_kept(kept, len(hit))
            if spare is None:
                self.message.setText("Nothing rejected.")
                return None
        n_before = self.cat.count(statuses=["reject"])
        action = self.cat.reject_beyond(thr, column=column, above=above, spare_kept=spare, **self._scope())
        n = self.cat.count(statuses=["reject"]) - n_before
        self.message.setText(f"Rejected {n} images ({column} {'>' if column == 'energy' else '<'} {thr:.3f}); "
                             "Ctrl+Z undoes it.")
        self.refresh()
        return action

    def ask_spare_kept(self, kept: int, total: int) -> bool | None:
        """Ask whether a rejection of ``total`` images may reject the ``kept`` ones the user kept by
        hand: True spares them, False rejects them too, None cancels."""
        from PySide6.QtWidgets import QMessageBox

        box = QMessageBox(QMessageBox.Icon.Question, "Images you kept",
                          f"{kept} of the {total} images beyond the line were kept by hand.", parent=self)
        box.setInformativeText("Reject the others and leave those kept, or reject all of them?")
        spare = box.addButton("Keep mine, reject the others", QMessageBox.ButtonRole.AcceptRole)
        reject = box.addButton("Reject all", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(spare)
        box.exec()
        return True if box.clickedButton() is spare else False if box.clickedButton() is reject else None

    def select_per_class(self, per_class: int | None = None, strategy: str | None = None):
        """Keep ``per_class`` images per class of the shown run by ``strategy`` (default: the
        menu's), as a job; one undoable step."""
        if self.cat is None or self.studio.project is None:
            return None
        from prism_gui.engine.project.app_jobs import select_job

        n = per_class or self.keep_n.value()
        strategy = strategy or self.keep_by.currentData()
        run = self.run.currentText() if self.run.currentIndex() > 0 else None
        root, teacher = self.studio.project.root, self.studio.teacher
        self.keep_button.setEnabled(False)
        self.job = self.studio.submit("Select", lambda token: select_job(root, n, strategy, run, teacher,
                                                                         cancel=token))
        self.job.finished.connect(self._selected)
        self.job.failed.connect(lambda msg, _d: show_error(self.error, msg))
        self.job.ended.connect(lambda _o: self.keep_button.setEnabled(True))
        return self.job

    def _selected(self, ev) -> None:
        self.message.setText(f"Kept {ev.data['per_class']} images per class ({self.keep_by.currentText()}), "
                             f"rejected {ev.data['rejected']}; Ctrl+Z undoes it.")
        self.refresh()

    # ---- keyboard curation
    def selected_ids(self) -> list[int]:
        idx = self.view.selectionModel().selectedIndexes()
        if not idx and self.view.currentIndex().isValid():
            idx = [self.view.currentIndex()]
        return [i.data(IdRole) for i in idx]

    def set_status(self, status: str) -> None:
        ids = self.selected_ids()
        if not ids or self.cat is None:
            return
        self.cat.set_status(ids, status, label=f"{status} {len(ids)} by hand")
        self.model.reload_rows(ids)
        self.message.setText(f"{status}: {len(ids)} image{'s' if len(ids) > 1 else ''}")
        if len(ids) == 1:  # move on to the next image
            cur = self.view.currentIndex()
            nxt = self.model.index(min(cur.row() + 1, self.model.rowCount() - 1))
            self.view.selectionModel().setCurrentIndex(nxt, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        self.show_detail(self.view.currentIndex())
        self.update_histograms()

    def undo(self) -> None:
        if self.cat is None:
            return
        action = self.cat.undo()
        self.message.setText("Undone." if action is not None else "Nothing to undo.")
        self.refresh()

    # ---- detail
    def clear_detail(self) -> None:
        self._detail_row = None
        self.again.setEnabled(False)
        self.image.clear()
        self.detail.clear()

    def show_detail(self, index) -> None:
        if not index.isValid() or self.cat is None:
            self.clear_detail()
            return
        row = self.cat.get(index.data(IdRole))
        self._detail_row = row
        self.again.setEnabled(True)
        img = load_tile(self.cat.root / row["path"], DETAIL_PX)
        self.image.setPixmap(QPixmap.fromImage(img))
        names = self.studio.class_names()
        top5 = "".join(
            f"<tr><td>{names[c] if c < len(names) else c}</td><td align='right'>{100 * p:.1f}%</td></tr>"
            for c, p in (row.get("top5") or []))
        energies = ", ".join(f"{k} {v:.3f}" for k, v in (row.get("energies") or {}).items())
        settings = json.dumps(row.get("settings") or {}, indent=1)
        self.detail.setHtml(
            f"<b>#{row['id']}</b> · class <b>{row['class_name']}</b> · <i>{row['status']}</i><br>"
            f"<b>Prompt:</b> {row['prompt']}<br><b>Seed:</b> {row['seed']} · run <b>{row['run']}</b> · "
            f"generator {row['generator']}<br><b>Energy:</b> {row['energy']:.3f} ({energies})<br>"
            f"<b>Confidence:</b> {row['confidence']:.3f} · entropy {row['entropy']:.3f}<br>"
            f"<b>Teacher top-5:</b><table>{top5}</table>"
            f"<b>Settings:</b><pre style='font-size:8pt'>{settings}</pre>")

    def _regenerate(self) -> None:
        if self._detail_row is not None:
            self.regenerate.emit(self._detail_row)

    def close_catalog(self) -> None:
        """Let go of the studio's catalog (the studio closes it) once no thumbnail is being read."""
        self.model.wait_for_thumbnails()
        self.cat = None


__all__ = ["CuratePanel", "GalleryModel", "RowRole"]
