"""Report panel: headline numbers, figures, and one self-contained HTML export."""

from prism_gui.ui.common import make_studio
from prism_gui.ui.report_panel import ReportPanel
from prism_gui.ui.testing import fake_catalog


def test_report_builds_and_exports_self_contained_html(qtbot, tmp_path):
    project = fake_catalog(tmp_path / "proj", 300)
    with project.catalog() as cat:
        cat.start_run("distill-1", "distill", {"runs": ["prism"]})
        for epoch in range(3):
            cat.log_metrics("distill-1", epoch * 10, {"loss": 1.0 / (epoch + 1)})
            cat.log_metrics("distill-1", epoch * 10 + 9, {"test_accuracy": 0.5 + 0.1 * epoch, "agreement": 0.6})
        cat.finish_run("distill-1")
    studio = make_studio()
    panel = ReportPanel(studio)
    qtbot.addWidget(panel)
    studio.set_project(project)
    assert "No report yet" in panel.browser.toPlainText()
    job = panel.build()
    qtbot.waitUntil(lambda: job.state == "finished", timeout=60000)
    qtbot.waitUntil(lambda: panel.report is not None, timeout=5000)
    text = panel.browser.toPlainText()
    assert "Teacher accuracy" in text and "99.7%" in text and "70.0%" in text
    assert set(panel.report.images) == {"samples.png", "energy.png", "accuracy.png"}
    out = panel.export(str(tmp_path / "report.html"))
    html = out.read_text()
    assert html.count("data:image/png;base64,") == 3 and "Student accuracy" in html
    page = panel.render_page(tmp_path / "page.png")
    from PIL import Image

    assert Image.open(page).height > 600
