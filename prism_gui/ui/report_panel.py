"""Report panel: one stakeholder page (headline numbers, samples per class, energy histograms,
accuracy curves), exported as a self-contained HTML file with its images embedded."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QColor, QImage, QPainter, QTextDocument
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QPushButton, QTextBrowser, QVBoxLayout, QWidget

from prism_gui.ui.common import Studio, error_label, show_error

EMPTY = ("<h2 style='color:#345'>No report yet</h2><p>Generate images, curate them and distil a student, "
         "then press <b>Build report</b>. Or press <b>Play demo</b> in the toolbar to run the whole Digits "
         "pipeline.</p>")


class ReportPanel(QWidget):
    def __init__(self, studio: Studio, parent: QWidget | None = None):
        super().__init__(parent)
        self.studio = studio
        self.report = None
        self.job = None
        self.build_button = QPushButton("Build report")
        self.build_button.setToolTip("Collect the project's numbers and figures (a job)")
        self.build_button.clicked.connect(self.build)
        self.export_button = QPushButton("Export HTML…")
        self.export_button.setToolTip("One self-contained HTML file with its images embedded")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(lambda: self.export())
        self.status = QLabel("")
        self.error = error_label()
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(True)
        self.browser.setHtml(EMPTY)
        row = QHBoxLayout()
        row.addWidget(self.build_button)
        row.addWidget(self.export_button)
        row.addWidget(self.status, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(row)
        lay.addWidget(self.error)
        lay.addWidget(self.browser, 1)
        studio.project_changed.connect(lambda _p: self._reset())

    def _reset(self) -> None:
        self.report = None
        self.export_button.setEnabled(False)
        self.browser.setHtml(EMPTY)

    def build(self):
        if self.studio.project is None:
            return None
        from prism_gui.engine.project.report import report_job

        root = self.studio.project.root
        show_error(self.error, "")
        self.build_button.setEnabled(False)
        self.status.setText("building…")
        self.job = self.studio.submit("Build report", lambda token: report_job(root, token))
        self.job.finished.connect(lambda ev: self.show_report(ev.data["report"]))
        self.job.failed.connect(lambda msg, _d: show_error(self.error, msg))
        self.job.ended.connect(lambda _o: (self.build_button.setEnabled(True), self.status.setText("")))
        return self.job

    def show_report(self, report) -> None:
        self.report = report
        doc = self.browser.document()
        for name, data in report.images.items():
            img = QImage.fromData(data, "PNG")
            doc.addResource(QTextDocument.ResourceType.ImageResource, QUrl(name), img)
        self.browser.setHtml(report.to_html(embed=False))
        self.export_button.setEnabled(True)

    def render_page(self, path: str | Path, width: int = 1500) -> Path | None:
        """The whole report as one PNG (what a browser shows of the exported HTML)."""
        if self.report is None:
            return None
        doc = QTextDocument()
        for name, data in self.report.images.items():
            doc.addResource(QTextDocument.ResourceType.ImageResource, QUrl(name), QImage.fromData(data, "PNG"))
        doc.setHtml(self.report.to_html(embed=False))
        doc.setTextWidth(width)
        size = doc.size().toSize()
        img = QImage(size, QImage.Format.Format_RGB32)
        img.fill(QColor("white"))
        painter = QPainter(img)
        doc.drawContents(painter)
        painter.end()
        img.save(str(path))
        return Path(path)

    def export(self, path: str | None = None) -> Path | None:
        if self.report is None:
            return None
        if not path:
            path, _ = QFileDialog.getSaveFileName(self, "Export report", "prism-report.html", "HTML (*.html)")
        if not path:
            return None
        out = self.report.save_html(path)
        self.status.setText(f"saved {out}")
        return out
