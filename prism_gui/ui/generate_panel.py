"""Generate panel: generator, sampler and energy-guidance (EDA) settings; a generation job with
pause/cancel, ETA, a strip of the latest images and a live plot of the mean energy per batch."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, QSize, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QColor, QIcon
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from prism_gui.engine.data.layout import RunPaths
from prism_gui.engine.events import BatchStored, GenerationNote, SamplingStep
from prism_gui.engine.generation.load import SCHEDULERS  # a light module: diffusers loads inside its functions
from prism_gui.engine.generation.local_models import GeneratorEntry, local_generators  # light too
from prism_gui.engine.project.app_jobs import (  # light: its engine imports are inside functions
    generate_spec,
    generation_job,
    plain_class_prompts,
)
from prism_gui.engine.project.demo_settings import FULL
from prism_gui.engine.seeds import base_seed
from prism_gui.ui.common import (
    ERROR_STYLE,
    WARNING_COLOR,
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

SCHEDULER_NAMES = ["default", *SCHEDULERS]  # "default": the generator's own (LCM's, Turbo's)
STRIP_MAX = 120
PLOTTED_RUNS = 8  # runs on the energy chart (a chart of more is unreadable, and each holds memory)
TILE = 64
EXTRA_GENERATORS = "generators/extra"  # the settings key of the folders and files the user added
CHECKPOINT_FILTER = "Stable Diffusion checkpoints (*.safetensors *.ckpt *.pt *.pth);;All files (*)"
PROCESSES_MAX = 64  # the spin box's limit until the engine is ready to count this machine's GPUs


PROCESSES_TIP = "Processes on this machine, one per GPU (torchrun starts them); images are identical to one process"


class _GeneratorScan(QObject):
    """Carries the list of local generators from the thread pool to the panel."""

    found = Signal(int, list, str)  # scan number, entries, error


class GeneratePanel(QWidget):
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
        self._dirty = False

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
                                     self.export_for_cluster, enabled=studio.ready)
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
        self.plot.setLabel("left", "mean teacher energy per batch")
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

    def _on_project(self, project) -> None:
        g = project.spec.get("generate", {})
        self.set_generator(str(g.get("generator", "digits")))
        self.scheduler.setCurrentText(str(g.get("scheduler", "ddim")))
        self.resolution.setValue(int(g.get("resolution", 0)))
        self.auto_batch.setChecked(bool(g.get("auto_batch", True)))
        self.offload.setChecked(bool(g.get("offload", False)))
        self.tiny_decoder.setText(str(g.get("guidance_decoder", "")))
        self.steps.setValue(int(g.get("steps", 15)))
        self.cfg.setValue(float(g.get("cfg", 3.0)))
        self.per_class.setValue(int(g.get("images_per_class", 20)))
        self.batch.setValue(int(g.get("batch_size", 50)))
        self.seed.setValue(int(g.get("seed", 0)))
        self.device.setCurrentText(str(g.get("device", "auto")))
        self.processes.setValue(int(g.get("processes", 1)))
        self.precision.setCurrentText(str(g.get("precision", "fp32")))
        self.scale.setValue(float(g.get("guidance_scale", FULL["guidance_scale"])))
        lo, hi = g.get("guidance_window", FULL["guidance_window"])
        self.win_lo.setValue(float(lo))
        self.win_hi.setValue(float(hi))
        self.mode.setCurrentText(str(g.get("guidance_mode", "cheap")))
        self.micro.setValue(int(g.get("guidance_micro_batch", 0)))
        self.ckpt_decoder.setChecked(bool(g.get("checkpoint_decoder", False)))
        for name, cb in self.energy_checks.items():
            weights = g.get("energy_weights", {"class": 1.0})
            cb.setChecked(name in weights)
            self.energy_weights[name].setValue(float(weights.get(name, 1.0)))
        self.run_name.setText(self.next_run_name())
        self._load_history()

    def _load_history(self) -> None:
        """The latest runs' energy curves from the catalog's metrics, and an interrupted latest run
        offered for resume under its own name, after a restart."""
        for run in list(self.curves):
            self._drop_curve(run)
        cat = self.studio.catalog
        runs = cat.runs("generate") if cat is not None else []
        for r in runs[-PLOTTED_RUNS:]:
            steps, values = cat.metrics(r["id"], "mean_energy")
            if len(steps):
                self.curves[r["id"]] = (list(map(int, steps)), list(map(float, values)), None)
        self._dirty = True
        if runs and runs[-1]["status"] == "interrupted":
            last = runs[-1]
            planned = last["spec"].get("images_per_class", 0) * len(self.studio.class_names() or [])
            self.run_name.setText(last["id"])
            self.note.setText(f"Run '{last['id']}' was interrupted at {cat.count(run=last['id'])}"
                              + (f" of {planned}" if planned else "") + " images: Start resumes it with its "
                              "settings, or type a new run name.")

    def next_run_name(self, base: str = "run") -> str:
        used = set()
        if self.studio.project is not None:
            if (cat := self.studio.catalog) is not None:
                used = {r["id"] for r in cat.runs()}
        i = 1
        while f"{base}-{i}" in used:
            i += 1
        return f"{base}-{i}"

    def settings(self) -> dict:
        weights = {n: self.energy_weights[n].value() for n, cb in self.energy_checks.items() if cb.isChecked()}
        return {"generator": self.generator_source(),
                "scheduler": self.scheduler.currentText(), "steps": self.steps.value(), "cfg": self.cfg.value(),
                "images_per_class": self.per_class.value(), "batch_size": self.batch.value(),
                "seed": self.seed.value(), "guidance_scale": self.scale.value(),
                "guidance_window": [self.win_lo.value(), self.win_hi.value()], "guidance_mode": self.mode.currentText(),
                "guidance_micro_batch": self.micro.value(), "checkpoint_decoder": self.ckpt_decoder.isChecked(),
                "energy_weights": weights or {"class": 1.0}, "device": self.device.currentText(),
                "precision": self.precision.currentText(), "resolution": self.resolution.value(),
                "auto_batch": self.auto_batch.isChecked(), "guidance_decoder": self.tiny_decoder.text().strip(),
                "offload": self.offload.isChecked(), "processes": self.processes.value()}

    def _limit_processes(self, *_args) -> None:
        """At most one process per GPU of the chosen device (one per core on the CPU)."""
        if not self.studio.ready:
            return
        from prism_gui.engine.scale.launch import max_processes

        self.processes.setMaximum(max_processes(self.device.currentText()))

    def fill_from_image(self, row: dict) -> None:
        """'Generate again with these settings': the settings stored with a catalog image."""
        s = row.get("settings") or {}
        sm, gd = s.get("sampler", {}), s.get("guidance", {})
        self.set_generator(str(row.get("generator", "digits")))
        self.scheduler.setCurrentText(str(sm.get("scheduler") or "default"))
        self.resolution.setValue(int(sm.get("resolution") or 0))
        self.steps.setValue(int(sm.get("steps", self.steps.value())))
        self.cfg.setValue(float(sm.get("cfg", self.cfg.value())))
        self.seed.setValue(base_seed(row.get("seed", 0)))
        if gd:
            self.scale.setValue(float(gd.get("scale", 0.0)))
            lo, hi = gd.get("window", [0.0, 1.0])
            self.win_lo.setValue(float(lo))
            self.win_hi.setValue(float(hi))
            self.mode.setCurrentText(str(gd.get("mode", "cheap")))
            weights = (gd.get("energy") or {}).get("weights", {})
            for name, cb in self.energy_checks.items():
                cb.setChecked(name in weights and weights[name] > 0)
                if name in weights:
                    self.energy_weights[name].setValue(float(weights[name]))
        self.run_name.setText(self.next_run_name(str(row.get("run", "run")).rsplit("-", 1)[0] + "-again"))
        self.note.setText(f"Settings from image #{row.get('id')} ('{row.get('prompt', '')}', seed {row.get('seed')}).")

    # ---- the generator menu: what is usable locally (engine/generation/local_models.py)
    def _add_generator_rows(self, form: QFormLayout) -> None:
        self._generator_entries: dict[str, GeneratorEntry] = {}
        self._extra: list[str] = []  # the added folders and files when the panel has no app settings
        self._scans = 0
        self._pending_scan: _GeneratorScan | None = None
        self.generator = QComboBox()
        self.generator.setEditable(True)
        self.generator.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.generator.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.generator.setMinimumContentsLength(14)
        self.generator.addItem("digits", "digits")
        self.generator.setToolTip("The generators found on this computer: the built-in Digits prior, the folders and "
                                  "checkpoints you added, and the diffusers models in the Hugging Face cache. You can "
                                  "also type a folder, a checkpoint file or a Hugging Face id in the local cache.")
        self.generator.currentIndexChanged.connect(self._on_generator_chosen)
        self.generator.editTextChanged.connect(self._show_generator_info)
        self.generator_info = QLabel("")
        self.generator_info.setWordWrap(True)
        self.generator_info.setTextFormat(Qt.TextFormat.PlainText)
        self.generator_info.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.generator_info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.generator_info.hide()
        folder = QPushButton("Folder…")
        folder.setToolTip("Add a local diffusers folder (with model_index.json, unet/, text_encoder/, …); it stays "
                          "in this list next time")
        folder.clicked.connect(self._browse_generator)
        file = QPushButton("File…")
        file.setToolTip("Add a single-file Stable Diffusion checkpoint (.safetensors or .ckpt, as A1111 and "
                        "Civitai share them); it stays in this list next time")
        file.clicked.connect(self._browse_checkpoint)
        add = QHBoxLayout()
        add.addWidget(QLabel("Add:"))
        add.addWidget(folder)
        add.addWidget(file)
        add.addStretch(1)
        form.addRow("Generator", self.generator)
        form.addRow("", self.generator_info)
        form.addRow("", add)

    def extra_generators(self) -> list[str]:
        """The folders and checkpoint files the user added (remembered in the app settings)."""
        if self.app_settings is None:
            return list(self._extra)
        return self.app_settings.list(EXTRA_GENERATORS)

    def add_generator(self, path: str) -> None:
        """Remember a folder or checkpoint file, choose it and list it from now on."""
        extra = [path] + [p for p in self.extra_generators() if p != path]
        if self.app_settings is None:
            self._extra = extra
        else:
            self.app_settings.set(EXTRA_GENERATORS, extra)
        self.set_generator(path)
        self.scan_generators()

    def scan_generators(self) -> None:
        """List the local generators in the thread pool (the cache scan reads files); the menu
        fills when it is done."""
        self._scans += 1
        scan, number, extra = _GeneratorScan(), self._scans, self.extra_generators()
        scan.found.connect(self._show_generators, Qt.ConnectionType.QueuedConnection)
        self._pending_scan = scan  # alive until its result arrives

        def work():
            try:
                entries, error = local_generators(extra), ""
            except Exception as e:  # a scan that fails leaves the menu as it was and says why
                entries, error = [], f"Could not list the local generators: {type(e).__name__}: {e}"
            scan.found.emit(number, entries, error)

        QThreadPool.globalInstance().start(work)

    @property
    def scanning_generators(self) -> bool:
        return self._pending_scan is not None

    def _show_generators(self, number: int, entries: list, error: str) -> None:
        if number != self._scans:
            return  # a newer scan is under way
        self._pending_scan = None
        if error:
            self.generator_info.setStyleSheet(ERROR_STYLE)
            self.generator_info.setText(error)
            self.generator_info.show()
            return
        current = self.generator_source()
        self.generator.blockSignals(True)
        self.generator.clear()
        self._generator_entries = {e.source: e for e in entries}
        for i, e in enumerate(entries):
            self.generator.addItem(e.summary() + (" · ⚠ not usable" if e.problem else ""), e.source)
            tip = f"{e.summary()}\n{e.source}" + (f"\n\nNot usable: {e.problem}" if e.problem else "")
            self.generator.setItemData(i, tip, Qt.ItemDataRole.ToolTipRole)
            if e.problem:
                self.generator.setItemData(i, QColor(WARNING_COLOR), Qt.ItemDataRole.ForegroundRole)
        view = self.generator.view()
        view.setMinimumWidth(view.sizeHintForColumn(0) + 24)  # the popup shows whole lines
        self.generator.blockSignals(False)
        self.set_generator(current)

    def set_generator(self, source: str) -> None:
        """Choose ``source`` (what load_generator takes): its menu entry if listed, else as typed."""
        i = self.generator.findData(source)
        if i >= 0:
            self.generator.setCurrentIndex(i)
            self.generator.setEditText(self.generator.itemText(i))
        else:
            self.generator.setEditText(source)
        self._show_generator_info()
        self.generator.lineEdit().setCursorPosition(0)  # the start of a long name, not its end

    def generator_source(self) -> str:
        """The chosen generator as load_generator takes it: an entry's source, or the typed text."""
        text = self.generator.currentText().strip()
        i = self.generator.findText(text, Qt.MatchFlag.MatchExactly)
        if i >= 0 and self.generator.itemData(i):
            return str(self.generator.itemData(i))
        return text or "digits"

    def _on_generator_chosen(self, _index: int) -> None:
        self._show_generator_info()
        self.generator.lineEdit().setCursorPosition(0)

    def _show_generator_info(self, *_args) -> None:
        """Under the menu: what the chosen entry is (the menu line is often cut), or why it is not usable."""
        entry = self._generator_entries.get(self.generator_source())
        info = self.generator_info
        info.setToolTip(entry.source if entry is not None else "")
        if entry is None:
            info.hide()
        elif entry.problem:
            info.setStyleSheet(f"color: {WARNING_COLOR};")
            info.setText(f"⚠ Not usable: {entry.problem}")
            info.show()
        else:
            where = {"folder": "folder ", "file": "file "}.get(entry.where, "")
            width = max(160, self.generator.width()) - info.fontMetrics().horizontalAdvance(where)
            path = info.fontMetrics().elidedText(entry.source, Qt.TextElideMode.ElideMiddle, width)
            info.setStyleSheet("color: #555;")
            traits = " · ".join(t.replace(" ", "\u00a0") for t in entry.traits())  # '512 px' stays on one line
            info.setText(traits + (f"\n{where}{path}" if where else ""))
            info.show()
        # wrap only what does not fit: a wrapping label reserves room for lines it does not draw
        info.setWordWrap(info.fontMetrics().horizontalAdvance(info.text()) > max(160, self.generator.width()))

    def _browse_generator(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Diffusers folder")
        if path:
            self.add_generator(path)

    def _browse_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Single-file checkpoint", "", CHECKPOINT_FILTER)
        if path:
            self.add_generator(path)

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

    # ---- a cluster: the same job as Start, written with launch scripts for several nodes
    def export_for_cluster(self):
        """Open the cluster dialog for the job Start would run (its prompts saved first); returns
        the dialog (OK writes the files), or None when there is no job to export."""
        from prism_gui.ui.cluster_dialog import ClusterDialog

        prepared = self.job_settings()
        if prepared is None:
            return None
        s, plain = prepared
        project = self.studio.project
        try:
            spec = generate_spec(s)
            if plain or self.studio.prompts is None:
                prompts_path = RunPaths.of(project.root, s["run"]).prompts
                prompts_path.parent.mkdir(parents=True, exist_ok=True)
                plain_class_prompts(s, self.studio.teacher, s["class_names"]).save(prompts_path)
            else:
                project.save_prompts(self.studio.prompts)
                prompts_path = project.prompts_path
        except Exception as e:
            show_error(self.error, f"Cannot export for a cluster: {type(e).__name__}: {e}")
            return None
        dialog = ClusterDialog("generate", spec.to_dict(), str(prompts_path), project.root / "cluster" / s["run"],
                               gpus_per_node=max(1, self.processes.value()), parent=self)
        dialog.exported.connect(self._show_export)
        self.cluster_dialog = dialog
        dialog.open()
        return dialog

    def _show_export(self, paths: list) -> None:
        out = paths[0].parent if paths else ""
        self.note.setText(f"Exported for a cluster into {out}.")
        box = QMessageBox(QMessageBox.Icon.Information, "Exported for a cluster",
                          f"Wrote {len(paths)} files into {out}:\n" + "\n".join(f"  {p.name}" for p in paths),
                          parent=self)
        box.setInformativeText("Next: copy the folder to the cluster, edit 'project' in spec.json to the path the "
                               "cluster sees, then sbatch slurm.sbatch (README.txt has the details).")
        box.setDetailedText("\n".join(str(p) for p in paths))
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.setObjectName("cluster_export_message")
        self.cluster_message = box
        box.open()

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
            if p.mean_energy is not None:  # one point per stored batch
                xs, ys, _curve = self.curves.setdefault(run, ([], [], None))
                xs.append(ev.step)
                ys.append(p.mean_energy)
                self._dirty = True
            if p.new_ids:
                self.add_images(p.new_ids)
        if isinstance(p, GenerationNote):  # the estimate at the start; a batch back-off
            self.note.setText(ev.message)

    def _drop_curve(self, run: str) -> None:
        old = self.curves.pop(run, None)
        if old is not None and old[2] is not None:
            self.plot.removeItem(old[2])

    def add_images(self, ids: list[int]) -> None:
        project = self.studio.project
        rows = self.studio.catalog.query(columns="id, thumb, energy, class_name", ids=ids)
        for r in rows:
            item = QListWidgetItem(QIcon(pixmap(load_tile(project.root / r["thumb"], TILE))),
                                   f"{r['energy']:.2f}" if r["energy"] is not None else "")
            item.setToolTip(f"#{r['id']} {r['class_name']}, energy {r['energy']:.3f}")
            item.setData(Qt.ItemDataRole.UserRole, r["id"])
            self.strip.insertItem(0, item)
        while self.strip.count() > STRIP_MAX:
            self.strip.takeItem(self.strip.count() - 1)
        self.images_added.emit(list(ids))

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
