"""Prompts panel: per-class prompt lists with Diversified Prompt Engineering (DPE) controls,
inline editing, import/export and counts per class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QRegularExpression, QSortFilterProxyModel, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from prism_gui.engine.project.demo_settings import QUICK
from prism_gui.engine.prompts import Prompt, PromptSet, load_bank
from prism_gui.resources import resource_path
from prism_gui.ui.common import DropTarget, Studio, dspin, error_label, show_error, spin

COLUMNS = ("Class", "Prompt", "Active", "Weight", "Score", "Source")


class PromptTableModel(QAbstractTableModel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.ps: PromptSet | None = None

    def set_prompts(self, ps: PromptSet | None) -> None:
        self.beginResetModel()
        self.ps = ps
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() or self.ps is None else len(self.ps.prompts)

    def columnCount(self, parent=QModelIndex()) -> int:
        return len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def flags(self, index):
        f = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if index.column() in (1, 3):
            f |= Qt.ItemFlag.ItemIsEditable
        if index.column() == 2:
            f |= Qt.ItemFlag.ItemIsUserCheckable
        return f

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if self.ps is None or not index.isValid():
            return None
        p = self.ps.prompts[index.row()]
        c = index.column()
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            if c == 0:
                return self.ps.class_names[p.class_index] if 0 <= p.class_index < len(self.ps.class_names) else "?"
            if c == 1:
                return p.text
            if c == 3:
                return f"{p.weight:g}" if role == Qt.ItemDataRole.DisplayRole else p.weight
            if c == 4:
                return "" if p.score is None else f"{p.score:.3f}"
            if c == 5:
                return p.source
        if role == Qt.ItemDataRole.CheckStateRole and c == 2:
            return Qt.CheckState.Checked if p.weight > 0 else Qt.CheckState.Unchecked
        if role == Qt.ItemDataRole.ForegroundRole and p.weight <= 0:
            return QColor("#999999")
        if role == Qt.ItemDataRole.ToolTipRole and c == 4:
            return "Mean teacher energy of pilot samples (lower = closer to the teacher's data)"
        if role == Qt.ItemDataRole.UserRole:
            return p.class_index
        return None

    def setData(self, index, value, role=Qt.ItemDataRole.EditRole) -> bool:
        if self.ps is None or not index.isValid():
            return False
        p = self.ps.prompts[index.row()]
        c = index.column()
        if c == 1 and role == Qt.ItemDataRole.EditRole:
            p.text = str(value)
            p.source = "user"
        elif c == 3 and role == Qt.ItemDataRole.EditRole:
            try:
                p.weight = max(0.0, float(value))
            except ValueError:
                return False
        elif c == 2 and role == Qt.ItemDataRole.CheckStateRole:
            p.weight = 1.0 if Qt.CheckState(value) == Qt.CheckState.Checked else 0.0
        else:
            return False
        self.dataChanged.emit(self.index(index.row(), 0), self.index(index.row(), len(COLUMNS) - 1))
        return True

    def add(self, prompt: Prompt) -> int:
        row = len(self.ps.prompts)
        self.beginInsertRows(QModelIndex(), row, row)
        self.ps.prompts.append(prompt)
        self.endInsertRows()
        return row

    def remove(self, rows: list[int]) -> None:
        for r in sorted(set(rows), reverse=True):
            self.beginRemoveRows(QModelIndex(), r, r)
            del self.ps.prompts[r]
            self.endRemoveRows()


class ClassFilter(QSortFilterProxyModel):
    """Shows the prompts of one class, matched by class index (ImageNet has two classes named
    "crane"), with the filtering done in C++ on the model's UserRole."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.class_index: int | None = None
        self.setFilterKeyColumn(0)
        self.setFilterRole(Qt.ItemDataRole.UserRole)

    def set_class(self, k: int | None, name: str = "") -> None:
        self.class_index = k
        self.setFilterRegularExpression(QRegularExpression(f"^{int(k)}$") if k is not None else
                                        QRegularExpression())


def bank_names() -> list[str]:
    return sorted(p.stem for p in resource_path("prompt_banks").glob("*.json"))


class PromptsPanel(DropTarget, QWidget):
    def __init__(self, studio: Studio, parent: QWidget | None = None):
        super().__init__(parent)
        self.studio = studio
        self.job = None
        self.bank: dict = {}

        self._build_the_dpe_settings()
        self._build_the_prompt_table()
        self._build_the_two_panes()

    def _build_the_dpe_settings(self) -> None:
        """The DPE settings."""
        self._dpe = QGroupBox("Diversified prompts (DPE)")
        form = QFormLayout(self._dpe)
        self.bank_combo = QComboBox()
        self.bank_combo.addItems(bank_names())
        self.bank_combo.setToolTip("Attribute bank (resources/prompt_banks/*.json): template and word lists")
        self.bank_combo.currentTextChanged.connect(self.set_bank)
        form.addRow("Bank", self.bank_combo)
        self.disamb = QComboBox()
        self.disamb.addItems(["name", "definition"])
        self.disamb.setToolTip("Semantic disambiguation: the class name as is, or name plus its WordNet definition")
        form.addRow("Disambiguation", self.disamb)
        self.per_class = spin(1, 500, QUICK["prompts_per_class"], "Distinct prompts per class")
        form.addRow("Prompts per class", self.per_class)
        self.seed = spin(0, 2**31 - 1, 0, "Seed of the expansion")
        form.addRow("Seed", self.seed)
        self.include_plain = QCheckBox("include the plain class-name prompt")
        self.include_plain.setChecked(True)
        form.addRow("", self.include_plain)
        self.axes_box = QGroupBox("Bank axes")
        self.axes_box.setToolTip("Attribute axes mixed into the prompts; untick to leave an axis out")
        self.axes_layout = QGridLayout(self.axes_box)
        self.axis_checks: dict[str, QCheckBox] = {}
        form.addRow(self.axes_box)
        self.expand_button = QPushButton("Expand")
        self.expand_button.setToolTip("Replace the prompts with a fresh DPE expansion (Ctrl+E)")
        self.expand_button.setShortcut("Ctrl+E")
        self.expand_button.clicked.connect(lambda: self.expand(plain=False))
        self.plain_button = QPushButton("Plain prompts")
        self.plain_button.setToolTip("One class-name prompt per class ('the digit k'): the DM-KD baseline")
        self.plain_button.clicked.connect(lambda: self.expand(plain=True))
        brow = QHBoxLayout()
        brow.addWidget(self.expand_button)
        brow.addWidget(self.plain_button)
        form.addRow(brow)
        self.keep_fraction = dspin(0.05, 1.0, 0.7, "Share of each class's prompts kept (lowest pilot energy)", 0.05, 2)
        form.addRow("Keep fraction", self.keep_fraction)
        self.score_button = QPushButton("Score prompts (pilot samples)")
        self.score_button.setToolTip("Precision-aware diversity: one pilot image per prompt, scored by the teacher; "
                                     "the prompts farthest from its data are switched off")
        self.score_button.clicked.connect(lambda: self.score())
        form.addRow(self.score_button)
        self.counts = QLabel()
        self.counts.setWordWrap(True)
        self.counts.setStyleSheet("color: #345;")
        form.addRow(self.counts)

    def _build_the_prompt_table(self) -> None:
        """The prompt table."""
        self.model = PromptTableModel(self)
        self.proxy = ClassFilter(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setAlternatingRowColors(True)
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().hide()
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        for c in (0, 2, 3, 4, 5):
            hh.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        hh.setResizeContentsPrecision(200)  # size columns from 200 rows, not all 40,000
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 6)
        self.model.dataChanged.connect(self._changed)
        self.model.rowsInserted.connect(self._changed)
        self.model.rowsRemoved.connect(self._changed)

        self.class_filter = QComboBox()
        self.class_filter.setToolTip("Show the prompts of one class")
        self.class_filter.currentIndexChanged.connect(
            lambda i: self.proxy.set_class(None if i <= 0 else i - 1, self.class_filter.itemText(i)))
        add = QPushButton("Add")
        add.setToolTip("Add a prompt to the class shown (or the first class)")
        add.clicked.connect(self.add_prompt)
        rem = QPushButton("Remove")
        rem.setToolTip("Remove the selected prompts (Del)")
        rem.setShortcut("Del")
        rem.clicked.connect(self.remove_selected)
        imp = QPushButton("Import…")
        imp.setToolTip("Load prompts from a PRISM JSON or a CSV (columns class, text[, weight, …])")
        imp.clicked.connect(lambda: self.import_file())
        exp = QPushButton("Export…")
        exp.setToolTip("Save the prompts as JSON or CSV")
        exp.clicked.connect(lambda: self.export_file())
        top = QHBoxLayout()
        top.addWidget(QLabel("Class"))
        top.addWidget(self.class_filter)
        top.addStretch(1)
        for b in (add, rem, imp, exp):
            top.addWidget(b)
        self.error = error_label()
        self.issues = QLabel()
        self.issues.setWordWrap(True)
        self.issues.setStyleSheet("color: #8a5a00;")
        self._right = QWidget()
        rl = QVBoxLayout(self._right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addLayout(top)
        rl.addWidget(self.table, 1)
        rl.addWidget(self.issues)
        rl.addWidget(self.error)

    def _build_the_two_panes(self) -> None:
        """The two panes."""
        split = QSplitter()
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self._dpe)
        ll.addStretch(1)
        split.addWidget(left)
        split.addWidget(self._right)
        split.setStretchFactor(1, 3)
        split.setSizes([330, 800])
        lay = QVBoxLayout(self)
        lay.addWidget(split)
        self.set_bank(self.bank_combo.currentText())
        self.setAcceptDrops(True)  # a prompt file (.json/.csv) dropped here is imported
        self.studio.project_changed.connect(self._on_project)
        self.studio.prompts_changed.connect(self._on_prompts)
        self.studio.teacher_changed.connect(lambda _t: self._fill_classes())


    # ---- project / bank
    def _on_project(self, project) -> None:
        p = project.spec.get("prompts", {})
        self.bank_combo.setCurrentText(p.get("bank", "digits"))
        self.disamb.setCurrentText(p.get("disambiguation", "name"))
        self.per_class.setValue(int(p.get("per_class", QUICK["prompts_per_class"])))
        self.seed.setValue(int(p.get("seed", 0)))
        self.include_plain.setChecked(bool(p.get("include_plain", True)))
        axes = p.get("axes")
        for a, cb in self.axis_checks.items():
            cb.setChecked(axes is None or a in axes)
        self._fill_classes()
        if self.studio.prompts is None:  # the project has none, or its file could not be read (Studio says)
            self.model.set_prompts(None)
            self._changed()

    def set_bank(self, name: str) -> None:
        try:
            self.bank = load_bank(name)
        except Exception as e:
            show_error(self.error, str(e))
            return
        for cb in self.axis_checks.values():
            cb.deleteLater()
        self.axis_checks.clear()
        axes = [("style", a, v) for a, v in self.bank.get("style", {}).items()] + \
               [("content", a, v) for a, v in self.bank.get("content", {}).items()]
        for i, (kind, axis, values) in enumerate(axes):
            cb = QCheckBox(axis)
            cb.setChecked(True)
            cb.setToolTip(f"{kind}: " + ", ".join(values))
            self.axis_checks[axis] = cb
            self.axes_layout.addWidget(cb, i // 2, i % 2)

    def axes(self) -> list[str] | None:
        chosen = [a for a, cb in self.axis_checks.items() if cb.isChecked()]
        return None if len(chosen) == len(self.axis_checks) else chosen

    def _fill_classes(self) -> None:
        names = self.studio.class_names()
        self.class_filter.blockSignals(True)
        self.class_filter.clear()
        self.class_filter.addItem("all classes")
        self.class_filter.addItems(names)
        self.class_filter.blockSignals(False)
        self.proxy.set_class(None)

    def _on_prompts(self, ps) -> None:
        if ps is not self.model.ps:
            self.model.set_prompts(ps)
        self._changed()

    # ---- editing
    def _changed(self, *args) -> None:
        ps = self.model.ps
        if ps is None:
            self.counts.setText("No prompts yet: press Expand.")
            self.issues.setText("")
            return
        per_class = ps.count_per_class()
        active = sum(1 for p in ps.prompts if p.weight > 0)
        if len(per_class) <= 20:
            per = "Per class: " + ", ".join(f"{n} {c}" for n, c in zip(ps.class_names, per_class, strict=True))
        else:  # 1,000 classes: a summary, and the classes that need attention
            values = np.array(per_class)
            empty = [n for n, c in zip(ps.class_names, per_class, strict=True) if c == 0]
            per = (f"{len(per_class):,} classes, {values.min()}–{values.max()} prompts each (median "
                   f"{int(np.median(values))})" + (f"; none for {len(empty)}: {', '.join(empty[:5])}"
                                                    + (" …" if len(empty) > 5 else "") if empty else ""))
        self.counts.setText(f"{len(ps.prompts):,} prompts ({active:,} active). {per}")
        issues = ps.validate()
        self.issues.setText(("⚠ " + "; ".join(issues[:4]) + (" …" if len(issues) > 4 else "")) if issues else "")
        if args and self.studio.project is not None:
            self.studio.project.save_prompts(ps)
            self.studio.prompts = ps

    def add_prompt(self) -> None:
        if self.model.ps is None:
            names = self.studio.class_names()
            if not names:
                show_error(self.error, "Load a teacher first: prompts are made for its classes.")
                return
            self.model.set_prompts(PromptSet(names))
            self.studio.prompts = self.model.ps
        k = self.proxy.class_index or 0
        name = self.model.ps.class_names[k]
        row = self.model.add(Prompt(k, f"a picture of {name}", source="user"))
        idx = self.proxy.mapFromSource(self.model.index(row, 1))
        self.table.scrollTo(idx)
        self.table.setCurrentIndex(idx)
        self.table.edit(idx)

    def remove_selected(self) -> None:
        rows = [self.proxy.mapToSource(i).row() for i in self.table.selectionModel().selectedRows()]
        if rows:
            self.model.remove(rows)

    def import_file(self, path: str | None = None) -> bool:
        if not path:
            path, _ = QFileDialog.getOpenFileName(self, "Import prompts", "", "Prompts (*.json *.csv)")
        if not path:
            return False
        try:
            ps = PromptSet.load(path, self.studio.class_names(), match_classes=True)
        except Exception as e:
            show_error(self.error, str(e))
            return False
        show_error(self.error, "")
        self.studio.set_prompts(ps)
        return True

    # ---- drag and drop (DropTarget): a prompt file, imported as with Import…
    def accept_drop(self, path: str) -> None:
        self.accept_file(path)

    def accept_file(self, path: str) -> bool:
        """Import a dropped prompt file; anything else is refused with what to drop instead."""
        p = Path(path)
        if p.suffix.lower() not in (".json", ".csv"):
            show_error(self.error, f"'{p.name}' is not a prompt file: drop a PRISM .json or a .csv with the columns "
                                   "class,text.")
            return False
        return self.import_file(str(p))

    def export_file(self, path: str | None = None) -> bool:
        if self.model.ps is None:
            return False
        if not path:
            path, _ = QFileDialog.getSaveFileName(self, "Export prompts", "prompts.json", "JSON (*.json);;CSV (*.csv)")
        if not path:
            return False
        self.model.ps.save(path)
        return True

    # ---- expansion (a job)
    def expand(self, plain: bool = False):
        from prism_gui.engine.project.app_jobs import expand_prompts_job

        names = self.studio.class_names()
        if not names:
            show_error(self.error, "Load a teacher first: prompts are made for its classes.")
            return None
        show_error(self.error, "")
        kw = dict(bank=self.bank_combo.currentText(), per_class=self.per_class.value(), seed=self.seed.value(),
                  axes=self.axes(), disambiguation=self.disamb.currentText(),
                  include_plain=self.include_plain.isChecked(), plain=plain)
        t = self.studio.teacher
        desc = getattr(t, "class_descriptions", None) if t is not None else None
        if self.studio.project is not None:
            self.studio.project.section("prompts").update({k: v for k, v in kw.items() if k != "plain"})
            self.studio.project.save()
        self.expand_button.setEnabled(False)
        self.plain_button.setEnabled(False)
        self.job = self.studio.submit("Expand prompts", lambda token: expand_prompts_job(
            names, descriptions=desc, cancel=token, **kw))
        self.job.finished.connect(lambda ev: self.studio.set_prompts(ev.data["prompts"]))
        self.job.failed.connect(lambda msg, _d: show_error(self.error, msg))
        self.job.ended.connect(lambda _o: (self.expand_button.setEnabled(True), self.plain_button.setEnabled(True)))
        return self.job

    def score(self):
        if self.model.ps is None or not self.model.ps.prompts:
            show_error(self.error, "No prompts to score: press Expand first.")
            return None
        from prism_gui.engine.project.app_jobs import score_prompts_job
        from prism_gui.engine.prompts import ScoreSpec

        show_error(self.error, "")
        ps, teacher = self.model.ps, self.studio.teacher
        g = self.studio.project.spec.get("generate", {}) if self.studio.project is not None else {}
        base = ScoreSpec()  # the pilot samples with the project's generator and sampler
        spec = ScoreSpec(generator=g.get("generator", base.generator), steps=int(g.get("steps", base.steps)),
                         cfg=float(g.get("cfg", base.cfg)), scheduler=g.get("scheduler", base.scheduler),
                         keep_fraction=self.keep_fraction.value())
        self.score_button.setEnabled(False)
        self.job = self.studio.submit("Score prompts", lambda token: score_prompts_job(ps, teacher, spec, cancel=token))
        self.job.finished.connect(lambda ev: self.studio.set_prompts(ev.data["prompts"]))
        self.job.failed.connect(lambda msg, _d: show_error(self.error, msg))
        self.job.ended.connect(lambda _o: self.score_button.setEnabled(True))
        return self.job
