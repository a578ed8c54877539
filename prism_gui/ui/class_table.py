"""A sortable table with one row per class: counts and curation from the catalog, and the
per-class precision/recall of the last metrics job.  Built for 1,000 classes: one model reset
per refresh, numeric sorting in C++ (a sort role), double-click a row to show that class."""

from __future__ import annotations

from PySide6.QtCore import QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView

from prism_gui.engine.teachers.classes import CLASS_COLUMNS, class_rows, format_class_cell

SortRole = Qt.ItemDataRole.UserRole + 1


class ClassTable(QTableView):
    class_chosen = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.source = QStandardItemModel(0, len(CLASS_COLUMNS), self)
        self.source.setHorizontalHeaderLabels(list(CLASS_COLUMNS))
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.source)
        self.proxy.setSortRole(SortRole)
        self.setModel(self.proxy)
        self.setSortingEnabled(True)
        self.sortByColumn(0, Qt.SortOrder.AscendingOrder)  # class order until the user sorts
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setAlternatingRowColors(True)
        self.verticalHeader().hide()
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 4)
        hh = self.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        hh.setResizeContentsPrecision(200)
        self.setToolTip("One row per class; click a header to sort, double-click a row to show that class")
        self.doubleClicked.connect(lambda ix: self.class_chosen.emit(int(self.proxy.index(ix.row(), 0).data(SortRole))))

    def set_rows(self, summary: dict[int, dict], class_names: list[str], class_ids: list[str] | None = None,
                 per_class: dict | None = None) -> None:
        """``summary``: Catalog.class_summary(); ``per_class``: P/R/D/C keyed by class_key."""
        self.setSortingEnabled(False)
        self.source.setRowCount(0)
        for values in class_rows(summary, class_names, class_ids, per_class):
            row = []
            for c, v in enumerate(values):
                it = QStandardItem(format_class_cell(c, v))
                it.setData(-1e30 if v is None else v, SortRole)
                if not isinstance(v, str):
                    it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                row.append(it)
            self.source.appendRow(row)
        self.setSortingEnabled(True)
