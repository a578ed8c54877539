"""PRISM Studio's main window: the workflow Teacher → Prompts → Generate → Curate → Distill →
Report as tabs (after the Digits-world overview), menus, toolbar, jobs dock and status bar."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QLabel,
    QListWidget,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QTabWidget,
    QToolBar,
)

from prism_gui.engine.project.project import SPEC_FILE, Project, default_project_path
from prism_gui.ui.common import Settings, fit_to_screen, job_error_dialog, make_studio
from prism_gui.ui.curate_panel import CuratePanel
from prism_gui.ui.distill_panel import DistillPanel
from prism_gui.ui.generate_panel import GeneratePanel
from prism_gui.ui.map_panel import MapPanel
from prism_gui.ui.prompts_panel import PromptsPanel
from prism_gui.ui.report_panel import ReportPanel
from prism_gui.ui.teacher_panel import TeacherPanel
from prism_gui.ui.worker import JobQueue
from prism_gui.ui.world_panel import WorldPanel

PANELS = ("teacher", "prompts", "generate", "curate", "distill", "report")
TITLES = {"world": "Digits world", "teacher": "1 Teacher", "prompts": "2 Prompts", "generate": "3 Generate",
          "curate": "4 Curate", "map": "Map", "distill": "5 Distill", "report": "6 Report"}
TIPS = {"world": "What the built-in Digits world is made of", "teacher": "Choose the classifier to distill (Ctrl+1)",
        "prompts": "Per-class prompts and diversification (Ctrl+2)",
        "generate": "Generate images guided by the teacher's energy (Ctrl+3)",
        "curate": "Browse, filter and curate the generated images (Ctrl+4)",
        "map": "The images against what the teacher knows: the map, near-duplicates and holes (Ctrl+Shift+M)",
        "distill": "Train the student on the curated images (Ctrl+5)",
        "report": "One page for stakeholders, exportable as HTML (Ctrl+6)"}
ABOUT = ("<h3>PRISM Studio</h3><p>Data-free knowledge distillation: a teacher's knowledge moves into a small "
         "student through images a diffusion model generates, guided by the teacher's energy and diversified "
         "prompts — no real training data.</p><p>The app only drives the engine (<code>prism_gui.engine</code>); "
         "everything it does, the <code>prism</code> command line does too.</p>")


GETTING_STARTED = (
    "<b>Five clicks to a student</b> (Digits world): <b>1 Teacher</b>: Load teacher; <b>2 Prompts</b>: Expand; "
    "<b>3 Generate</b>: Start; <b>4 Curate</b>: reject what looks wrong (optional); <b>5 Distill</b>: Start "
    "training; then <b>6 Report</b>: Build report. <b>Play demo</b> (F5) does it all.<br><br>"
    "<b>Energy</b>: how far an image is from what the teacher knows (the cross-entropy of the teacher's output to "
    "the intended class: 0 when it is certain). <b>Lower is better.</b><br>"
    "<b>EDA</b>: each denoising step is nudged toward lower energy (the guidance scale sets how hard).<br>"
    "<b>DPE</b>: each class name becomes many prompts varying content and style.<br>"
    "<b>Precision / recall / coverage</b> (0 to 1, higher is better) and <b>density</b> (about 1 for real-like "
    "data) compare the images with real ones in the teacher's features.<br><br>"
    "More: README.md (Your first session) and docs/ beside the app.")


class MainWindow(QMainWindow):
    def __init__(self, project: str | Path | None = None, settings: Settings | None = None, warm_up: bool = True):
        super().__init__()
        self.setWindowTitle("PRISM Studio")
        self.resize(1360, 860)
        self.settings = settings or Settings()
        self.jobs = JobQueue(self)
        self.studio = make_studio(self.jobs, self)
        self.autopilot = None

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.world = WorldPanel()
        self.teacher = TeacherPanel(self.studio)
        self.prompts = PromptsPanel(self.studio)
        self.generate = GeneratePanel(self.studio, settings=self.settings)
        self.curate = CuratePanel(self.studio)
        self.map = MapPanel(self.studio)
        self.distill = DistillPanel(self.studio)
        self.report = ReportPanel(self.studio)
        self.panels = {"world": self.world}
        for name in PANELS:  # the map sits beside the gallery it filters
            self.panels[name] = getattr(self, name)
            if name == "curate":
                self.panels["map"] = self.map
        for name, w in self.panels.items():
            i = self.tabs.addTab(w, TITLES[name])
            self.tabs.setTabToolTip(i, TIPS[name])
        self.setCentralWidget(self.tabs)
        self.world.sample_requested.connect(self.sample_prior)
        self.curate.regenerate.connect(self._regenerate)
        self.map.show_ids.connect(self._show_in_gallery)
        self.generate.images_added.connect(lambda _ids: self._maybe_refresh_gallery())
        self.studio.job_failed.connect(self._show_error)
        self.studio.warning.connect(self._warn)
        self.studio.engine_ready.connect(self._engine_ready)

        self._build_status_bar()
        self._build_jobs_dock()
        self._build_actions()
        fit_to_screen(self)
        self._restore()
        QTimer.singleShot(0, lambda: self.open_project(project or self._initial_project()))
        if self.settings.problem:  # the app works; what it cannot do is keep its settings
            print(f"PRISM Studio: {self.settings.problem}", file=sys.stderr)
            QTimer.singleShot(0, lambda: self.statusBar().showMessage(self.settings.problem))
        if warm_up:
            QTimer.singleShot(50, self.studio.warm_up)

    # ------------------------------------------------------------------ construction
    def _build_status_bar(self) -> None:
        self.device_label = QLabel("device: …")
        self.device_label.setToolTip("Where jobs run (CUDA, Apple MPS or CPU, chosen automatically)")
        self.project_label = QLabel("")
        self.job_label = QLabel("idle")
        self.job_progress = QProgressBar()
        self.job_progress.setMaximumWidth(220)
        self.job_progress.setTextVisible(True)
        self.job_progress.hide()
        sb = self.statusBar()
        sb.addWidget(self.project_label)
        sb.addPermanentWidget(self.job_label)
        sb.addPermanentWidget(self.job_progress)
        sb.addPermanentWidget(self.device_label)
        self.jobs.changed.connect(self._update_status)
        self.jobs.job_started.connect(self._watch_job)

    def _build_jobs_dock(self) -> None:
        self.jobs_list = QListWidget()
        self.jobs_list.setToolTip("Every job of this session: queued, running, paused, finished, cancelled, failed")
        self.jobs_dock = QDockWidget("Jobs", self)
        self.jobs_dock.setObjectName("jobs_dock")
        self.jobs_dock.setWidget(self.jobs_list)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.jobs_dock)
        self.jobs_dock.hide()

    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            a.setShortcut(QKeySequence(shortcut))
        if tip:
            a.setToolTip(tip)
            a.setStatusTip(tip)
        a.triggered.connect(slot)
        return a

    def _build_actions(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        f.addAction(self._action("&New project…", self.new_project, QKeySequence.StandardKey.New,
                                 "Make a new project folder (Digits teacher and prior)"))
        f.addAction(self._action("&Open project…", self.open_project_dialog, QKeySequence.StandardKey.Open,
                                 "Open a project folder"))
        self.recent_menu = f.addMenu("Open &recent")
        f.addAction(self._action("&Save project", self.save_project, QKeySequence.StandardKey.Save,
                                 "Save the project's settings and prompts"))
        f.addSeparator()
        f.addAction(self._action("&Import images…", self.import_images, "Ctrl+I",
                                 "Bring a folder of images made elsewhere into the project as a run, scored by the "
                                 "teacher (prism import)"))
        f.addAction(self._action("Export &dataset…", self.export_dataset_job, "Ctrl+Shift+E",
                                 "The curated images as a Hugging Face imagefolder dataset with a dataset card "
                                 "(prism export)"))
        f.addAction(self._action("Export run &metrics (CSV)…", self.export_metrics, None,
                                 "A run's curves as CSV (prism export-metrics); TensorBoard reads them from the "
                                 "project folder"))
        f.addSeparator()
        f.addAction(self._action("&Quit", self.close, QKeySequence.StandardKey.Quit))

        j = mb.addMenu("&Jobs")
        self.pause_action = self._action("&Pause / resume", self.toggle_pause, "Ctrl+P",
                                         "Pause the running job between two steps, or resume it")
        self.cancel_action = self._action("&Cancel current", self.cancel_current, "Ctrl+.",
                                          "Cancel the running job (confirmed when it has stopped)")
        cancel_all = self._action("Cancel &all", self.jobs.cancel_all, None, "Cancel the running and queued jobs")
        for a in (self.pause_action, self.cancel_action, cancel_all):
            j.addAction(a)
        j.addSeparator()
        self.demo_action = self._action("▶ Play demo", lambda: self.play_demo(quick=True), "F5",
                                        "Run the whole Digits pipeline, each panel following along (F5)")
        j.addAction(self.demo_action)

        v = mb.addMenu("&View")
        for i, name in enumerate(PANELS):
            v.addAction(self._action(TITLES[name][2:], lambda _c=False, n=name: self.show_panel(n), f"Ctrl+{i + 1}",
                                     TIPS[name]))
        v.addAction(self._action("Map", lambda: self.show_panel("map"), "Ctrl+Shift+M", TIPS["map"]))
        v.addAction(self._action("Digits world", lambda: self.show_panel("world"), "Ctrl+0", TIPS["world"]))
        v.addSeparator()
        v.addAction(self.jobs_dock.toggleViewAction())
        self.toolbar = QToolBar("Main")
        self.toolbar.setObjectName("main_toolbar")
        self.toolbar.setIconSize(QSize(16, 16))
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.addToolBar(self.toolbar)
        v.addAction(self.toolbar.toggleViewAction())
        for a in (self.demo_action, self.pause_action, self.cancel_action):
            self.toolbar.addAction(a)

        h = mb.addMenu("&Help")
        h.addAction(self._action("&Getting started", self.getting_started))
        h.addAction(self._action("&About PRISM Studio", lambda: QMessageBox.about(self, "About PRISM Studio", ABOUT)))
        h.addAction(self._action("&Keyboard shortcuts", self._shortcuts_help, "F1"))

    def getting_started(self) -> QMessageBox:
        """Help > Getting started: the five clicks and what the numbers mean (as the README's first session)."""
        box = QMessageBox(QMessageBox.Icon.Information, "Getting started", GETTING_STARTED, parent=self)
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setObjectName("getting_started")
        box.open()
        return box

    def _shortcuts_help(self) -> None:
        QMessageBox.information(self, "Keyboard shortcuts", (
            "Ctrl+1…6  panels · Ctrl+Shift+M  map · Ctrl+0  Digits world\n"
            "F5  play demo · Ctrl+P  pause/resume · Ctrl+.  cancel\n"
            "Curate: arrows move · K keep · R reject · U unreviewed · Ctrl+Z undo\n"
            "Ctrl+L load teacher · Ctrl+E expand prompts · Ctrl+G generate · Ctrl+T train\n"
            "Ctrl+I import images · Ctrl+Shift+E export dataset"))

    # ------------------------------------------------------------------ settings
    def _restore(self) -> None:
        geom = self.settings.bytes("window/geometry")
        if geom:
            self.restoreGeometry(geom)
        state = self.settings.bytes("window/state")
        if state:
            self.restoreState(state)
        self.tabs.setCurrentIndex(self.settings.int("window/tab", 0))
        self._fill_recent()

    def _initial_project(self) -> Path:
        last = self.settings.str("projects/last")
        if last and (Path(last) / "project.json").exists():
            return Path(last)
        return default_project_path()  # first launch: a Digits project, ready to run

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for p in self.settings.recent_projects():
            self.recent_menu.addAction(self._action(p, lambda _c=False, p=p: self.open_project(p)))
        self.recent_menu.setEnabled(bool(self.recent_menu.actions()))

    def _warn(self, title: str, message: str) -> None:
        self.statusBar().showMessage(message, 20000)
        QMessageBox.warning(self, title, message)

    # ------------------------------------------------------------------ projects
    def _may_make_project_in(self, root: Path) -> bool:
        """True when a project may be made in ``root``, which holds no project.json: a new or empty
        folder, or one the user confirms (a folder of other files, or a catalog the command line
        made); nothing is written into a folder the user did not confirm."""
        try:
            entries = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
        except OSError:
            return True  # the error is shown by the open itself
        if not entries:
            return True
        if "catalog.sqlite" in entries:
            text = (f"'{root}' holds images made by the command line but no project.json. Open it as a project "
                    "of the app? PRISM Studio adds its project.json (teacher and settings) beside them.")
        else:
            shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
            text = (f"'{root}' is not a PRISM project: it holds {len(entries)} other item(s) ({shown}). Make a new "
                    "project in this folder? PRISM Studio would add project.json, catalog.sqlite and its folders "
                    "beside them.")
        return QMessageBox.question(self, "Not a PRISM project", text,
                                    QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                    QMessageBox.StandardButton.No) == QMessageBox.StandardButton.Yes

    def open_project(self, path: str | Path) -> Project | None:
        from prism_gui.engine.data.catalog import CatalogDamaged

        root = Path(path).expanduser()
        if not (root / SPEC_FILE).exists() and not self._may_make_project_in(root):
            self.statusBar().showMessage(f"Not opened: '{root}' is not a PRISM project; nothing was written", 10000)
            return None
        try:
            if not (root / SPEC_FILE).exists() and (root / "catalog.sqlite").is_file():
                Project.open_for_reading(root).save()  # a command-line project: its teacher from its runs
            project = Project.open_or_create(root)
        except CatalogDamaged as e:
            if not self.rebuild_catalog(path, str(e)):
                return None
            return self.open_project(path)
        except Exception as e:
            QMessageBox.warning(self, "Cannot open project", str(e))
            return None
        self.studio.set_project(project)
        self.settings.set("projects/last", str(project.root))
        self.settings.add_recent(project.root)
        self._fill_recent()
        self.project_label.setText(f"Project: {project.name} ({project.root})")
        self.setWindowTitle(f"PRISM Studio — {project.name}")
        return project

    def rebuild_catalog(self, path, problem: str, ask: bool = True) -> bool:
        """Offer to rebuild a damaged catalog from the project's images; True when rebuilt."""
        from PySide6.QtWidgets import QApplication

        from prism_gui.engine.data.recover import rebuild_catalog

        if ask and QMessageBox.question(self, "Damaged catalog", problem + "\n\nRebuild the catalog now?") \
                != QMessageBox.StandardButton.Yes:
            return False
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            report = rebuild_catalog(path)
        except Exception as e:
            QMessageBox.warning(self, "Cannot rebuild the catalog", str(e))
            return False
        finally:
            QApplication.restoreOverrideCursor()
        self.statusBar().showMessage(f"Catalog rebuilt: {report['images']} images, {report['runs']} runs, "
                                     f"{report['curation_changes']} curation changes replayed", 10000)
        return True

    def new_project(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder for the new project (empty)")
        if path:
            self.open_project(path)

    def open_project_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a project folder")
        if path:
            self.open_project(path)

    def import_images(self, folder: str | None = None):
        from prism_gui.ui.exchange import ImportDialog

        if self.studio.project is None:
            return None
        self.import_dialog = ImportDialog(self.studio, self)
        if folder is not None:  # tests and the autopilot fill it in
            self.import_dialog.folder.setText(folder)
            return self.import_dialog
        self.import_dialog.open()
        return self.import_dialog

    def export_dataset_job(self, dest: str | None = None):
        from prism_gui.ui.exchange import export_dataset_dialog

        return export_dataset_dialog(self.studio, self, dest)

    def export_metrics(self, run: str | None = None, dest: str | None = None):
        from prism_gui.ui.exchange import export_metrics_dialog

        return export_metrics_dialog(self.studio, self, run, dest)

    def save_project(self) -> None:
        p = self.studio.project
        if p is not None:
            p.section("generate").update(self.generate.settings())
            p.section("distill").update(self.distill.settings())
            p.save()
            if self.studio.prompts is not None:
                p.save_prompts(self.studio.prompts)
            self.statusBar().showMessage("Project saved", 3000)

    # ------------------------------------------------------------------ panels
    def show_panel(self, name: str) -> None:
        self.tabs.setCurrentWidget(self.panels[name])

    def _show_in_gallery(self, ids: list) -> None:
        self.curate.show_ids(ids)
        self.show_panel("curate")

    def _regenerate(self, row: dict) -> None:
        self.generate.fill_from_image(row)
        self.show_panel("generate")

    def _maybe_refresh_gallery(self) -> None:
        if self.tabs.currentWidget() is self.curate:
            self.curate.refresh()

    def _engine_ready(self) -> None:
        self.device_label.setText(f"device: {self.studio.device}")

    # ------------------------------------------------------------------ jobs
    def _watch_job(self, job) -> None:
        self.job_progress.show()
        self.job_progress.setRange(0, 0)
        job.progress.connect(self._job_progress)
        job.paused_changed.connect(lambda _p: self._update_status())

    def _job_progress(self, ev) -> None:
        if ev.total:
            self.job_progress.setRange(0, ev.total)
            self.job_progress.setValue(ev.step)

    def _update_status(self) -> None:
        job = self.jobs.current
        n = len(self.jobs.pending)
        if job is None:
            self.job_label.setText("idle")
            self.job_progress.hide()
        else:
            self.job_label.setText(f"{job.state}: {job.name}" + (f" (+{n} queued)" if n else ""))
        self.jobs_list.clear()
        for j in reversed(self.jobs.jobs[-50:]):
            self.jobs_list.addItem(f"{j.state:>10}  {j.name}")

    def toggle_pause(self) -> None:
        job = self.jobs.current
        if job is None:
            return
        if job.state == "paused":
            job.resume()
        else:
            job.pause()

    def cancel_current(self) -> None:
        job = self.jobs.current
        if job is not None:
            job.cancel()

    def _show_error(self, name: str, message: str, details: str) -> None:
        if self.autopilot is not None:
            self.autopilot.fail(f"{name}: {message}")
        job_error_dialog(self, name, message, details)

    def sample_prior(self, per_class: int):
        from prism_gui.engine.digits.world_check import WorldCheckSpec, run_world_check

        out = tempfile.mkdtemp(prefix="prism-world-")
        spec = WorldCheckSpec(out_dir=out, images_per_class=per_class)
        job = self.studio.submit("Sample the prior", lambda token: run_world_check(spec, token))
        self.world.set_busy(True)
        job.progress.connect(self.world.show_event)
        job.finished.connect(lambda ev: self._show_samples(out, ev))
        job.ended.connect(lambda _outcome: self.world.set_busy(False))
        return job

    def _show_samples(self, out: str, ev) -> None:
        from PIL import Image

        self.world.show_samples(Image.open(f"{out}/samples.png"), ev.data["results"])

    # ------------------------------------------------------------------ demo
    def play_demo(self, quick: bool = True, screenshots: str | None = None, quit_when_done: bool = False,
                  overrides: dict | None = None):
        from prism_gui.ui.autopilot import Autopilot

        if self.autopilot is not None and self.autopilot.running:
            return self.autopilot
        self.autopilot = Autopilot(self, quick=quick, screenshots=screenshots, quit_when_done=quit_when_done,
                                   overrides=overrides)
        self.autopilot.start()
        return self.autopilot

    # ------------------------------------------------------------------ closing
    def closeEvent(self, event) -> None:
        if self.jobs.busy:
            answer = QMessageBox.question(self, "Jobs running", "A job is still running. Cancel it and quit?")
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
            self.jobs.cancel_all()
            self.jobs.wait_all()
            QApplication.processEvents()  # deliver the workers' last signals (cancelled)
        self.settings.set("window/geometry", self.saveGeometry())
        self.settings.set("window/state", self.saveState())
        self.settings.set("window/tab", self.tabs.currentIndex())
        self.settings.sync()
        self.curate.close_catalog()
        self.studio.close_catalog()
        event.accept()


__all__ = ["MainWindow", "Qt"]
