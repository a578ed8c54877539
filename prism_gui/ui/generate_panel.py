"""Generate panel: generator, sampler and energy-guidance (EDA) settings; a generation job with
pause/cancel, ETA, a strip of the latest images and a live plot of the mean energy per batch."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QIcon
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
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from prism_gui.engine.generation.load import SCHEDULERS  # a light module: diffusers loads inside its functions
from prism_gui.engine.project.demo_settings import FULL
from prism_gui.ui.common import Studio, button, dspin, error_label, load_tile, pg, pixmap, show_error, spin

SCHEDULER_NAMES = list(SCHEDULERS)
STRIP_MAX = 120
TILE = 64


def generation_job(settings: dict, prompts, teacher, plain: bool, cancel) -> Iterator:
    """Runs in the worker thread: builds the engine spec and drives ``run_generation``."""
    from prism_gui.engine.generation.energies import EnergySpec
    from prism_gui.engine.generation.job import GenerateSpec, run_generation
    from prism_gui.engine.generation.sampler import GuidanceSpec, SamplerSettings
    from prism_gui.engine.project.actions import generator
    from prism_gui.engine.prompts import load_bank, plain_prompts
    from prism_gui.engine.teachers.spec import TeacherSpec

    s = settings
    teacher = teacher or TeacherSpec.from_value(s["teacher"]).load()
    if plain or prompts is None:
        prompts = plain_prompts(teacher.class_names, load_bank(s.get("bank", "digits")))
    guidance = GuidanceSpec(energy=EnergySpec(s["energy_weights"]), scale=s["guidance_scale"],
                            window=tuple(s["guidance_window"]), mode=s["guidance_mode"],
                            micro_batch=int(s.get("guidance_micro_batch", 0)),
                            checkpoint_decoder=bool(s.get("checkpoint_decoder", False)))
    spec = GenerateSpec(project=s["project"], run=s["run"], generator=s["generator"], teacher=s["teacher"],
                        images_per_class=s["images_per_class"], batch_size=s["batch_size"], seed=s["seed"],
                        sampler=SamplerSettings(steps=s["steps"], cfg=s["cfg"], scheduler=s["scheduler"]),
                        guidance=guidance, device=s.get("device", "auto"), precision=s.get("precision", "fp32"))
    comp = generator(s["generator"])
    yield from run_generation(spec, prompts, teacher=teacher, components=comp, cancel=cancel)


class GeneratePanel(QWidget):
    images_added = Signal(list)

    def __init__(self, studio: Studio, parent: QWidget | None = None):
        super().__init__(parent)
        self.studio = studio
        self.job = None
        self.curves: dict[str, tuple[list, list, object]] = {}
        self._dirty = False

        gen = QGroupBox("Generator and sampler")
        f = QFormLayout(gen)
        self.generator = QComboBox()
        self.generator.setEditable(True)
        self.generator.addItems(["digits"])
        self.generator.setToolTip("'digits' (the built-in Digits prior), a local diffusers folder or a Hugging Face "
                                  "id in the local cache (e.g. a Stable Diffusion model)")
        browse = QPushButton("Folder…")
        browse.setToolTip("Choose a local diffusers folder (with unet/, scheduler/, text_encoder/, …)")
        browse.clicked.connect(self._browse_generator)
        grow = QHBoxLayout()
        grow.addWidget(self.generator, 1)
        grow.addWidget(browse)
        f.addRow("Generator", grow)
        self.scheduler = QComboBox()
        self.scheduler.addItems(SCHEDULER_NAMES)
        self.scheduler.setToolTip("Diffusers scheduler (DDIM is deterministic and works with guidance)")
        f.addRow("Scheduler", self.scheduler)
        self.steps = spin(1, 1000, 15, "Denoising steps per image")
        f.addRow("Steps", self.steps)
        self.cfg = dspin(0.0, 30.0, 3.0, "Classifier-free guidance scale", 0.5, 2)
        f.addRow("CFG", self.cfg)
        self.per_class = spin(1, 100000, 20, "Images to generate per class")
        f.addRow("Images per class", self.per_class)
        self.batch = spin(1, 4096, 50, "Images per batch (memory vs. speed)")
        f.addRow("Batch size", self.batch)
        self.device = QComboBox()
        self.device.addItems(["auto", "cuda", "mps", "cpu"])
        self.device.setToolTip("Where to sample: 'auto' takes a CUDA GPU, then Apple MPS, then the CPU")
        f.addRow("Device", self.device)
        self.precision = QComboBox()
        self.precision.addItems(["fp32", "fp16", "bf16"])
        self.precision.setToolTip("Generator precision on a GPU: fp16/bf16 halve its memory and are faster "
                                  "(the CPU always samples in fp32)")
        f.addRow("Precision", self.precision)
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
        brow = QHBoxLayout()
        for b in (self.start_button, self.pause_button, self.cancel_button):
            brow.addWidget(b)

        left = QWidget()
        ll = QVBoxLayout(left)
        ll.addWidget(gen)
        ll.addWidget(eda)
        ll.addLayout(brow)
        ll.addWidget(self.note)
        ll.addWidget(self.error)
        ll.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(left)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(360)
        scroll.setMaximumWidth(440)

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
        studio.project_changed.connect(self._on_project)
        if studio.ready:
            self._fill_energies()

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
        self.generator.setCurrentText(str(g.get("generator", "digits")))
        self.scheduler.setCurrentText(str(g.get("scheduler", "ddim")))
        self.steps.setValue(int(g.get("steps", 15)))
        self.cfg.setValue(float(g.get("cfg", 3.0)))
        self.per_class.setValue(int(g.get("images_per_class", 20)))
        self.batch.setValue(int(g.get("batch_size", 50)))
        self.seed.setValue(int(g.get("seed", 0)))
        self.device.setCurrentText(str(g.get("device", "auto")))
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
        return {"generator": self.generator.currentText().strip() or "digits",
                "scheduler": self.scheduler.currentText(), "steps": self.steps.value(), "cfg": self.cfg.value(),
                "images_per_class": self.per_class.value(), "batch_size": self.batch.value(),
                "seed": self.seed.value(), "guidance_scale": self.scale.value(),
                "guidance_window": [self.win_lo.value(), self.win_hi.value()], "guidance_mode": self.mode.currentText(),
                "guidance_micro_batch": self.micro.value(), "checkpoint_decoder": self.ckpt_decoder.isChecked(),
                "energy_weights": weights or {"class": 1.0}, "device": self.device.currentText(),
                "precision": self.precision.currentText()}

    def fill_from_image(self, row: dict) -> None:
        """'Generate again with these settings': the settings stored with a catalog image."""
        s = row.get("settings") or {}
        sm, gd = s.get("sampler", {}), s.get("guidance", {})
        self.generator.setCurrentText(str(row.get("generator", "digits")))
        if sm.get("scheduler"):
            self.scheduler.setCurrentText(str(sm["scheduler"]))
        self.steps.setValue(int(sm.get("steps", self.steps.value())))
        self.cfg.setValue(float(sm.get("cfg", self.cfg.value())))
        self.seed.setValue(int(row.get("seed", 0)) // 10_000_000)
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

    def _browse_generator(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Diffusers folder")
        if path:
            self.generator.setCurrentText(path)

    # ---- the job
    def start(self):
        if self.studio.project is None:
            show_error(self.error, "Open or create a project first (File menu).")
            return None
        show_error(self.error, "")
        s = self.settings()
        run = self.run_name.text().strip() or self.next_run_name()
        plain = self.prompt_source.currentIndex() == 1
        if not plain and self.studio.prompts is None:
            show_error(self.error, "No prompts yet: expand them in the Prompts panel or choose plain class names.")
            return None
        project = self.studio.project
        project.section("generate").update(s)
        project.save()
        s.update(project=str(project.root), run=run, teacher=project.teacher_value(),
                 bank=project.spec.get("prompts", {}).get("bank"))
        teacher, prompts = self.studio.teacher, self.studio.prompts
        self.job = self.studio.submit(f"Generate '{run}'", lambda token: generation_job(s, prompts, teacher, plain,
                                                                                         token))
        old = self.curves.pop(run, None)
        if old is not None and old[2] is not None:
            self.plot.removeItem(old[2])
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
        self.pause_button.setEnabled(running)
        self.cancel_button.setEnabled(running)
        if not running:
            self.pause_button.setChecked(False)

    def _on_paused(self, paused: bool) -> None:
        self.state.setText("paused" if paused else "running")
        self.pause_button.setChecked(paused)

    def _ended(self, outcome: str) -> None:
        self._set_running(False)
        self.state.setText(outcome)
        if outcome == "finished":
            self.run_name.setText(self.next_run_name())
        self.studio.catalog_changed.emit()

    def _on_event(self, run: str, ev) -> None:
        if ev.total:
            self.progress.setMaximum(ev.total)
            self.progress.setValue(ev.step)
            frac = ""
            if "batch_step" in ev.data:
                frac = f" (step {ev.data['batch_step']}/{ev.data['batch_steps']})"
            self.progress.setFormat(f"{ev.step}/{ev.total} images{frac}")
        if "eta_s" in ev.data:
            self.eta.setText(f"ETA {ev.data['eta_s']:.0f} s")
        if "mean_energy" in ev.data and "new_ids" in ev.data:  # one point per stored batch
            xs, ys, _curve = self.curves.setdefault(run, ([], [], None))
            xs.append(ev.step)
            ys.append(ev.data["mean_energy"])
            self._dirty = True
        if ev.data.get("new_ids"):
            self.add_images(ev.data["new_ids"])

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
