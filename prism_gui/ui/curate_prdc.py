"""Curate's precision, recall, density and coverage of the non-rejected images against the
project's real evaluation set, in the teacher's features (a job)."""

from __future__ import annotations

from pathlib import Path

from prism_gui.ui.common import show_error

# what each number means, shown on hover (issue 28: numbers that speak)
PRDC_HELP = {
    "precision": "share of these images that lie within the real images' manifold (k nearest neighbours, in the "
                 "teacher's features): 1.0 = every image looks like real data to the teacher",
    "recall": "share of the real images within the synthetic images' manifold: 1.0 = the set covers all of the "
              "real data's variety",
    "density": "how many real neighbourhoods each image falls in, on average (about 1.0 for a set drawn like the "
               "real one; above 1: crowded where real data is dense)",
    "coverage": "share of real images that have a synthetic image among their nearest neighbours: 1.0 = no real "
                "image is left uncovered",
}


class PrdcSection:
    """A mixin of :class:`~prism_gui.ui.curate_panel.CuratePanel` (its studio, error label and ``prdc`` label)."""

    def compute_prdc(self, runs: list[str] | None = None):
        if self.studio.project is None:
            return None
        from prism_gui.engine.project.app_jobs import prdc_job

        if runs is None:
            runs = [self.run.currentText()] if self.run.currentIndex() > 0 else None
        root, teacher = self.studio.project.root, self.studio.teacher
        reference, mapping = self.studio.project.evaluation()
        if not reference:
            show_error(self.error, "Precision and recall compare the images with real ones: choose the project's "
                                   "evaluation set (Distill tab, 'Evaluate on'), e.g. ImageNet's val folder.")
            return None
        self.prdc_button.setEnabled(False)
        self.prdc.setText(f"computing against {Path(reference).name if reference != 'digits-test' else reference}…")
        self.job = self.studio.submit("Precision / recall", lambda token: prdc_job(
            root, runs, teacher, reference=reference, mapping=mapping, cancel=token))
        self.job.finished.connect(self._show_prdc)
        self.job.failed.connect(lambda msg, _d: (show_error(self.error, msg), self.prdc.setText("")))
        self.job.ended.connect(lambda _o: self.prdc_button.setEnabled(True))
        return self.job

    def _show_prdc(self, ev) -> None:
        rows = []
        for run, m in ev.data["results"].items():
            if "error" in m:
                rows.append(f"<tr><td>{run}</td><td colspan=4>{m['error']}</td></tr>")
            else:
                rows.append(f"<tr><td><b>{run}</b></td>" + "".join(
                    f"<td align='right'>{m[k]:.3f}</td>" for k in ("precision", "recall", "density", "coverage"))
                    + "</tr>")
        head = "".join(f"<th>{k}</th>" for k in PRDC_HELP)
        self.prdc.setText(f"<table cellspacing=4><tr><th></th>{head}</tr>" + "".join(rows) + "</table>"
                          "<span style='color:#345'>precision, recall, coverage: 0 to 1, higher is better; density: "
                          "about 1 for real-like data. Hover for what each means.</span>")
        self.prdc.setToolTip("\n\n".join(f"{k}: {v}" for k, v in PRDC_HELP.items()))
        # the per-class table shows the (last) run's per-class values
        done = [m for m in ev.data["results"].values() if "per_class" in m]
        if done:
            self._per_class = done[-1]["per_class"]
            self.fill_class_table()
