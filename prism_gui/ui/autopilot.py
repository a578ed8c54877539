"""Demo autopilot: the whole Digits method, driven through the panels' own controls and jobs,
each panel shown while its stage runs; optionally a screenshot of every panel.

Stages: load the Digits teacher → expand prompts (DPE) → generate with plain prompts (no
guidance) → generate with PRISM (DPE + energy guidance, oversampled) → curate by an energy
threshold and measure precision/recall → distil a student on each set → build the report.
Settings come from the engine's ``DemoSpec`` (``DemoSpec.quick()`` with ``quick``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QApplication


class Autopilot(QObject):
    stage_changed = Signal(str)
    done = Signal(bool)

    def __init__(self, win, quick: bool = True, screenshots: str | None = None, quit_when_done: bool = False,
                 overrides: dict | None = None):
        super().__init__(win)
        self.win = win
        self.quick = quick
        self.shots = Path(screenshots) if screenshots else None
        self.quit_when_done = quit_when_done
        self.running = False
        self.failed: str | None = None
        self._i = 0
        self.runs: dict[str, str] = {}
        self.spec = {**self._spec(), **(overrides or {})}
        self.stages = [
            ("overview", "world", self.overview),
            ("teacher", "teacher", self.load_teacher),
            ("prompts", "prompts", self.expand_prompts),
            ("prompts: pilot scoring", "prompts", self.score_prompts),
            ("generate: plain prompts", "generate", self.generate_plain),
            ("generate: PRISM", "generate", self.generate_prism),
            ("curate: energy threshold", "curate", self.curate),
            ("curate: precision / recall", "curate", self.prdc),
            ("map", "map", self.map),
            ("map: near-duplicates", "map", self.map_duplicates),
            ("map: holes", "map", self.map_holes),
            ("distill: plain prompts", "distill", self.distill_plain),
            ("distill: PRISM", "distill", self.distill_prism),
            ("report", "report", self.report_job),
        ]
        self.shot_after = {"overview": "00-overview", "teacher": "01-teacher", "prompts: pilot scoring": "02-prompts",
                           "generate: PRISM": "03-generate", "curate: precision / recall": "04-curate",
                           "map": "04b-map", "map: near-duplicates": "04c-duplicates", "map: holes": "04d-holes",
                           "distill: PRISM": "05-distill", "report": "06-report"}

    def _spec(self) -> dict:
        from prism_gui.engine.project.demo_settings import demo_settings  # plain data: no torch on the GUI thread

        return {**demo_settings(self.quick), "batch_size": 50, "world_per_class": 6, "map_method": "auto"}

    # ------------------------------------------------------------------ driving
    def start(self) -> None:
        self.running = True
        self.failed = None
        self._i = 0
        if self.shots is not None:
            self.shots.mkdir(parents=True, exist_ok=True)
        self.win.statusBar().showMessage("Demo: starting")
        QTimer.singleShot(100, self._next)

    def fail(self, message: str) -> None:
        if self.running and self.failed is None:
            self.failed = message
            self._finish(False)

    def _next(self) -> None:
        if not self.running:
            return
        if self._i >= len(self.stages):
            self._finish(True)
            return
        name, panel, fn = self.stages[self._i]
        self._i += 1
        self.win.show_panel(panel)
        self.stage_changed.emit(name)
        self.win.statusBar().showMessage(f"Demo: {name}")
        try:
            job = fn()
        except Exception as e:  # a control refused: stop the demo with the reason
            self.fail(f"{name}: {type(e).__name__}: {e}")
            return
        if job is None:
            QTimer.singleShot(300, lambda: self._after(name, "finished"))
        else:
            job.ended.connect(lambda outcome, n=name: QTimer.singleShot(400, lambda: self._after(n, outcome)))

    def _after(self, name: str, outcome: str) -> None:
        if not self.running:
            return
        if outcome != "finished":
            self.fail(f"{name}: job {outcome}")
            return
        shot = self.shot_after.get(name)
        if shot and self.shots is not None:
            self.win.curate.model.wait_for_thumbnails(3000)
            QApplication.processEvents()
            self.win.grab().save(str(self.shots / f"{shot}.png"))
        self._next()

    def _finish(self, ok: bool) -> None:
        self.running = False
        msg = "Demo finished." if ok else f"Demo stopped: {self.failed}"
        self.win.statusBar().showMessage(msg)
        self.done.emit(ok)
        if self.quit_when_done:
            if not ok:
                print(msg, flush=True)
            QTimer.singleShot(200, lambda: QApplication.instance().exit(0 if ok else 1))

    # ------------------------------------------------------------------ stages (the panels' own controls)
    def overview(self):
        w = self.win.world
        w.count.setValue(self.spec["world_per_class"])
        return self.win.sample_prior(w.count.value())

    def load_teacher(self):
        t = self.win.teacher
        t.set_kind("digits")
        return t.load()

    def expand_prompts(self):
        p = self.win.prompts
        p.per_class.setValue(self.spec["prompts_per_class"])
        p.seed.setValue(self.spec["seed"])
        for cb in p.axis_checks.values():
            cb.setChecked(True)
        return p.expand(plain=False)

    def score_prompts(self):
        p = self.win.prompts
        g = self.win.studio.project.section("generate")
        g.update(steps=self.spec["steps"], cfg=self.spec["cfg"], scheduler=self.spec["scheduler"], generator="digits")
        p.keep_fraction.setValue(self.spec["keep_prompt_fraction"])
        return p.score()

    def _generate(self, base: str, per_class: int, guided: bool):
        g = self.win.generate
        s = self.spec
        g.generator.setCurrentText("digits")
        g.scheduler.setCurrentText(s["scheduler"])
        g.steps.setValue(s["steps"])
        g.cfg.setValue(s["cfg"])
        g.per_class.setValue(per_class)
        g.batch.setValue(s["batch_size"])
        g.seed.setValue(s["seed"] + (1 if guided else 0))
        g.prompt_source.setCurrentIndex(0 if guided else 1)
        g.scale.setValue(s["guidance_scale"] if guided else 0.0)
        g.win_lo.setValue(s["guidance_window"][0])
        g.win_hi.setValue(s["guidance_window"][1])
        g.mode.setCurrentText(s["guidance_mode"])
        for name, cb in g.energy_checks.items():
            cb.setChecked(name == "class")
            g.energy_weights[name].setValue(1.0)
        run = g.next_run_name(base)
        self.runs[base] = run
        g.run_name.setText(run)
        return g.start()

    def generate_plain(self):
        return self._generate("plain", self.spec["images_per_class"], guided=False)

    def generate_prism(self):
        return self._generate("prism", self.spec["images_per_class"] * self.spec["oversample"], guided=True)

    def curate(self):
        c = self.win.curate
        c.refresh()
        c.run.setCurrentText(self.runs["prism"])
        c.klass.setCurrentIndex(0)
        c.status.setCurrentText("all")
        c.sort.setCurrentText("energy (low first)")
        c.apply_filters()
        # oversample-and-select, as the engine's demo does (its strategy, from the same settings)

        def show(_ev=None):
            e = c.cat.column("energy", run=self.runs["prism"], statuses=["unreviewed", "keep"]).astype(float)
            c.h_energy.set_threshold(float(np.max(e)) if len(e) else 1.0)
            c.view.setCurrentIndex(c.model.index(0))
            c.view.setFocus()

        if self.spec["oversample"] <= 1:  # the demo trains on every image it generated
            show()
            return None
        c.keep_n.setValue(self.spec["images_per_class"])
        c.keep_by.setCurrentIndex(c.keep_by.findData(self.spec["select"]))
        job = c.select_per_class()
        job.finished.connect(show)
        return job

    def prdc(self):
        return self.win.curate.compute_prdc(runs=[self.runs["plain"], self.runs["prism"]])

    def map(self):
        m = self.win.map
        m.colour.setCurrentText("class")
        m.side_tabs.setCurrentIndex(0)
        return m.compute(self.spec["map_method"])

    def map_duplicates(self):
        m = self.win.map
        m.side_tabs.setCurrentIndex(1)
        m.colour.setCurrentText("density")
        job = m.find_duplicates()
        job.finished.connect(lambda _ev: m.dup_list.count() and m.dup_list.item(0).setSelected(True))
        return job

    def map_holes(self):
        m = self.win.map
        m.side_tabs.setCurrentIndex(0)
        m.colour.setCurrentText("class")
        m.select_points([])
        job = m.find_holes()
        job.finished.connect(lambda _ev: m.region_list.count() and m.region_list.item(0).setSelected(True))
        return job

    def _distill(self, base: str):
        d = self.win.distill
        s = self.spec
        d.student_name.setCurrentText(s["student"])
        d.epochs.setValue(s["epochs"])
        d.seed.setValue(s["seed"])
        d._fill_runs()
        d.select_runs([self.runs[base]])
        d.statuses.setCurrentIndex(0)
        d.run_name.setText(d.next_run_name(f"distill-{base}"))
        return d.start()

    def distill_plain(self):
        return self._distill("plain")

    def distill_prism(self):
        return self._distill("prism")

    def report_job(self):
        job = self.win.report.build()
        if self.shots is not None:
            job.finished.connect(lambda _ev: (self.win.report.export(str(self.shots / "report.html")),
                                              self.win.report.render_page(self.shots / "report-page.png")))
        return job
