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


def test_a_project_with_many_runs_gets_a_readable_report(tmp_path, recwarn):
    """Found by the soak: one legend row per run outgrew the figure (matplotlib's "Tight layout not
    applied", an error under this suite's warning filters).  The latest runs are drawn, and said."""
    import numpy as np

    from prism_gui.engine.data.catalog import Catalog
    from prism_gui.engine.jobs import run_to_completion
    from prism_gui.engine.project.project import Project
    from prism_gui.engine.project.report import MAX_HIST_RUNS, report_job

    root = Project.create(tmp_path / "p").root
    with Catalog(root) as cat:
        for r in range(12):
            cat.start_run(f"generation-run-{r}", "generate", {})
            for i in range(3):
                cat.add_image(f"generation-run-{r}", i, np.zeros((8, 8, 3), np.uint8), class_index=i,
                              class_name="zero", prompt="p", seed=i, generator="g", settings={},
                              score={"energy": 1.0 + i + r, "confidence": 0.5})
        for d in range(9):
            cat.start_run(f"distillation-run-{d}", "distill", {})
            for step in range(1, 4):
                cat.log_metrics(f"distillation-run-{d}", step, {"test_accuracy": 0.5 + 0.1 * step, "loss": 1 / step})
    html = run_to_completion(report_job(root))[-1].data["report"].to_html()
    assert f"The histograms show the latest {MAX_HIST_RUNS} runs" in html
    assert f"The latest {MAX_HIST_RUNS} of 9 runs" in html
    assert not [w for w in recwarn if "layout" in str(w.message).lower()]
