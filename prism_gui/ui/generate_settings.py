"""The Generate tab's settings: read from the project when it opens (with its latest runs' energy
curves and an interrupted run offered for resume), collected for a job, and filled from an image
("Generate again with these settings" in Curate)."""

from __future__ import annotations

from prism_gui.engine.project.demo_settings import FULL
from prism_gui.engine.seeds import base_seed

PLOTTED_RUNS = 8  # runs on the energy chart (a chart of more is unreadable, and each holds memory)


class GenerateSettings:
    """A mixin of :class:`~prism_gui.ui.generate_panel.GeneratePanel` (its fields and charts)."""

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
            steps, _ = cat.metrics(r["id"], "mean_energy")  # the stored batches' ends
            rows = cat.query(run=r["id"], columns="class_index, energy", sort="id")
            points = class_balanced_means([x["class_index"] for x in rows], [x["energy"] for x in rows], steps)
            if points:
                self.curves[r["id"]] = ([n for n, _ in points], [y for _, y in points], None)
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


def class_balanced_means(classes, energies, ends) -> list[tuple[int, float]]:
    """``(n, mean over the classes seen in the first n images of each class's mean energy)`` for
    each n in ``ends``: the Generate chart's points, the same for every run whatever its classes'
    mix (images without an energy are left out)."""
    sums: dict[int, list] = {}
    out, i = [], 0
    for end in sorted(int(e) for e in ends):
        while i < min(end, len(classes)):
            if energies[i] is not None:
                s = sums.setdefault(classes[i], [0.0, 0])
                s[0] += float(energies[i])
                s[1] += 1
            i += 1
        if sums:
            out.append((end, sum(t / n for t, n in sums.values()) / len(sums)))
    return out
