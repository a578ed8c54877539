"""The app remembers (issue 28): reopening a project brings back the Distill curves, the latest
result with Export of its student, the Generate energy chart, and offers an interrupted
generation for resume under its own name; the charts keep the latest runs only."""

import json

import numpy as np
import pytest

from prism_gui.engine.project.project import Project
from prism_gui.ui.distill_curves import PLOTTED_RUNS
from prism_gui.ui.testing import fake_catalog


def test_reopening_a_project_brings_back_its_distillations_and_their_student(distill_panel_on, qtbot, tmp_path):
    panel = distill_panel_on(fake_catalog(tmp_path / "proj", 100))
    panel.epochs.setValue(2)
    panel.batch.setValue(32)
    job = panel.start()
    qtbot.waitUntil(lambda: job.state == "finished", timeout=120000)
    live = panel.runs["distill-1"]
    loss, acc = list(live.loss), list(live.acc)
    result = job.last_event.data["result"]

    again = distill_panel_on(Project.open(tmp_path / "proj"))  # a restart: a new app on the same folder
    back = again.runs["distill-1"]
    assert back.loss == loss and back.acc == acc  # the same curves, from the catalog's metrics
    assert f"student accuracy <b>{100 * result['test_accuracy']:.1f}%" in again.result.text()
    assert again.export_button.isEnabled() and again.student is None  # loaded from the run's folder on export
    ejob = again.export(str(tmp_path / "export"))
    qtbot.waitUntil(lambda: ejob.state == "finished", timeout=60000)
    assert (tmp_path / "export" / "student" / "model.safetensors").exists()
    assert again.run_name.text() == "distill-2"


def test_the_curves_keep_the_latest_runs_only(distill_panel_on, qtbot, tmp_path):
    panel = distill_panel_on(fake_catalog(tmp_path / "proj", 20))
    panel.epochs.setValue(1)
    for _ in range(PLOTTED_RUNS + 2):
        job = panel.start()
        qtbot.waitUntil(lambda j=job: j.state == "finished", timeout=120000)
        qtbot.waitUntil(panel.start_button.isEnabled, timeout=5000)
    assert list(panel.runs) == [f"distill-{i}" for i in range(3, PLOTTED_RUNS + 3)]
    panel._dirty = True
    panel.redraw()
    # the chart holds the latest runs' items only: the dropped runs left no curve or legend entry
    assert len(panel.loss_plot.listDataItems()) == 2 * PLOTTED_RUNS
    assert len(panel.acc_plot.listDataItems()) == 2 * PLOTTED_RUNS


def test_an_interrupted_generation_is_offered_for_resume_and_its_curve_comes_back(generate_panel, qtbot, tmp_path):
    panel = generate_panel
    project = panel.studio.project
    cat = panel.studio.catalog
    spec = {"images_per_class": 5}
    cat.start_run("run-1", "generate", spec)
    for i, (k, e) in enumerate([(0, 0.2), (1, 0.8)]):
        cat.add_image("run-1", i, np.zeros((8, 8, 1), np.uint8), class_index=k, class_name=str(k), prompt="p",
                      seed=i, generator="digits", settings={}, score={"energy": e, "energies": {"class": e}})
    cat.log_metrics("run-1", 2, {"mean_energy": 0.5})
    cat.finish_run("run-1", "interrupted")
    panel.studio.set_project(Project.open(project.root))
    assert panel.run_name.text() == "run-1" and "interrupted" in panel.note.text()
    assert "resumes it" in panel.note.text()
    assert panel.curves["run-1"][:2] == ([2], [0.5])  # the class-balanced mean after the stored batch
    cat = panel.studio.catalog
    cat.start_run("run-2", "generate", json.loads(json.dumps(spec)))
    cat.finish_run("run-2")
    panel.studio.set_project(Project.open(project.root))
    assert panel.run_name.text() == "run-3"  # the latest run finished: a new name


def test_the_energy_chart_weighs_classes_equally_so_runs_compare(generate_panel):
    """Issue 28: a batch that happens to hold hard classes must not make a run look worse: the chart
    shows the mean over classes of each class's mean energy so far, live and after a restart."""
    from prism_gui.engine.events import BatchStored
    from prism_gui.engine.jobs import Event
    from prism_gui.ui.generate_settings import class_balanced_means

    panel = generate_panel
    cat = panel.studio.catalog
    cat.start_run("run-1", "generate", {})
    ids = []
    for i, (k, e) in enumerate([(0, 0.1), (0, 0.1), (0, 0.1), (1, 1.0)]):  # class 0 three times, class 1 once
        ids += [cat.add_image("run-1", i, np.zeros((8, 8, 1), np.uint8), class_index=k, class_name=str(k),
                              prompt="p", seed=i, generator="digits", settings={},
                              score={"energy": e, "energies": {"class": e}})]
    panel._on_event("run-1", Event("generate", 2, 4, "", BatchStored(ids[:2], None, 0.1)))
    panel._on_event("run-1", Event("generate", 4, 4, "", BatchStored(ids[2:], None, 0.55)))
    xs, ys, _ = panel.curves["run-1"]
    assert xs == [2, 4] and ys == pytest.approx([0.1, 0.55])  # (0.1 + 1.0) / 2, not the batch's mean 0.325
    points = class_balanced_means([0, 0, 0, 1], [0.1, 0.1, 0.1, 1.0], [2, 4])
    assert [n for n, _ in points] == [2, 4] and [y for _, y in points] == pytest.approx([0.1, 0.55])
