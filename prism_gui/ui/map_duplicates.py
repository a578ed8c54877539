"""The Map tab's side tab of near-duplicate groups: find them (a job), show a group on the map and
its images, reject all but the lowest-energy image of each in one undoable step."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from prism_gui.ui.common import button, dspin


class DuplicatesTab:
    """The Map tab's near-duplicate groups (a mixin of :class:`~prism_gui.ui.map_panel.MapPanel`:
    it uses the panel's studio, map points, strip and selection)."""

    def _build_duplicates_tab(self) -> QWidget:
        self.dup_ratio = dspin(0.01, 1.0, 0.1, "Near-duplicates: closer than this fraction of the set's typical "
                               "distance between nearest neighbours (teacher features, cosine)", 0.05, 2)
        self.dup_button = button("Find near-duplicates", "Search every class for near-duplicate groups (a job)",
                                 lambda: self.find_duplicates())
        self.dup_list = QListWidget()
        self.dup_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.dup_list.itemSelectionChanged.connect(self._dup_chosen)
        self.dup_reject = button("Reject near-duplicates (keep the lowest energy of each)",
                                 "Reject every image of the listed groups but its lowest-energy one, in one undoable "
                                 "step", lambda: self.reject_duplicates(), enabled=False)
        dtab = QWidget()
        dl = QVBoxLayout(dtab)
        drow = QHBoxLayout()
        drow.addWidget(QLabel("ratio"))
        drow.addWidget(self.dup_ratio)
        drow.addWidget(self.dup_button, 1)
        dl.addLayout(drow)
        dl.addWidget(self.dup_list, 1)
        dl.addWidget(self.dup_reject)
        return dtab

    def find_duplicates(self):
        if self.studio.project is None:
            return None
        from prism_gui.engine.analysis.duplicates import duplicates_job
        from prism_gui.engine.project.app_jobs import project_teacher

        root, teacher, ratio = self.studio.project.root, self.studio.teacher, self.dup_ratio.value()
        return self._submit("Near-duplicates", lambda token: duplicates_job(
            root, project_teacher(root, teacher), ratio=ratio, cancel=token), self._duplicates_found, self.dup_button)

    def _duplicates_found(self, ev) -> None:
        res = self.dups = ev.data["result"]
        names = self.studio.class_names()
        self.dup_list.clear()
        for j, g in enumerate(res["groups"]):
            it = QListWidgetItem(f"{names[g['class']] if g['class'] < len(names) else g['class']} · "
                                 f"{len(g['ids'])} images · distance ≤ {g['max_distance']:.2g}")
            it.setData(Qt.ItemDataRole.UserRole, j)
            self.dup_list.addItem(it)
        self.dup_reject.setEnabled(bool(res["groups"]))
        self.message.setText(ev.message)
        if self.data is not None:  # density per map point
            pos = {int(i): k for k, i in enumerate(res["ids"])}
            self.density = np.array([res["density"][pos[int(i)]] if int(i) in pos else np.nan for i in self.data.ids])
            if self.colour.currentText() == "density":
                self.recolour()

    def _points_of(self, ids) -> np.ndarray:
        if self.data is None:
            return np.zeros(0, np.int64)
        return np.flatnonzero(np.isin(self.data.ids, np.asarray(list(ids), np.int64)))

    def _dup_chosen(self) -> None:
        if self.dups is None:
            return
        groups = [self.dups["groups"][it.data(Qt.ItemDataRole.UserRole)] for it in self.dup_list.selectedItems()]
        self.select_points(self._points_of([i for g in groups for i in g["ids"]]))
        if groups:
            g = groups[0]
            self.show_strip(f"Group of {len(g['ids'])}: green is kept (lowest energy), red would be rejected",
                            g["ids"], keep=g["keep"])

    def reject_duplicates(self) -> int | None:
        cat = self.studio.catalog
        if cat is None or not self.dups or not self.dups["groups"]:
            return None
        from prism_gui.engine.analysis.duplicates import reject_duplicates

        action = reject_duplicates(cat, self.dups["groups"])
        n = sum(len(g["reject"]) for g in self.dups["groups"])
        self.message.setText(f"Rejected {n:,} near-duplicates, kept the lowest-energy image of each of "
                             f"{len(self.dups['groups']):,} groups; Undo reverts it.")
        self.dup_reject.setEnabled(False)
        self._refresh_status()
        self.studio.catalog_changed.emit()
        return action
