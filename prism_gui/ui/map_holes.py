"""The Map tab's side tab of holes: per-class coverage of the real set, the uncovered regions on the
map, and a generation of more images there (a queued job)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from prism_gui.ui.common import button, show_error, spin


class HolesTab:
    """The Map tab's per-class coverage, uncovered regions and "Generate more here" (a mixin of
    :class:`~prism_gui.ui.map_panel.MapPanel`: it uses the panel's studio, map points and strip)."""

    def _build_holes_tab(self) -> QWidget:
        self.holes_button = button("Find holes", "Per-class coverage of the real set (or of the teacher's class "
                                   "prototypes when the project has none) and the uncovered regions (a job)",
                                   lambda: self.find_holes())
        self.cov_table = QTableWidget(0, 4)
        self.cov_table.setHorizontalHeaderLabels(["class", "coverage", "real", "synthetic"])
        self.cov_table.verticalHeader().hide()
        self.cov_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.cov_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.cov_table.setSortingEnabled(True)
        self.region_list = QListWidget()
        self.region_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.region_list.itemSelectionChanged.connect(self._regions_chosen)
        self.fill_n = spin(1, 100000, 50, "Images to generate per class of the chosen regions")
        self.fill_button = button("Generate more here", "Queue a generation job for the chosen regions' classes with "
                                  "their proposed prompts and the latest run's settings", lambda: self.fill(),
                                  enabled=False)
        htab = QWidget()
        hl2 = QVBoxLayout(htab)
        hl2.addWidget(self.holes_button)
        hl2.addWidget(QLabel("Coverage per class (lowest first)"))
        hl2.addWidget(self.cov_table, 2)
        hl2.addWidget(QLabel("Uncovered regions (choose to see them on the map)"))
        hl2.addWidget(self.region_list, 2)
        frow = QHBoxLayout()
        frow.addWidget(self.fill_button, 1)
        frow.addWidget(self.fill_n)
        frow.addWidget(QLabel("per class"))
        hl2.addLayout(frow)
        return htab

    def find_holes(self):
        if self.studio.project is None:
            return None
        from prism_gui.engine.analysis.holes import holes_job
        from prism_gui.engine.project.app_jobs import project_teacher

        root, teacher = self.studio.project.root, self.studio.teacher
        reference, mapping = self._reference()
        return self._submit("Holes", lambda token: holes_job(
            root, project_teacher(root, teacher), reference=reference or None, mapping=mapping, cancel=token),
            self._holes_found, self.holes_button)

    def _holes_found(self, ev) -> None:
        res = self.holes = ev.data["result"]
        self.cov_table.setSortingEnabled(False)
        self.cov_table.setRowCount(len(res["per_class"]))
        for r, (_c, v) in enumerate(sorted(res["per_class"].items(), key=lambda kv: kv[1]["coverage"])):
            cells = [v["class_name"], f"{v['coverage']:.2f}", str(v.get("real", "-")), str(v["synthetic"])]
            for j, text in enumerate(cells):
                item = QTableWidgetItem()
                if j:
                    item.setData(Qt.ItemDataRole.DisplayRole, float(text) if j == 1 else
                                 int(text) if text != "-" else text)
                else:
                    item.setText(text)
                self.cov_table.setItem(r, j, item)
        self.cov_table.setSortingEnabled(True)
        self.cov_table.sortItems(1, Qt.SortOrder.AscendingOrder)
        self.region_list.clear()
        for j, g in enumerate(res["regions"]):
            prompt = g["prompts"][0]["prompt"] if g["prompts"] else "(no images of the class to take prompts from)"
            what = "uncovered real images" if res["reference"] == "real" else "images off their prototype"
            it = QListWidgetItem(f"{g['class_name']} · {g['size']} {what} · “{prompt}”")
            it.setToolTip("Proposed prompts:\n" + "\n".join(f"{p['count']}× {p['prompt']}" for p in g["prompts"]))
            it.setData(Qt.ItemDataRole.UserRole, j)
            self.region_list.addItem(it)
        self.message.setText(ev.message)
        self.fill_button.setEnabled(False)

    def _regions_chosen(self) -> None:
        if self.holes is None:
            return
        regions = self.chosen_regions()
        self.fill_button.setEnabled(bool(regions))
        if regions:
            g = regions[0]
            self.show_strip(f"Nearest images to the region ({g['class_name']}); their prompts are proposed",
                            g["nearest_ids"])
        if self.data is None or self.holes["reference"] != "real":
            self.hole_item.clear()
            return
        ref_rows = np.flatnonzero(self.data.real)  # map rows of the reference set, in its order
        idx = [i for g in regions for i in g["real_indices"] if i < len(ref_rows)]
        xy = self.data.xy[ref_rows[idx]] if idx else np.zeros((0, 2))
        self.hole_item.setData(x=xy[:, 0], y=xy[:, 1])

    def chosen_regions(self) -> list[dict]:
        if self.holes is None:
            return []
        return [self.holes["regions"][it.data(Qt.ItemDataRole.UserRole)] for it in self.region_list.selectedItems()]

    def fill(self, regions: list[dict] | None = None, per_class: int | None = None):
        """Generate more here: a generation job for the chosen regions (queued after any running job)."""
        if self.studio.project is None:
            return None
        regions = regions if regions is not None else self.chosen_regions()
        if not regions:
            return None
        from prism_gui.engine.project.app_jobs import fill_holes_job, generator, project_teacher

        root, teacher = self.studio.project.root, self.studio.teacher
        n = per_class or self.fill_n.value()
        runs = self.studio.catalog.runs("generate") if self.studio.catalog is not None else []
        if not runs:
            show_error(self.error, "Generate more here copies the settings of a generation run: generate first.")
            return None
        base = runs[-1]  # the run whose settings (and generator) the fill copies, fixed now, not when it starts
        source = base["spec"].get("generator", "digits")
        job = self._submit("Generate more here", lambda token: fill_holes_job(
            root, project_teacher(root, teacher), regions, per_class=n, base_run=base["id"],
            components=generator(source), cancel=token), self._filled)
        self.message.setText(f"queued: {n} more images for each of {len({g['class'] for g in regions})} classes")
        return job

    def _filled(self, ev) -> None:
        self.message.setText(ev.message + ". Compute the map again to see them (it is updated, not refitted) and "
                                          "Find holes to measure the coverage.")
        self.studio.catalog_changed.emit()
