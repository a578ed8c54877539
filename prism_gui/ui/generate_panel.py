"""Generate panel: generator, sampler and energy-guidance (EDA) settings; a generation job with
pause/cancel, ETA, a strip of the latest images and a live plot of the mean energy per batch."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QVBoxLayout,
    QWidget,
)

from prism_gui.engine.events import BatchStored, GenerationNote, SamplingStep
from prism_gui.engine.generation.load import SCHEDULERS  # a light module: diffusers loads inside its functions
from prism_gui.engine.project.app_jobs import (  # light: its engine imports are inside functions
    generation_job,
)
from prism_gui.engine.project.demo_settings import FULL
from prism_gui.ui.cluster_dialog import ClusterExport
from prism_gui.ui.common import (
    Settings,
    Studio,
    button,
    dspin,
    error_label,
    form_with_actions,
    load_tile,
    pg,
    pixmap,
    run_name_or_error,
    show_error,
    spin,
)
from prism_gui.ui.generate_settings import PLOTTED_RUNS, GenerateSettings
from prism_gui.ui.generator_menu import GeneratorMenu

SCHEDULER_NAMES = ["default", *SCHEDULERS]  # "default": the generator's own (LCM's, Turbo's)
STRIP_MAX = 120
TILE = 64
PROCESSES_MAX = 64  # the spin box's limit until the engine is ready to count this machine's GPUs


PROCESSES_TIP = "Processes on this machine, one per GPU (torchrun starts them); images are identical to one process"


class GeneratePanel(GenerateSettings, GeneratorMenu, ClusterExport, QWidget):
    images_added = Signal(list)

    def __init__(self, studio: Studio, parent: QWidget | None = None, settings: Settings | None = None):
        super().__init__(parent)
        self.studio = studio
        self.app_settings = settings
        self.job = None
        self._processes = 1  # of the job that runs
        self.cluster_dialog = None
        self.cluster_message = None
        self.curves: dict[str, tuple[list, list, object]] = {}
        self.class_stats: dict[str, dict[int, tuple[float, int]]] = {}  # run -> class -> (energy sum, images)
        self._dirty = False

        gen = self._build_sampler_box()
        eda = self._build_guidance_box()
        self.start_button = button("Start", "Generate, score with the teacher and store in the catalog (Ctrl+G)",
                                   self.start, shortcut="Ctrl+G")
        self.pause_button = button("Pause", "Pause between two steps; press again to resume", self._toggle_pause,
                                   enabled=False, checkable=True)
        self.cancel_button = button("Cancel", "Stop after the current step; the unfinished batch is discarded",
                                    self.cancel, enabled=False)
        self.progress = QProgressBar()
        self.eta = QLabel("")
        self.state = QLabel("idle")
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #345;")
        self.error = error_label()
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.addWidget(gen)
        ll.addWidget(eda)
        ll.addStretch(1)
        scroll = form_with_actions(left, [(self.start_button, self.pause_button, self.cancel_button), self.note,
                                          self.error], 400, 440)

        right = self._build_output()
        lay = QHBoxLayout(self)
        lay.addWidget(scroll)
        lay.addLayout(right, 1)

        self.timer = QTimer(self)
        self.timer.setInterval(200)  # redraw the plot at 5 Hz, never per event
        self.timer.timeout.connect(self._redraw)
        self.timer.start()
        studio.engine_ready.connect(self._fill_energies)
        studio.engine_ready.connect(self.scan_generators)
        studio.engine_ready.connect(self._limit_processes)
        studio.engine_ready.connect(lambda: self.cluster_button.setEnabled(True))
        studio.project_changed.connect(self._on_project)
        if studio.ready:
            self._fill_energies()
            self.scan_generators()
            self._limit_processes()

    # ---- construction
    def _build_sampler_box(self) -> QGroupBox:
        """The generator, sampler and run settings."""
        gen = QGroupBox("Generator and sampler")
        f = QFormLayout(gen)
        self._add_generator_rows(f)
        self.scheduler = QComboBox()
        self.scheduler.addItems(SCHEDULER_NAMES)
        self.scheduler.setToolTip("Diffusers scheduler (DDIM is deterministic and works with guidance); "
                                  "'default' keeps the generator's own (LCM's, Turbo's trailing Euler)")
        f.addRow("Scheduler", self.scheduler)
        self.resolution = spin(0, 4096, 0, "Square image size in pixels, a multiple of 8 for Stable Diffusion; "
                                           "0: the generator's native size. The teacher sees 224 px: a smaller "
                                           "size saves time and guidance memory (4x per halving of the side)")
        self.resolution.setSingleStep(64)
        self.resolution.setSpecialValueText("native")
        f.addRow("Resolution", self.resolution)
        self.steps = spin(1, 1000, 15, "Denoising steps per image")
        f.addRow("Steps", self.steps)
        self.cfg = dspin(0.0, 30.0, 3.0, "Classifier-free guidance scale", 0.5, 2)
        f.addRow("CFG", self.cfg)
        self.per_class = spin(1, 100000, 20, "Images to generate per class")
        f.addRow("Images per class", self.per_class)
        self.batch = spin(1, 4096, 50, "Images per batch (memory vs. speed)")
        self.auto_batch = QCheckBox("halve it when out of memory")
        self.auto_batch.setChecked(True)
        self.auto_batch.setToolTip("When a batch runs out of GPU memory, halve it and retry instead of stopping "
                                   "the run; every image depends on its own seed, so the images are the same")
        f.addRow("Batch size", self.batch)
        f.addRow("", self.auto_batch)
        self.device = QComboBox()
        self.device.addItems(["auto", "cuda", "mps", "cpu"])
        self.device.setToolTip("Where to sample: 'auto' takes a CUDA GPU, then Apple MPS, then the CPU")
        f.addRow("Device", self.device)
        self.processes = spin(1, PROCESSES_MAX, 1, PROCESSES_TIP)
        self.cluster_button = button("Export for a cluster…", "Write this generation's spec, its prompts and launch "
                                     "scripts (torchrun, accelerate, SLURM) for several nodes into a folder",
                                     self.export_for_cluster, enabled=self.studio.ready)
        procs = QHBoxLayout()
        procs.addWidget(self.processes)
        procs.addStretch(1)
        procs.addWidget(self.cluster_button)
        f.addRow("Processes", procs)
        self.device.currentTextChanged.connect(self._limit_processes)
        self.precision = QComboBox()
        self.precision.addItems(["fp32", "fp16", "bf16"])
        self.precision.setToolTip("Generator precision on a GPU: fp16/bf16 halve its memory and are faster "
                                  "(the CPU always samples in fp32)")
        f.addRow("Precision", self.precision)
        self.offload = QCheckBox("CPU offload")
        self.offload.setToolTip("Model CPU offload: one model on the GPU at a time. The text encoder, UNet and "
                                "VAE take turns on the GPU and wait in CPU memory; fits large models (SDXL) on "
                                "small GPUs, slower per step")
        f.addRow("", self.offload)
        self.seed = spin(0, 10**6, 0, "Base seed: image i gets seed*10,000,000 + i")
        f.addRow("Seed", self.seed)
        self.prompt_source = QComboBox()
        self.prompt_source.addItems(["project prompts (DPE)", "plain class names"])
        self.prompt_source.setToolTip("The prompts of the Prompts panel, or one 'the digit k' prompt per class")
        f.addRow("Prompts", self.prompt_source)
        self.run_name = QLineEdit("run-1")
        self.run_name.setToolTip("Name of this generation run; an unfinished run with the same name and settings "
                                 "resumes where it stopped")
        f.addRow("Run name", self.run_name)

        return gen

    def _build_guidance_box(self) -> QGroupBox:
        """The energy guidance (EDA) settings."""
        eda = QGroupBox("Energy guidance (EDA)")
        ef = QFormLayout(eda)
        self.energy_grid = QGridLayout()
        self.energy_checks: dict[str, QCheckBox] = {}
        self.energy_weights: dict[str, QDoubleSpinBox] = {}
        self.energy_wait = QLabel("loading the energy terms…")
        self.energy_grid.addWidget(self.energy_wait, 0, 0)
        ef.addRow("Terms", self.energy_grid)
        self.scale = dspin(0.0, 10.0, FULL["guidance_scale"], "Guidance scale: the RMS size of each x0 step (0 = off)",
                           0.01, 3)
        ef.addRow("Scale", self.scale)
        lo, hi = FULL["guidance_window"]
        self.win_lo = dspin(0.0, 1.0, lo, "Guidance starts at this fraction of the trajectory", 0.05, 2)
        self.win_hi = dspin(0.0, 1.0, hi, "Guidance ends at this fraction of the trajectory", 0.05, 2)
        wrow = QHBoxLayout()
        wrow.addWidget(self.win_lo)
        wrow.addWidget(QLabel("to"))
        wrow.addWidget(self.win_hi)
        ef.addRow("Window", wrow)
        self.mode = QComboBox()
        self.mode.addItems(["cheap", "exact"])
        self.mode.setToolTip("cheap: gradient w.r.t. the predicted x0; exact: through the UNet (slower)")
        ef.addRow("Mode", self.mode)
        self.micro = spin(0, 4096, 0, "Images per guidance gradient (0: the whole batch). Smaller uses less memory "
                                      "for the gradient through the VAE; the images are the same")
        ef.addRow("Gradient micro-batch", self.micro)
        self.ckpt_decoder = QCheckBox("checkpoint the VAE decoder")
        self.ckpt_decoder.setToolTip("Recompute the decoder's activations in the backward pass instead of storing "
                                     "them: less memory for guidance, some more time; the images are the same")
        ef.addRow("", self.ckpt_decoder)
        self.tiny_decoder = QLineEdit()
        self.tiny_decoder.setPlaceholderText("the generator's VAE")
        self.tiny_decoder.setToolTip("A tiny decoder for the guidance gradient only (an AutoencoderTiny folder or "
                                     "a cached id such as madebyollin/taesd): a fraction of the VAE's memory and "
                                     "time; the stored images still come from the full VAE")
        ef.addRow("Guidance decoder", self.tiny_decoder)

        return eda

    def _build_output(self) -> QVBoxLayout:
        """Progress, the latest images and the energy chart."""
        self.strip = QListWidget()
        self.strip.setViewMode(QListView.ViewMode.IconMode)
        self.strip.setFlow(QListView.Flow.LeftToRight)
        self.strip.setWrapping(True)
        self.strip.setResizeMode(QListView.ResizeMode.Adjust)
        self.strip.setUniformItemSizes(True)
        self.strip.setIconSize(QSize(TILE, TILE))
        self.strip.setGridSize(QSize(TILE + 8, TILE + 22))
        self.strip.setMovement(QListView.Movement.Static)
        self.strip.setToolTip("The latest images, newest first; the number is the teacher energy")
        pgm = pg()
        self.plot = pgm.PlotWidget()
        self.plot.setLabel("left", "mean energy per class, so far")
        self.plot.setTitle("Teacher energy of the images (classes weighted equally; lower = closer to what the "
                           "teacher knows)", size="9pt")
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.plot.setLabel("bottom", "images generated")
        self.plot.showGrid(x=True, y=True, alpha=0.3)
        self.plot.addLegend(offset=(-10, 10))
        self.plot.setMinimumHeight(220)
        prow = QHBoxLayout()
        prow.addWidget(self.progress, 1)
        prow.addWidget(self.eta)
        prow.addWidget(self.state)
        right = QVBoxLayout()
        right.addLayout(prow)
        right.addWidget(QLabel("Latest images (teacher energy below each; lower is better)"))
        right.addWidget(self.strip, 3)
        right.addWidget(self.plot, 2)
        return right

    # ---- settings
    def _fill_energies(self) -> None:
        if self.energy_checks:
            return
        from prism_gui.engine.generation.energies import ENERGIES

        self.energy_wait.hide()
        weights = {}
        if self.studio.project is not None:
            weights = self.studio.project.spec.get("generate", {}).get("energy_weights", {})
        for row, name in enumerate(ENERGIES.names()):
            cb = QCheckBox(name)
            cb.setToolTip(ENERGIES.help(name))
            cb.setChecked(name in weights if weights else name == "class")
            w = dspin(0.0, 100.0, float(weights.get(name, 1.0)), f"Weight of the '{name}' energy", 0.1, 2)
            self.energy_checks[name] = cb
            self.energy_weights[name] = w
            self.energy_grid.addWidget(cb, row + 1, 0)
            self.energy_grid.addWidget(w, row + 1, 1)

    def _limit_processes(self, *_args) -> None:
        """At most one process per GPU of the chosen device (one per core on the CPU)."""
        if not self.studio.ready:
            return
        from prism_gui.engine.scale.launch import max_processes

        self.processes.setMaximum(max_processes(self.device.currentText()))


    # ---- the job
    def job_settings(self) -> tuple[dict, bool] | None:
        """The settings of a job of this panel (saved in the project), with project, run and
        teacher, and whether it uses plain class-name prompts; None (and the reason shown) when
        no job can start."""
        if self.studio.project is None:
            show_error(self.error, "Open or create a project first (File menu).")
            return None
        show_error(self.error, "")
        s = self.settings()
        run = run_name_or_error(self.run_name, self.next_run_name(), self.error)
        if run is None:
            return None
        plain = self.prompt_source.currentIndex() == 1
        if not plain and self.studio.prompts is None:
            show_error(self.error, "No prompts yet: expand them in the Prompts panel or choose plain class names.")
            return None
        project = self.studio.project
        project.section("generate").update(s)
        project.save()
        s.update(project=str(project.root), run=run, teacher=project.teacher_value(),
                 bank=project.spec.get("prompts", {}).get("bank"), class_names=project.class_names())
        return s, plain

    def start(self):
        prepared = self.job_settings()
        if prepared is None:
            return None
        s, plain = prepared
        run = s["run"]
        teacher, prompts = self.studio.teacher, self.studio.prompts
        self._processes = int(s.get("processes", 1))
        self.job = self.studio.submit(f"Generate '{run}'", lambda token: generation_job(s, prompts, teacher, plain,
                                                                                         token))
        if self._processes > 1:
            self.note.setText(f"Generating on {self._processes} processes (torchrun): Cancel stops them all; "
                              "pausing is for one process only.")
        elif self.note.text().startswith("Generating on"):
            self.note.setText("")
        self._drop_curve(run)
        while len(self.curves) >= PLOTTED_RUNS:  # the chart shows the latest runs: older ones drop off it
            self._drop_curve(next(iter(self.curves)))
        self.job.started.connect(lambda: self._set_running(True))
        self.job.progress.connect(lambda ev, r=run: self._on_event(r, ev))
        self.job.paused_changed.connect(self._on_paused)
        self.job.failed.connect(lambda msg, _d: show_error(self.error, msg))
        self.job.ended.connect(self._ended)
        if self.job.running:
            self._set_running(True)
        self.state.setText("queued" if self.job.state == "queued" else "running")
        return self.job

    def _toggle_pause(self) -> None:
        if self.job is None:
            return
        if self.pause_button.isChecked():
            self.job.pause()
            self.state.setText("pausing…")
        else:
            self.job.resume()

    def cancel(self) -> None:
        if self.job is not None and self.job.state in ("queued", "running", "paused"):
            self.job.cancel()
            self.state.setText("cancelling…")

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        # pausing holds the job between two events: torchrun's processes would run on, so it is one-process only
        self.pause_button.setEnabled(running and self._processes == 1)
        self.cancel_button.setEnabled(running)
        if not running:
            self.pause_button.setChecked(False)
            self.pause_button.setText("Pause")
        else:
            self.eta.setText("ETA —")  # until the first batch is stored and timed

    def _on_paused(self, paused: bool) -> None:
        self.state.setText("paused" if paused else "running")
        self.pause_button.setChecked(paused)
        self.pause_button.setText("Resume" if paused else "Pause")

    def _ended(self, outcome: str) -> None:
        self._set_running(False)
        self.state.setText(outcome)
        if outcome == "finished":
            self.run_name.setText(self.next_run_name())
        self.studio.catalog_changed.emit()

    def _on_event(self, run: str, ev) -> None:
        p = ev.data
        if ev.total:
            self.progress.setMaximum(ev.total)
            self.progress.setValue(ev.step)
            frac = f" (step {p.batch_step}/{p.batch_steps})" if isinstance(p, SamplingStep) else ""
            self.progress.setFormat(f"{ev.step}/{ev.total} images{frac}")
        if isinstance(p, BatchStored):
            self.eta.setText("ETA —" if p.eta_s is None else f"ETA {p.eta_s:.0f} s")
            rows = self.add_images(p.new_ids) if p.new_ids else []
            stats = self.class_stats.setdefault(run, {})
            for r in rows:
                if r["energy"] is not None:
                    total, n = stats.get(r["class_index"], (0.0, 0))
                    stats[r["class_index"]] = (total + float(r["energy"]), n + 1)
            if rows and stats:  # one point per stored batch: the class-balanced mean energy so far
                xs, ys, _curve = self.curves.setdefault(run, ([], [], None))
                xs.append(ev.step)
                ys.append(float(np.mean([total / n for total, n in stats.values()])))
                self._dirty = True
        if isinstance(p, GenerationNote):  # the estimate at the start; a batch back-off
            self.note.setText(ev.message)

    def _drop_curve(self, run: str) -> None:
        self.class_stats.pop(run, None)
        old = self.curves.pop(run, None)
        if old is not None and old[2] is not None:
            self.plot.removeItem(old[2])

    def add_images(self, ids: list[int]) -> list:
        """The new images into the strip (newest first); returns their rows."""
        project = self.studio.project
        rows = self.studio.catalog.query(columns="id, thumb, energy, class_name, class_index", ids=ids)
        for r in rows:
            item = QListWidgetItem(QIcon(pixmap(load_tile(project.root / r["thumb"], TILE))),
                                   f"{r['energy']:.2f}" if r["energy"] is not None else "")
            item.setToolTip(f"#{r['id']} {r['class_name']}, energy {r['energy']:.3f}")
            item.setData(Qt.ItemDataRole.UserRole, r["id"])
            self.strip.insertItem(0, item)
        while self.strip.count() > STRIP_MAX:
            self.strip.takeItem(self.strip.count() - 1)
        self.images_added.emit(list(ids))
        return rows

    def _redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
        for i, (run, (xs, ys, curve)) in enumerate(list(self.curves.items())):
            if curve is None:
                curve = self.plot.plot([], [], pen=pg().mkPen(palette[i % len(palette)], width=2), symbol="o",
                                       symbolSize=5, symbolBrush=palette[i % len(palette)], name=run)
                self.curves[run] = (xs, ys, curve)
            curve.setData(np.asarray(xs, float), np.asarray(ys, float))
