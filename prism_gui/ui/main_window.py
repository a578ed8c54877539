"""PRISM Studio's main window."""

from __future__ import annotations

import tempfile

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QLabel, QMainWindow, QMessageBox, QTabWidget

from prism_gui.ui.worker import JobQueue
from prism_gui.ui.world_panel import WorldPanel


class MainWindow(QMainWindow):
    def __init__(self):
        super().__init__()
        self.setWindowTitle("PRISM Studio — Digits world")
        self.resize(1100, 760)
        self.jobs = JobQueue(self)
        self.tabs = QTabWidget()
        self.world = WorldPanel()
        self.tabs.addTab(self.world, "Digits world")
        self.setCentralWidget(self.tabs)
        self.job_label = QLabel("idle")
        self.statusBar().addPermanentWidget(self.job_label)
        self.statusBar().showMessage("Device: cpu")
        self.world.sample_requested.connect(self.sample_prior)
        self.jobs.changed.connect(self._update_status)
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        self.menuBar().addMenu("&File").addAction(quit_action)
        settings = QSettings("PRISM", "PRISM Studio")
        geom = settings.value("window/geometry", type=bytes)
        if geom:
            self.restoreGeometry(geom)

    def sample_prior(self, per_class: int) -> None:
        from prism_gui.engine.world import WorldCheckSpec, run_world_check

        out = tempfile.mkdtemp(prefix="prism-world-")
        spec = WorldCheckSpec(out_dir=out, images_per_class=per_class)
        job = self.jobs.submit("Sample the prior", lambda token: run_world_check(spec, token))
        self.world.set_busy(True)
        job.progress.connect(self.world.show_event)
        job.finished.connect(lambda ev: self._show_samples(out, ev))
        job.failed.connect(self._show_error)
        job.ended.connect(lambda _outcome: self.world.set_busy(False))

    def _show_samples(self, out: str, ev) -> None:
        from PIL import Image

        self.world.show_samples(Image.open(f"{out}/samples.png"), ev.data["results"])

    def _show_error(self, message: str, details: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Critical, "Job failed", message, parent=self)
        box.setDetailedText(details)
        box.open()

    def _update_status(self) -> None:
        job = self.jobs.current
        self.job_label.setText(f"running: {job.name}" if job else "idle")

    def closeEvent(self, event) -> None:
        if self.jobs.busy:
            answer = QMessageBox.question(self, "Jobs running", "A job is still running. Cancel it and quit?")
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
            self.jobs.cancel_all()
            self.jobs.wait_all()
        QSettings("PRISM", "PRISM Studio").setValue("window/geometry", self.saveGeometry())
        event.accept()


__all__ = ["MainWindow", "Qt"]
