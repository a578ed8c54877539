"""What the panels share: typed settings, the studio context (project, teacher, jobs) and
small widget helpers.  Heavy engine modules are imported inside methods, never here."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QSettings, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from prism_gui.engine.project.project import Project, studio_config_dir
from prism_gui.ui.worker import Job, JobFactory, JobQueue

ERROR_STYLE = "color: #b00020; font-weight: bold;"
OK_STYLE = "color: #1b5e20;"
WARNING_COLOR = "#9a6700"  # a model listed but not usable (amber: not an error until it is chosen to run)


# ------------------------------------------------------------------------------ settings
class Settings:
    """QSettings in an INI file under platformdirs, always read with an explicit type."""

    def __init__(self, path: Path | None = None):
        path = path or studio_config_dir() / "settings.ini"
        self.problem: str | None = None  # why settings will not be kept (shown in the status bar)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a"):
                pass
        except OSError as e:
            import tempfile

            self.problem = (f"Settings cannot be saved in '{path.parent}' ({e.strerror or e}): this session's "
                            "settings will not be kept. Make that folder writable, or set PRISM_STUDIO_HOME to "
                            "a writable folder.")
            path = Path(tempfile.mkdtemp(prefix="prism-settings-")) / "settings.ini"
        self.q = QSettings(str(path), QSettings.Format.IniFormat)

    def str(self, key: str, default: str = "") -> str:
        return str(self.q.value(key, default, type=str))

    def int(self, key: str, default: int = 0) -> int:
        return int(self.q.value(key, default, type=int))

    def bool(self, key: str, default: bool = False) -> bool:
        return bool(self.q.value(key, default, type=bool))

    def bytes(self, key: str) -> bytes:
        v = self.q.value(key, b"", type=bytes)
        return bytes(v) if v else b""

    def list(self, key: str) -> list[str]:
        v = self.q.value(key, [], type=list)
        return [str(x) for x in (v or [])]

    def set(self, key: str, value) -> None:
        self.q.setValue(key, value)

    def sync(self) -> None:
        self.q.sync()
        if self.q.status() != QSettings.Status.NoError and self.problem is None:
            self.problem = (f"Settings could not be saved to '{self.q.fileName()}' ({self.q.status().name}). "
                            "Free disk space or make the folder writable.")

    # recent projects
    def recent_projects(self) -> list[str]:
        return [p for p in self.list("projects/recent") if (Path(p) / "project.json").exists()]

    def add_recent(self, path: str | Path, limit: int = 8) -> None:
        p = str(Path(path))
        recent = [p] + [r for r in self.list("projects/recent") if r != p]
        self.set("projects/recent", recent[:limit])


# ------------------------------------------------------------------------------ drag and drop
class DropTarget:
    """A panel that takes a file or folder dropped on it: mix in before ``QWidget``, call
    ``setAcceptDrops(True)`` and define ``accept_drop(path)`` (what the panel's own button does)."""

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        urls = event.mimeData().urls()
        if urls and urls[0].isLocalFile():
            self.accept_drop(urls[0].toLocalFile())
            event.acceptProposedAction()


# ------------------------------------------------------------------------------ context
class Studio(QObject):
    """The app's state the panels share; the panels talk to each other through its signals."""

    project_changed = Signal(object)
    teacher_changed = Signal(object)  # an engine Teacher
    prompts_changed = Signal(object)  # a PromptSet
    catalog_changed = Signal()  # images added or curated
    evaluation_changed = Signal()  # the project's real held-out set changed
    engine_ready = Signal()  # heavy engine modules imported (registries can be read)
    job_failed = Signal(str, str, str)  # job name, message, details
    status = Signal(str)
    warning = Signal(str, str)  # title, message: something the user must know, the app carries on

    def __init__(self, jobs: JobQueue | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.jobs = jobs or JobQueue(self)
        self.project: Project | None = None
        self.teacher = None
        self.prompts = None
        self.device = ""
        self._engine_ready = False
        self._catalog = None

    # ---- project
    @property
    def catalog(self):
        """One read connection to the project's catalog for the GUI thread (the jobs open their own)."""
        if self._catalog is None and self.project is not None:
            self._catalog = self.project.catalog()
        return self._catalog

    def close_catalog(self) -> None:
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None

    def set_project(self, project: Project) -> None:
        self.close_catalog()
        self.project = project
        self.teacher = None
        try:
            self.prompts = project.load_prompts()
        except (ValueError, OSError) as e:  # a damaged prompt file must not keep the project closed
            self.prompts = None
            self.warning.emit("Prompts not loaded", project.keep_damaged_prompts(e))
        self.project_changed.emit(project)
        if self.prompts is not None:
            self.prompts_changed.emit(self.prompts)

    def class_names(self) -> list[str]:
        if self.teacher is not None:
            return list(self.teacher.class_names)
        return self.project.class_names() if self.project else []

    def set_teacher(self, teacher, info: dict) -> None:
        self.teacher = teacher
        if self.project is not None:
            t = self.project.section("teacher")
            t["class_names"] = list(info["class_names"])
            t["class_ids"] = info.get("class_ids")
            t["parameters"] = info["parameters"]
            if info.get("test_accuracy") is not None:
                t["test_accuracy"] = info["test_accuracy"]
            e = self.project.section("evaluation")
            if e.get("set") == "digits-test" and getattr(teacher, "source", "digits") != "digits":
                e["set"], e["mapping"] = "", None  # the Digits split means nothing to another teacher
                self.evaluation_changed.emit()
            self.project.save()
        self.teacher_changed.emit(teacher)

    def set_prompts(self, prompts, save: bool = True) -> None:
        self.prompts = prompts
        if save and self.project is not None and prompts is not None:
            self.project.save_prompts(prompts)
        self.prompts_changed.emit(prompts)

    # ---- jobs
    def submit(self, name: str, factory: JobFactory) -> Job:
        job = self.jobs.submit(name, factory)
        job.failed.connect(lambda msg, details, n=name: self.job_failed.emit(n, msg, details))
        return job

    # ---- engine warm-up: import torch and the engine off the GUI thread after the window shows
    @property
    def ready(self) -> bool:
        return self._engine_ready

    def warm_up(self, wait: bool = False) -> None:
        if self._engine_ready:
            return

        def work():
            # Everything a first job imports, under the lock jobs take too (engine/preload.py).
            # Importing an extension module holds the GIL for up to a few hundred ms, which would
            # freeze the window if it happened inside the first generation or training job.
            from prism_gui.engine.preload import import_engine

            import_engine()
            from prism_gui.engine.devices import describe, pick_device

            self.device = describe(pick_device("auto"))

        if wait:
            work()
            self._mark_ready()
            return
        self._warm_thread = threading.Thread(target=lambda: (work(), self._ready_signal()), daemon=True)
        self._warm_thread.start()

    def _ready_signal(self) -> None:
        # emitted from the worker thread: delivered queued to the GUI thread
        self._internal_ready.emit()

    _internal_ready = Signal()

    def _mark_ready(self) -> None:
        if not self._engine_ready:
            self._engine_ready = True
            self.engine_ready.emit()

    def connect_ready(self) -> None:
        self._internal_ready.connect(self._mark_ready, Qt.ConnectionType.QueuedConnection)


def make_studio(jobs: JobQueue | None = None, parent: QObject | None = None) -> Studio:
    s = Studio(jobs, parent)
    s.connect_ready()
    return s


# ------------------------------------------------------------------------------ widgets
def error_label() -> QLabel:
    lab = QLabel()
    lab.setWordWrap(True)
    lab.setStyleSheet(ERROR_STYLE)
    lab.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    lab.hide()
    return lab


def show_error(label: QLabel, message: str) -> None:
    label.setText(message)
    label.setVisible(bool(message))


def run_name_or_error(field, default: str, error: QLabel) -> str | None:
    """The run name typed in ``field`` (``default`` when empty), or None with the reason shown in
    ``error`` when a project cannot take it (the engine's rule: :func:`check_run_name`)."""
    from prism_gui.engine.data.guard import check_run_name

    run = field.text().strip() or default
    try:
        return check_run_name(run)
    except ValueError as e:
        show_error(error, f"Cannot start: {e}.")
        return None


def button(text: str, tip: str, slot, *, shortcut: str | None = None, enabled: bool = True,
           checkable: bool = False) -> QPushButton:
    """A push button with its tooltip, slot, optional shortcut and initial state."""
    b = QPushButton(text)
    b.setToolTip(tip)
    if shortcut:
        b.setShortcut(shortcut)
    b.setCheckable(checkable)
    b.setEnabled(enabled)
    b.clicked.connect(slot)
    return b


class EvalSetField(QWidget):
    """The project's real held-out set: none, a built-in split, or a labelled image folder (with
    an optional folder -> class mapping file).  Edits go to ``project.spec["evaluation"]``."""

    CHOICES = (("", "none"), ("digits-test", "Digits test split (719 real digits)"), ("folder", "image folder…"))

    def __init__(self, studio, parent: QWidget | None = None):
        super().__init__(parent)
        self.studio = studio
        self.kind = QComboBox()
        for key, label in self.CHOICES:
            self.kind.addItem(label, key)
        self.kind.setToolTip("Real images to measure students on and to compare the synthetic set with. "
                             "ImageNet's val folder works as it is (WordNet-id subfolders).")
        self.path = QLineEdit()
        self.path.setPlaceholderText("folder with one subfolder per class")
        self.browse = QPushButton("…")
        self.browse.setMaximumWidth(28)
        self.browse.setToolTip("Choose the folder")
        self.mapping = QLineEdit()
        self.mapping.setPlaceholderText("optional mapping file (folder -> class), JSON or CSV")
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.path, 1)
        row.addWidget(self.browse)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.kind)
        lay.addLayout(row)
        lay.addWidget(self.mapping)
        self.kind.currentIndexChanged.connect(self._changed)
        self.path.editingFinished.connect(self._changed)
        self.mapping.editingFinished.connect(self._changed)
        self.browse.clicked.connect(self._browse)
        studio.project_changed.connect(lambda _p: self.load())
        studio.evaluation_changed.connect(self.load)
        self.load()

    def value(self) -> tuple[str, str | None]:
        key = self.kind.currentData()
        if key == "folder":
            return self.path.text().strip(), (self.mapping.text().strip() or None)
        return key, None

    def set_value(self, name: str, mapping: str | None = None) -> None:
        key = name if name in ("", "digits-test") else "folder"
        self.kind.blockSignals(True)
        self.kind.setCurrentIndex(max(0, self.kind.findData(key)))
        self.kind.blockSignals(False)
        if key == "folder":
            self.path.setText(name)
            self.mapping.setText(mapping or "")
        self._show()

    def load(self) -> None:
        if self.studio.project is not None:
            self.set_value(*self.studio.project.evaluation())

    def _show(self) -> None:
        folder = self.kind.currentData() == "folder"
        for w in (self.path, self.browse, self.mapping):
            w.setVisible(folder)

    def _browse(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Evaluation images (one subfolder per class)")
        if d:
            self.path.setText(d)
            self._changed()

    def _changed(self) -> None:
        self._show()
        project = self.studio.project
        if project is None:
            return
        name, mapping = self.value()
        e = project.section("evaluation")
        if (e.get("set") or "", e.get("mapping")) != (name, mapping):
            e["set"], e["mapping"] = name, mapping
            project.save()
            self.studio.evaluation_changed.emit()


def two_panes(owner: QWidget, left: QWidget, right: QWidget, stretch=(3, 2), sizes=(700, 520)):
    """``owner``'s layout: ``left`` and ``right`` side by side in a splitter (a panel's main area
    and its side column)."""
    from PySide6.QtWidgets import QSplitter

    split = QSplitter()
    split.addWidget(left)
    split.addWidget(right)
    for i, k in enumerate(stretch):
        split.setStretchFactor(i, k)
    split.setSizes(list(sizes))
    QVBoxLayout(owner).addWidget(split)
    return split


def spin(lo: int, hi: int, value: int, tip: str = "", step: int = 1) -> QSpinBox:
    s = QSpinBox()
    s.setRange(lo, hi)
    s.setValue(value)
    s.setSingleStep(step)
    s.setToolTip(tip)
    return s


def dspin(lo: float, hi: float, value: float, tip: str = "", step: float = 0.1, decimals: int = 3) -> QDoubleSpinBox:
    s = QDoubleSpinBox()
    s.setDecimals(decimals)
    s.setRange(lo, hi)
    s.setSingleStep(step)
    s.setValue(value)
    s.setToolTip(tip)
    return s


def load_tile(path: str | Path, size: int, invert: bool = True) -> QImage:
    """A thumbnail file -> a QImage tile (safe off the GUI thread)."""
    img = QImage(str(path))
    if img.isNull():
        return img
    if img.format() in (QImage.Format.Format_Grayscale8, QImage.Format.Format_Indexed8) or img.isGrayscale():
        img = img.convertToFormat(QImage.Format.Format_Grayscale8)
        if invert:
            img.invertPixels()
    fast = img.width() < size
    return img.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                      Qt.TransformationMode.FastTransformation if fast else Qt.TransformationMode.SmoothTransformation)


def pixmap(img: QImage) -> QPixmap:
    return QPixmap.fromImage(img)


def energy_color(energy: float | None, lo: float = 0.0, hi: float = 2.5) -> QColor:
    if energy is None:
        return QColor("#888888")
    t = float(np.clip((energy - lo) / max(hi - lo, 1e-9), 0, 1))
    return QColor.fromHsvF(0.33 * (1 - t), 0.75, 0.75)


def job_error_dialog(parent: QWidget, name: str, message: str, details: str) -> QMessageBox:
    box = QMessageBox(QMessageBox.Icon.Critical, f"{name} failed", message, parent=parent)
    box.setInformativeText("The app is still usable: fix the cause and start the job again.")
    box.setDetailedText(details)
    box.setObjectName("job_error_dialog")
    box.open()
    return box


def pg():
    """pyqtgraph, configured once (white background, antialiased)."""
    import pyqtgraph

    pyqtgraph.setConfigOptions(background="w", foreground="#333", antialias=True)
    return pyqtgraph


def fit_to_screen(root: QWidget, min_chars: int = 14) -> None:
    """Keep ``root``'s window from growing with what it shows (issue 28: a laptop's 1366x768):
    every combo box sizes to ``min_chars`` characters instead of its longest entry (its menu
    still shows whole entries)."""
    from PySide6.QtWidgets import QComboBox

    for combo in root.findChildren(QComboBox):
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(min_chars)
        combo.view().setTextElideMode(Qt.TextElideMode.ElideNone)
        # Qt keeps the minimum size hint it computed from the entries; an explicit minimum width
        # is what layouts use instead
        combo.setMinimumWidth(min(combo.sizeHint().width(), combo.minimumSizeHint().width()))


def wrapping(label: QLabel) -> QLabel:
    """``label`` as a status text that wraps instead of widening its window."""
    label.setWordWrap(True)
    label.setMinimumWidth(0)
    return label


def form_with_actions(form: QWidget, actions: list, min_width: int, max_width: int) -> QWidget:
    """A panel's settings column: ``form`` scrolls, ``actions`` (a row of buttons first, then
    status widgets) stay in a bar under it, so the panel's primary action is always on screen."""
    from PySide6.QtWidgets import QHBoxLayout, QScrollArea

    scroll = QScrollArea()
    scroll.setWidget(form)
    scroll.setWidgetResizable(True)
    column = QWidget()
    column.setMinimumWidth(min_width)  # the form and its vertical scroll bar, without a horizontal one
    column.setMaximumWidth(max_width)
    lay = QVBoxLayout(column)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.addWidget(scroll, 1)
    buttons, *status = actions
    row = QHBoxLayout()
    for b in buttons:
        row.addWidget(b)
    lay.addLayout(row)
    for w in status:
        lay.addWidget(w)
    return column
