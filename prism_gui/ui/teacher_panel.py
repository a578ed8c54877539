"""Teacher panel: choose the classifier to distill (built-in Digits, a timm model, a checkpoint
or a TorchScript file), edit its class names, and see what was loaded.  The timm models already
in the Hugging Face cache are listed (``hf-hub:org/name``, read from the cache only), and a
folder that timm saved can be chosen (``local-dir:PATH``)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThreadPool, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from prism_gui.ui.common import OK_STYLE, WARNING_COLOR, DropTarget, Studio, error_label, show_error

KINDS = {
    "digits": "Built-in Digits teacher",
    "timm": "timm model (weights from this computer)",
    "checkpoint": "Checkpoint file + timm architecture",
    "torchscript": "TorchScript file",
}
CHECKPOINT_EXT = (".safetensors", ".pth", ".pt", ".bin")
TORCHSCRIPT_EXT = (".torchscript", ".ts")
CACHE_PROMPT = "In the Hugging Face cache…"


class _CacheScan(QObject):
    """Carries the cached timm models from the thread pool to the panel."""

    found = Signal(list, str)  # entries, error


class TeacherPanel(DropTarget, QWidget):
    def __init__(self, studio: Studio, parent: QWidget | None = None):
        super().__init__(parent)
        self.studio = studio
        self.job = None
        self.setAcceptDrops(True)

        self._build_source()
        self._build_class_names()
        self._build_the_loaded_teacher()

    def _build_source(self) -> None:
        """Source."""
        self._src = QGroupBox("Where the teacher comes from")
        grid = QGridLayout(self._src)
        self.kind_group = QButtonGroup(self)
        self.kind_buttons: dict[str, QRadioButton] = {}
        for row, (kind, label) in enumerate(KINDS.items()):
            b = QRadioButton(label)
            b.setProperty("kind", kind)
            self.kind_group.addButton(b)
            self.kind_buttons[kind] = b
            grid.addWidget(b, row, 0)
        self.kind_buttons["digits"].setChecked(True)
        self.kind_buttons["digits"].setToolTip("A small CNN trained on scikit-learn's handwritten digits (8x8)")
        self.timm_name = QLineEdit()
        self.timm_name.setPlaceholderText("resnet18.a1_in1k, hf-hub:org/name or local-dir:FOLDER")
        self.timm_name.setToolTip("A timm model name or hf-hub:org/name (its weights must be in the local Hugging Face "
                                  "cache), or local-dir:FOLDER (a folder timm saved: config.json + model.safetensors)")
        self.cached = QComboBox()
        self.cached.setToolTip("The timm models already in the local Hugging Face cache (nothing is downloaded)")
        self.cached.addItem(CACHE_PROMPT, "")
        self.cached.activated.connect(self._on_cached_chosen)
        self._scan: _CacheScan | None = None
        self._scanned = False  # the cache is scanned when the page is first shown
        self._cached_entries: dict = {}
        dir_browse = QPushButton("Folder…")
        dir_browse.setToolTip("A folder saved by timm (timm.models.save_for_hf, or a student PRISM exported): "
                              "config.json + model.safetensors")
        dir_browse.clicked.connect(self._browse_folder)
        timm_row = QHBoxLayout()
        timm_row.addWidget(self.timm_name, 2)
        timm_row.addWidget(self.cached, 2)
        timm_row.addWidget(dir_browse)
        grid.addLayout(timm_row, 1, 1, 1, 2)
        self.arch = QLineEdit()
        self.arch.setPlaceholderText("timm architecture, e.g. resnet18")
        self.arch.setToolTip("The architecture the checkpoint was trained with")
        self.ckpt = QLineEdit()
        self.ckpt.setPlaceholderText("model.safetensors / .pth (or drop a file on this panel)")
        ck_browse = QPushButton("Browse…")
        ck_browse.clicked.connect(lambda: self._browse(self.ckpt, "Checkpoints (*.safetensors *.pth *.pt *.bin)"))
        ck_row = QHBoxLayout()
        ck_row.addWidget(self.arch, 1)
        ck_row.addWidget(self.ckpt, 2)
        ck_row.addWidget(ck_browse)
        grid.addLayout(ck_row, 2, 1, 1, 2)
        self.ts_path = QLineEdit()
        self.ts_path.setPlaceholderText("model.torchscript (or drop a file on this panel)")
        ts_browse = QPushButton("Browse…")
        ts_browse.clicked.connect(lambda: self._browse(self.ts_path, "TorchScript (*.torchscript *.ts *.pt)"))
        ts_row = QHBoxLayout()
        ts_row.addWidget(self.ts_path, 1)
        ts_row.addWidget(ts_browse)
        grid.addLayout(ts_row, 3, 1, 1, 2)
        grid.setColumnStretch(1, 1)

    def _build_class_names(self) -> None:
        """Class names."""
        self._names_box = QGroupBox("Class names (one per line; empty = from the teacher)")
        nl = QVBoxLayout(self._names_box)
        self.names = QPlainTextEdit()
        self.names.setToolTip("Edit the class names the prompts are built from; must match the teacher's outputs")
        self.names.setMinimumHeight(120)
        self.names.setMaximumHeight(220)
        nrow = QHBoxLayout()
        imp = QPushButton("Import…")
        imp.setToolTip("Read class names from a .txt (one per line) or .json file")
        imp.clicked.connect(self.import_names)
        nrow.addWidget(imp)
        nrow.addStretch(1)
        nl.addWidget(self.names)
        nl.addLayout(nrow)

        self.load_button = QPushButton("Load teacher")
        self.load_button.setToolTip("Load the teacher in the background (Ctrl+L)")
        self.load_button.setShortcut("Ctrl+L")
        self.load_button.clicked.connect(self.load)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.hide()
        self.error = error_label()
        self.ok = QLabel()
        self.ok.setStyleSheet(OK_STYLE)
        self._lrow = QHBoxLayout()
        self._lrow.addWidget(self.load_button)
        self._lrow.addWidget(self.progress)
        self._lrow.addWidget(self.ok, 1)

    def _build_the_loaded_teacher(self) -> None:
        """The loaded teacher."""
        info = QGroupBox("Loaded teacher")
        self.info_form = QFormLayout(info)
        self.info: dict[str, QLabel] = {}
        for key, label in (("source", "Source"), ("architecture", "Architecture"), ("parameters", "Parameters"),
                           ("input_size", "Input size (C×H×W)"), ("normalization", "Normalization"),
                           ("num_classes", "Classes"), ("test_accuracy", "Test accuracy"), ("bn", "BatchNorm"),
                           ("training", "Training")):
            lab = QLabel("—")
            lab.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            lab.setWordWrap(True)
            self.info[key] = lab
            self.info_form.addRow(label, lab)
        self.classes = QTableWidget(0, 3)
        self.classes.setHorizontalHeaderLabels(["Class", "Description", "Test accuracy"])
        self.classes.verticalHeader().hide()
        self.classes.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.classes.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.classes.setToolTip("The teacher's classes; per-class accuracy from its card, where known")
        self.info_form.addRow(self.classes)
        hint = QLabel("Tip: drop a .safetensors/.pth checkpoint or a TorchScript file anywhere on this page.")
        hint.setStyleSheet("color: #666;")

        left = QVBoxLayout()
        left.addWidget(self._src)
        left.addWidget(self._names_box)
        left.addLayout(self._lrow)
        left.addWidget(self.error)
        left.addWidget(hint)
        left.addStretch(1)
        lay = QHBoxLayout(self)
        lay.addLayout(left, 3)
        lay.addWidget(info, 2)
        self.studio.project_changed.connect(self._on_project)


    # ---- state
    def kind(self) -> str:
        b = self.kind_group.checkedButton()
        return b.property("kind") if b else "digits"

    def set_kind(self, kind: str) -> None:
        self.kind_buttons[kind].setChecked(True)

    def class_names(self) -> list[str] | None:
        names = [ln.strip() for ln in self.names.toPlainText().splitlines() if ln.strip()]
        return names or None

    def names_for(self, kind: str, source: str, checkpoint: str | None) -> list[str] | None:
        """The names to load a teacher with: the box's if the user edited them, or if they are the
        names of this same teacher (which may be custom); None (the teacher's own) when the box only
        shows another teacher's names, e.g. the Digits names when loading an ImageNet checkpoint."""
        names = self.class_names()
        if names is None or names != getattr(self, "_shown_names", None):
            return names
        t = self.studio.project.spec.get("teacher", {}) if self.studio.project is not None else {}
        same = (t.get("kind"), t.get("source"), t.get("checkpoint")) == (kind, source, checkpoint)
        return names if same else None

    def _show_names(self, names: list[str]) -> None:
        self._shown_names = [n.strip() for n in names if n.strip()]
        self.names.setPlainText("\n".join(names))

    def _on_project(self, project) -> None:
        t = project.spec.get("teacher", {})
        self.set_kind(t.get("kind", "digits"))
        if t.get("kind") == "timm":
            self.timm_name.setText(t.get("source", ""))
        elif t.get("kind") == "checkpoint":
            self.arch.setText(t.get("source", ""))
            self.ckpt.setText(t.get("checkpoint") or "")
        elif t.get("kind") == "torchscript":
            self.ts_path.setText(t.get("source", ""))
        self._show_names(list(t.get("class_names") or []))
        acc = t.get("test_accuracy")
        self.info["test_accuracy"].setText(f"{100 * acc:.2f}%" if acc else "—")

    def _browse(self, edit: QLineEdit, filt: str) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a file", str(Path(edit.text() or ".").parent), filt)
        if path:
            edit.setText(path)

    def import_names(self, path: str | None = None) -> None:
        if not path:
            path, _ = QFileDialog.getOpenFileName(self, "Class names", "", "Class names (*.txt *.json)")
        if not path:
            return
        from prism_gui.engine.teachers.classes import read_class_names

        try:
            names, _ = read_class_names(path)
        except Exception as e:
            show_error(self.error, str(e))
            return
        show_error(self.error, "")
        self.names.setPlainText("\n".join(names))

    # ---- the Hugging Face cache and timm folders
    def scan_cache(self) -> None:
        """List the timm models of the local Hugging Face cache in the thread pool (it reads
        configs and weight headers); the menu fills when it is done."""
        self._scanned = True
        scan = _CacheScan()
        scan.found.connect(self._show_cached, Qt.ConnectionType.QueuedConnection)
        self._scan = scan

        def work():
            try:
                from prism_gui.engine.teachers.cache import cached_teachers

                entries, error = cached_teachers(), ""
            except Exception as e:  # a failed scan leaves the menu empty and says why
                entries, error = [], f"Could not list the cached timm models: {type(e).__name__}: {e}"
            scan.found.emit(entries, error)

        QThreadPool.globalInstance().start(work)

    @property
    def scanning(self) -> bool:
        return self._scan is not None

    def _show_cached(self, entries: list, error: str) -> None:
        self._scan = None
        self.cached.clear()
        self.cached.addItem(CACHE_PROMPT if entries else "No timm models in the Hugging Face cache", "")
        for i, e in enumerate(entries, start=1):
            self.cached.addItem(e.summary() if e.usable else f"{e.label} · ⚠ not usable", e.source)
            self.cached.setItemData(i, f"{e.summary()}\n{e.source}", Qt.ItemDataRole.ToolTipRole)
            if not e.usable:
                self.cached.setItemData(i, QColor(WARNING_COLOR), Qt.ItemDataRole.ForegroundRole)
        self._cached_entries = {e.source: e for e in entries}
        if error:
            show_error(self.error, error)

    def _on_cached_chosen(self, index: int) -> None:
        source = self.cached.itemData(index)
        if not source:
            return
        self.timm_name.setText(source)
        self.set_kind("timm")
        entry = self._cached_entries.get(source)
        show_error(self.error, f"{entry.label} cannot load: {entry.problem}" if entry and entry.problem else "")

    def _browse_folder(self, folder: str | None = None) -> None:
        if not folder:
            folder = QFileDialog.getExistingDirectory(self, "A folder saved by timm (config.json + model.safetensors)")
        if folder:
            self.timm_name.setText(f"local-dir:{folder}")
            self.set_kind("timm")

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._scanned:
            self._scanned = True
            self.scan_cache()

    # ---- drag and drop
    def accept_drop(self, path: str) -> None:
        self.accept_file(path)

    def accept_file(self, path: str) -> bool:
        p = Path(path)
        if p.suffix.lower() in TORCHSCRIPT_EXT:
            self.ts_path.setText(str(p))
            self.set_kind("torchscript")
        elif p.suffix.lower() in CHECKPOINT_EXT:
            self.ckpt.setText(str(p))
            self.set_kind("checkpoint")
            if not self.arch.text():
                show_error(self.error, "Checkpoint dropped: now type its timm architecture (e.g. resnet18).")
                self.arch.setFocus()
                return True
        elif p.suffix.lower() in (".txt", ".json"):
            self.import_names(str(p))
            return True
        else:
            show_error(self.error, f"'{p.name}' is not a checkpoint (.safetensors/.pth/.pt) or TorchScript file.")
            return False
        show_error(self.error, "")
        return True

    # ---- loading (a job)
    def load(self):
        from prism_gui.engine.project.app_jobs import load_teacher_job

        kind = self.kind()
        source = {"digits": "digits", "timm": self.timm_name.text(), "checkpoint": self.arch.text(),
                  "torchscript": self.ts_path.text()}[kind]
        checkpoint = self.ckpt.text() or None if kind == "checkpoint" else None
        names = self.names_for(kind, source, checkpoint)
        show_error(self.error, "")
        self.ok.setText("")
        self.load_button.setEnabled(False)
        self.progress.show()
        self.progress.setRange(0, 0)
        self.job = self.studio.submit("Load teacher", lambda token: load_teacher_job(kind, source, checkpoint, names,
                                                                                       cancel=token))
        self.job.finished.connect(lambda ev: self._loaded(ev, kind, source, checkpoint))
        self.job.failed.connect(lambda msg, _details: show_error(self.error, msg.split(": ", 1)[-1]))
        self.job.ended.connect(self._ended)
        return self.job

    def _ended(self, _outcome: str) -> None:
        self.load_button.setEnabled(True)
        self.progress.hide()

    def _loaded(self, ev, kind: str, source: str, checkpoint: str | None) -> None:
        info = ev.data["info"]
        self.show_info(info)
        if self.studio.project is not None:
            t = self.studio.project.section("teacher")
            t.update({"kind": kind, "source": source, "checkpoint": checkpoint})
        self.studio.set_teacher(ev.data["teacher"], info)
        self._show_names(list(info["class_names"]))
        self.ok.setText(f"Loaded: {info['architecture']} with {info['num_classes']} classes.")

    def show_info(self, info: dict) -> None:
        self.info["source"].setText(str(info["source"]))
        self.info["architecture"].setText(str(info["architecture"]))
        self.info["parameters"].setText(f"{info['parameters']:,}")
        self.info["input_size"].setText(" × ".join(map(str, info["input_size"])))
        self.info["normalization"].setText(f"mean {info['mean']}, std {info['std']}")
        names = info["class_names"]
        shown = ", ".join(names[:12]) + (f", … ({len(names)} in all)" if len(names) > 12 else "")
        self.info["num_classes"].setText(f"{info['num_classes']}: {shown}")
        acc = info.get("test_accuracy")
        self.info["test_accuracy"].setText(f"{100 * acc:.2f}% (real test split)" if acc else "—")
        self.info["bn"].setText("yes (the 'bn' energy is available)" if info["has_batchnorm"] else "no")
        tr = info.get("training") or {}
        self.info["training"].setText(
            f"{tr.get('epochs', '?')} epochs, {tr.get('optimizer', '')}, {tr.get('seconds', '?')} s" if tr else "—")
        per_class = info.get("per_class_accuracy") or {}
        desc = info.get("class_descriptions") or []
        self.classes.setRowCount(len(names))
        for i, n in enumerate(names):
            acc_k = per_class.get(n)
            for c, text in enumerate((n, desc[i] if i < len(desc) else "",
                                      f"{100 * acc_k:.1f}%" if acc_k is not None else "—")):
                self.classes.setItem(i, c, QTableWidgetItem(text))
        self.classes.resizeColumnToContents(0)
        self.classes.resizeColumnToContents(2)
