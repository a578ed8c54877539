"""Curate's precision, recall, density and coverage of the non-rejected images against the
project's real evaluation set, in the teacher's features (a job)."""

from __future__ import annotations

from pathlib import Path

from prism_gui.ui.common import show_error


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
        self.prdc.setText("<table cellspacing=4><tr><th></th><th>precision</th><th>recall</th><th>density</th>"
                          "<th>coverage</th></tr>" + "".join(rows) + "</table>")
        # the per-class table shows the (last) run's per-class values
        done = [m for m in ev.data["results"].values() if "per_class" in m]
        if done:
            self._per_class = done[-1]["per_class"]
            self.fill_class_table()
