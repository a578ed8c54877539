"""Distill panel: the student and DistillSpec settings, speed settings (mixed precision,
channels_last, torch.compile), a training job, live curves (loss raw and smoothed, test
accuracy, teacher agreement) redrawn at 5 Hz, runs overlaid, export."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QVBoxLayout,
    QWidget,
)

from prism_gui.engine.events import DistillDone, DistillEvaluation, DistillStart, DistillStep
from prism_gui.engine.project.app_jobs import distill_job, export_job  # light: its engine imports are inside functions
from prism_gui.ui.common import (
    DropTarget,
    EvalSetField,
    Studio,
    button,
    dspin,
    error_label,
    form_with_actions,
    pg,
    run_name_or_error,
    show_error,
    spin,
)
from prism_gui.ui.distill_curves import PALETTE, PLOTTED_RUNS, DistillCurves, RunCurves

STUDENT_NAMES = ["digits_student"]  # the rest come from engine.distill.STUDENTS once the engine is imported
PRECISIONS = ["auto", "fp32", "bf16", "fp16"]
CHANNELS_LAST = {"auto": "auto", "on": True, "off": False}  # shown -> DistillSpec.channels_last


PROCESSES_TIP = ("Processes on this machine, one per GPU (torchrun starts them); the batch size stays the whole "
                 "batch, shared between them")
PROCESSES_MAX = 64  # the spin box's limit until the engine is ready to count this machine's GPUs


class DistillPanel(DistillCurves, DropTarget, QWidget):
    finished = Signal(dict)

    def __init__(self, studio: Studio, parent: QWidget | None = None):
        super().__init__(parent)
        self.studio = studio
        self.job = None
        self.export_job = None
        self.student = None
        self.student_run_dir: str | None = None  # the run the student came from (its model card)
        self.runs: dict[str, RunCurves] = {}
        self._dirty = False

        self._build_the_student_and_its_training()
        self._build_the_actions()
        self._build_the_curves_and_the_two_panes()

    def _build_the_student_and_its_training(self) -> None:
        """The student and its training."""
        self._box = QGroupBox("Student and training")
        f = QFormLayout(self._box)
        self.student_name = QComboBox()
        self.student_name.setEditable(True)
        self.student_name.addItems(STUDENT_NAMES)
        self.student_name.setToolTip("A registered student or any timm architecture (random init)")
        f.addRow("Student", self.student_name)
        self.epochs = spin(1, 1000, 15, "Training epochs")
        f.addRow("Epochs", self.epochs)
        self.batch = spin(1, 4096, 64, "Images per training step")
        f.addRow("Batch size", self.batch)
        self.lr = dspin(1e-5, 1.0, 5e-3, "Peak learning rate (one-cycle)", 1e-3, 4)
        f.addRow("Learning rate", self.lr)
        self.wd = dspin(0.0, 1.0, 5e-4, "AdamW weight decay", 1e-4, 4)
        f.addRow("Weight decay", self.wd)
        self.temperature = dspin(0.5, 20.0, 4.0, "Distillation temperature T", 0.5, 1)
        f.addRow("Temperature", self.temperature)
        self.alpha = dspin(0.0, 1.0, 0.0, "Weight of the cross-entropy on the teacher's argmax", 0.1, 2)
        f.addRow("α (CE)", self.alpha)
        self.augment = QCheckBox("random affine augmentation")
        self.augment.setChecked(True)
        f.addRow("", self.augment)
        self.seed = spin(0, 10**6, 0, "Training seed")
        f.addRow("Seed", self.seed)
        # speed: mixed precision, memory format, torch.compile ("auto" is resolved on the device; see the tooltips)
        self.precision = QComboBox()
        self.precision.addItems(PRECISIONS)
        f.addRow("Precision", self.precision)
        self.channels_last = QComboBox()
        self.channels_last.addItems(list(CHANNELS_LAST))
        f.addRow("Channels last", self.channels_last)
        self.compile = QCheckBox("torch.compile student and teacher")
        self.compile.setToolTip("Compile the forward passes: the first step waits for the compiler (on a 2-core CPU "
                                "about 20 s for the Digits student, 40 s for a ResNet-18), later steps can be "
                                "faster. Needs a C++ compiler. Checkpoints and exports are unchanged")
        f.addRow("", self.compile)
        self._speed_tips("")
        self.processes = spin(1, PROCESSES_MAX, 1, PROCESSES_TIP)
        f.addRow("Processes", self.processes)
        self.runs_list = QListWidget()
        self.runs_list.setToolTip("Generation runs to train on (none ticked = all)")
        self.runs_list.setMaximumHeight(90)
        f.addRow("Train on runs", self.runs_list)
        self.statuses = QComboBox()
        self.statuses.addItems(["not rejected", "kept only"])
        self.statuses.setToolTip("Which curated images the student sees")
        f.addRow("Images", self.statuses)
        self.eval_set = EvalSetField(self.studio)
        f.addRow("Evaluate on", self.eval_set)
        self.onnx = QCheckBox("also export ONNX at the end")
        f.addRow("", self.onnx)
        self.run_name = QLineEdit("distill-1")
        self.run_name.setToolTip("Name of this training run (curves of several runs are overlaid)")
        f.addRow("Run name", self.run_name)

    def _build_the_actions(self) -> None:
        """The actions."""
        self.start_button = button("Start training", "Distil the teacher into the student on the curated images "
                                   "(Ctrl+T)", self.start, shortcut="Ctrl+T")
        self.stop_button = button("Stop", "Stop after the current step (the last finished epoch is checkpointed)",
                                  self.stop, enabled=False)
        self.export_button = button("Export student…", "Save the trained student as a timm model folder "
                                    "(config.json, model.safetensors, model card; timm.create_model('local-dir:…')) "
                                    "and, if ticked, ONNX", lambda: self.export(), enabled=False)
        self.progress = QProgressBar()
        self.result = QLabel("")
        self.result.setWordWrap(True)
        self.result.setStyleSheet("font-size: 11pt; color: #123;")
        self.error = error_label()
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.addWidget(self._box)
        ll.addStretch(1)
        actions = (self.start_button, self.stop_button, self.export_button)
        self._scroll = form_with_actions(left, [actions, self.progress, self.result, self.error], 340, 420)

    def _build_the_curves_and_the_two_panes(self) -> None:
        """The curves and the two panes."""
        pgm = pg()
        self.loss_plot = pgm.PlotWidget(title="Distillation loss (faint: per step; solid: smoothed)")
        self.loss_plot.setLabel("bottom", "epoch")
        self.loss_plot.setLogMode(y=True)
        self.loss_plot.getAxis("left").enableAutoSIPrefix(False)
        self.loss_plot.showGrid(x=True, y=True, alpha=0.25)
        self.loss_plot.addLegend(offset=(-10, 10))
        self.acc_plot = pgm.PlotWidget(title="Student accuracy on the real evaluation set (solid) and agreement "
                                             "with the teacher (dashed)")
        self.acc_plot.setLabel("bottom", "epoch")
        self.acc_plot.setLabel("left", "%")
        self.acc_plot.setYRange(0, 100)
        self.acc_plot.showGrid(x=True, y=True, alpha=0.25)
        self.acc_plot.addLegend(offset=(-10, -10))
        self.teacher_line = None
        plots = QVBoxLayout()
        plots.addWidget(self.loss_plot, 1)
        plots.addWidget(self.acc_plot, 1)
        lay = QHBoxLayout(self)
        lay.addWidget(self._scroll)
        lay.addLayout(plots, 1)

        self.timer = QTimer(self)
        self.timer.setInterval(200)  # 5 Hz redraw from the buffers, never per batch
        self.timer.timeout.connect(self.redraw)
        self.timer.start()
        self.setAcceptDrops(True)  # a folder of real images dropped here becomes the evaluation set
        self.folder_job = None
        self.studio.project_changed.connect(self._on_project)
        self.studio.catalog_changed.connect(self._fill_runs)
        self.studio.engine_ready.connect(self._fill_students)
        if self.studio.ready:
            self._fill_students()


    def _fill_students(self) -> None:
        from prism_gui.engine.devices import describe, pick_device
        from prism_gui.engine.scale.launch import max_processes
        from prism_gui.engine.training.distill import STUDENTS, DistillSpec, resolve_speed

        self.processes.setMaximum(max_processes("auto"))  # the device distillation runs on
        device = pick_device("auto")
        auto = resolve_speed(DistillSpec(), device).describe()
        self._speed_tips(f"auto on this machine ({describe(device)}): {auto['precision']}, channels_last "
                         f"{'on' if auto['channels_last'] else 'off'}")

        current = self.student_name.currentText()
        self.student_name.clear()
        for name in STUDENTS.names():
            self.student_name.addItem(name)
            tip = STUDENTS.help(name)
            self.student_name.setItemData(self.student_name.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.student_name.setCurrentText(current)

    def _speed_tips(self, auto: str) -> None:
        self.auto_speed = auto
        tail = f".\n{auto}" if auto else ""
        self.precision.setToolTip("Mixed precision of the student's and teacher's forward passes (the loss stays "
                                  "fp32). auto: bf16 on a CUDA GPU that has it, fp16 on older ones, fp32 on the CPU "
                                  "and MPS. bf16 also runs on the CPU; fp16 needs a CUDA GPU" + tail)
        self.channels_last.setToolTip("Models and batches in channels_last memory format (faster convolutions on GPU "
                                      "tensor cores). auto: on for a CUDA GPU, off elsewhere" + tail)

    # ---- settings
    def _on_project(self, project) -> None:
        from prism_gui.engine.project.project import default_spec

        # the project's settings over the defaults a new project gets (DistillSpec's, with the quick demo's)
        d = {**default_spec()["distill"], **{k: v for k, v in project.spec.get("distill", {}).items() if v is not None}}
        self.student_name.setCurrentText(str(d["student"]))
        self.epochs.setValue(int(d["epochs"]))
        self.batch.setValue(int(d["batch_size"]))
        self.lr.setValue(float(d["lr"]))
        self.wd.setValue(float(d["weight_decay"]))
        self.temperature.setValue(float(d["temperature"]))
        self.alpha.setValue(float(d["alpha_ce"]))
        self.augment.setChecked(bool(d["augment"]))
        self.seed.setValue(int(d["seed"]))
        self.precision.setCurrentText(str(d["precision"]))
        cl = d["channels_last"]
        self.channels_last.setCurrentText({v: k for k, v in CHANNELS_LAST.items()}.get(cl, "auto"))
        self.compile.setChecked(bool(d["compile"]))
        self.processes.setValue(int(d.get("processes", 1)))
        self._fill_runs()
        self._load_history(project)
        self.run_name.setText(self.next_run_name())
        acc = project.spec.get("teacher", {}).get("test_accuracy")
        if self.teacher_line is not None:
            self.acc_plot.removeItem(self.teacher_line)
            self.teacher_line = None
        if acc:
            self.teacher_line = pg().InfiniteLine(pos=100 * acc, angle=0, pen=pg().mkPen("#555", width=1,
                                                                                          style=Qt.PenStyle.DotLine),
                                                  label=f"teacher {100 * acc:.1f}%",
                                                  labelOpts={"position": 0.1, "color": "#555"})
            self.acc_plot.addItem(self.teacher_line)

    def _load_history(self, project) -> None:
        """The project's latest distillations back on the curves (from the catalog's metrics), and
        the latest finished one's result and student for Export (from its folder), after a restart."""
        from prism_gui.engine.data.layout import JobFiles, student_folder

        for run in list(self.runs):
            self._drop_curves(run)
        self.student, self.student_run_dir = None, None
        self.export_button.setEnabled(False)
        self.result.setText("")
        cat = self.studio.catalog
        runs = cat.runs("distill")[-PLOTTED_RUNS:] if cat is not None else []
        for r in runs:
            rc = RunCurves(r["id"], PALETTE[len(self.runs) % len(PALETTE)])
            header, rows = cat.metrics_table(r["id"])
            col = {k: i for i, k in enumerate(header)}
            for row in rows:
                if row[col["epoch"]] is None:
                    continue
                if "loss" in col and row[col["loss"]] is not None:
                    rc.loss_x.append(float(row[col["epoch"]]))
                    rc.loss.append(float(row[col["loss"]]))
                if "test_accuracy" in col and row[col["test_accuracy"]] is not None:
                    rc.acc_x.append(float(row[col["epoch"]]))
                    rc.acc.append(100 * float(row[col["test_accuracy"]]))
                    rc.agree.append(100 * float(row[col["agreement"]] or 0.0) if "agreement" in col else 0.0)
            self.runs[r["id"]] = rc
        self._dirty = True
        done = [r for r in runs if r["status"] == "finished"]
        if not done:
            return
        last = done[-1]
        folder = Path(last["spec"].get("out_dir") or project.run_dir(last["id"]))
        try:
            res = json.loads(JobFiles(folder).result.read_text())
        except (OSError, ValueError):
            res = {}
        if student_folder(folder) is not None:
            self.student_run_dir = str(folder)  # Export loads the student from there
            self.export_button.setEnabled(True)
        if "test_accuracy" in res:
            self._show_result(last["id"], res)

    def _show_result(self, run: str, res: dict) -> None:
        self.result.setText(f"<b>{run}</b>: student accuracy <b>{100 * res['test_accuracy']:.1f}%</b>, "
                            f"agreement {100 * res['agreement']:.1f}%, {res['student_parameters']:,} parameters, "
                            f"{res['images']} images, {res['seconds']:.0f} s")

    def _fill_runs(self) -> None:
        if self.studio.project is None:
            return
        ticked = set(self.selected_runs())
        cat = self.studio.catalog
        runs = [(r["id"], cat.count(run=r["id"])) for r in cat.runs("generate")]
        self.runs_list.clear()
        for run, n in runs:
            it = QListWidgetItem(f"{run} ({n} images)")
            it.setData(Qt.ItemDataRole.UserRole, run)
            it.setCheckState(Qt.CheckState.Checked if run in ticked else Qt.CheckState.Unchecked)
            self.runs_list.addItem(it)

    def selected_runs(self) -> list[str]:
        return [self.runs_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.runs_list.count())
                if self.runs_list.item(i).checkState() == Qt.CheckState.Checked]

    def select_runs(self, runs: list[str]) -> None:
        for i in range(self.runs_list.count()):
            it = self.runs_list.item(i)
            it.setCheckState(Qt.CheckState.Checked if it.data(Qt.ItemDataRole.UserRole) in runs
                             else Qt.CheckState.Unchecked)

    def next_run_name(self, base: str = "distill") -> str:
        used = set(self.runs)
        if self.studio.project is not None:
            if (cat := self.studio.catalog) is not None:
                used |= {r["id"] for r in cat.runs()}
        i = 1
        while f"{base}-{i}" in used:
            i += 1
        return f"{base}-{i}"

    def settings(self) -> dict:
        return {"student": self.student_name.currentText().strip(), "epochs": self.epochs.value(),
                "batch_size": self.batch.value(), "lr": self.lr.value(), "weight_decay": self.wd.value(),
                "temperature": self.temperature.value(), "alpha_ce": self.alpha.value(),
                "augment": self.augment.isChecked(), "seed": self.seed.value(),
                "precision": self.precision.currentText(),
                "channels_last": CHANNELS_LAST[self.channels_last.currentText()], "compile": self.compile.isChecked(),
                "processes": self.processes.value()}

    # ---- drag and drop (DropTarget): an evaluation folder, checked before it replaces the current set
    def accept_drop(self, path: str) -> None:
        self.accept_folder(path)

    def accept_folder(self, path: str):
        """Check ``path`` as the evaluation set (a job); it replaces the current set only when
        every subfolder is a class and every image file an image, else the error says why."""
        from prism_gui.engine.project.app_jobs import check_image_folder_job

        p = Path(path)
        if not p.is_dir():
            show_error(self.error, f"'{p.name}' is not a folder: drop a folder of real images with one subfolder "
                                   "per class to evaluate the student on.")
            return None
        names = self.studio.class_names()
        if not names:
            show_error(self.error, "Load a teacher first: the folder's subfolders are matched to its classes.")
            return None
        t = self.studio.teacher
        ids = getattr(t, "class_ids", None) if t is not None else \
            (self.studio.project.spec.get("teacher", {}).get("class_ids") if self.studio.project else None)
        show_error(self.error, "")
        self.folder_job = self.studio.submit("Check evaluation folder", lambda token: check_image_folder_job(
            str(p), names, ids, cancel=token))
        self.folder_job.finished.connect(self._folder_checked)
        self.folder_job.failed.connect(lambda msg, _d: show_error(self.error, msg.split(": ", 1)[-1]))
        return self.folder_job

    def _folder_checked(self, ev) -> None:
        folder = ev.data["folder"]
        self.eval_set.set_value(folder, None)
        self.eval_set._changed()  # saved with the project
        self.result.setText(f"Evaluation set: {ev.data['images']:,} images in {ev.data['classes']} classes "
                            f"({Path(folder).name})")

    # ---- the job
    def start(self):
        project = self.studio.project
        if project is None:
            show_error(self.error, "Open or create a project first (File menu).")
            return None
        show_error(self.error, "")
        run = run_name_or_error(self.run_name, self.next_run_name(), self.error)
        if run is None:
            return None
        s = self.settings()
        project.section("distill").update(s)
        project.save()
        eval_set, mapping = self.eval_set.value()
        s.update(data="catalog", project=str(project.root), runs=self.selected_runs() or None,
                 statuses=["keep"] if self.statuses.currentIndex() == 1 else ["unreviewed", "keep"],
                 out_dir=str(project.run_dir(run)), run=run, export_onnx=self.onnx.isChecked(),
                 teacher=project.teacher_value(), eval=eval_set, eval_mapping=mapping)
        teacher = self.studio.teacher
        self.job = self.studio.submit(f"Distill '{run}'", lambda token: distill_job(s, teacher, token))
        self._drop_curves(run)
        while len(self.runs) >= PLOTTED_RUNS:  # the chart overlays the latest runs: older ones drop off it
            self._drop_curves(next(iter(self.runs)))
        self.runs[run] = RunCurves(run, PALETTE[len(self.runs) % len(PALETTE)])
        self.job.started.connect(lambda: self._set_running(True))
        self.job.progress.connect(lambda ev, r=run: self._on_event(r, ev))
        self.job.finished.connect(lambda ev, r=run, d=s["out_dir"]: self._on_finished(r, ev, d))
        self.job.failed.connect(lambda msg, _d: show_error(self.error, msg))
        self.job.ended.connect(self._ended)
        if self.job.running:
            self._set_running(True)
        return self.job

    def stop(self) -> None:
        if self.job is not None and self.job.state in ("queued", "running", "paused"):
            self.job.cancel()

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)

    def _ended(self, outcome: str) -> None:
        self._set_running(False)
        self.run_name.setText(self.next_run_name())
        self.studio.catalog_changed.emit()
        self._dirty = True

    def _on_event(self, run: str, ev) -> None:
        rc, p = self.runs[run], ev.data
        if isinstance(p, DistillStart) and p.warning:  # classes missing from the training set, named
            show_error(self.error, f"Warning ({run}): {p.warning}.")
        if ev.total:
            self.progress.setMaximum(ev.total)
            self.progress.setValue(ev.step)
            self.progress.setFormat(f"{run}: {ev.message}" if ev.message else "%p%")
        if isinstance(p, DistillStep):
            rc.loss_x.append(float(p.epoch))
            rc.loss.append(float(p.loss))
            self._dirty = True
        if isinstance(p, DistillEvaluation):
            rc.acc_x.append(float(p.epoch))
            rc.acc.append(100 * float(p.test_accuracy))
            rc.agree.append(100 * float(p.agreement))
            self._dirty = True

    def _on_finished(self, run: str, ev, run_dir: str | None = None) -> None:
        done = ev.data if isinstance(ev.data, DistillDone) else DistillDone({})
        res, self.student = done.result, done.student
        self.student_run_dir = run_dir
        self.export_button.setEnabled(self.student is not None)
        if "test_accuracy" in res:
            self._show_result(run, res)
        self.finished.emit(res)

    # ---- export (a job)
    def export(self, out: str | None = None):
        if self.student is None and self.student_run_dir is None:
            return None
        if not out:
            out = QFileDialog.getExistingDirectory(self, "Export the student into a folder")
        if not out:
            return None
        student, teacher, run_dir = self.student, self.studio.teacher, self.student_run_dir
        onnx = self.onnx.isChecked()
        self.export_job = self.studio.submit("Export student", lambda token: export_job(student, teacher, out, onnx,
                                                                                        token, run_dir))
        self.export_job.finished.connect(lambda ev: self.result.setText(
            self.result.text() + "<br>Exported: " + ", ".join(Path(p).name for p in ev.data["paths"])))
        return self.export_job
