"""Curate panel: the gallery model over a large catalog, filters, keyboard curation with undo,
threshold rejection in one undoable step, the detail pane and 'generate again'."""

import numpy as np
import pytest
from PySide6.QtCore import Qt

from prism_gui.ui.common import make_studio
from prism_gui.ui.curate_panel import DETAIL_PX, CuratePanel
from prism_gui.ui.gallery import IdRole, ImageRole, RowRole
from prism_gui.ui.testing import fake_catalog


@pytest.fixture
def panel(qtbot, tmp_path):
    studio = make_studio()
    p = CuratePanel(studio)
    qtbot.addWidget(p)
    p.resize(1300, 800)
    studio.set_project(fake_catalog(tmp_path / "proj", 400))
    p.show()
    return p


def test_gallery_model_on_20000_rows_filters_and_pages_lazily(qtbot, tmp_path):
    from prism_gui.ui.gallery import PAGE, GalleryModel

    project = fake_catalog(tmp_path / "big", 20000)
    cat = project.catalog()
    model = GalleryModel()
    model.set_catalog(cat)
    assert model.rowCount() == 20000
    assert not model._pages  # nothing fetched until a row is asked for
    model.set_query({"classes": [3], "energy_max": 0.5}, sort="energy")
    n = model.rowCount()
    assert 0 < n < 2000
    energies = [model.data(model.index(i), RowRole)["energy"] for i in range(min(n, 50))]
    assert energies == sorted(energies) and all(e <= 0.5 for e in energies)
    assert len(model._pages) == 1
    model.set_query({"text": "bold", "statuses": ["unreviewed"]}, sort="confidence", descending=True)
    assert model.rowCount() == 10000
    last = model.index(model.rowCount() - 1)
    assert model.data(last, RowRole)["class_name"]
    assert len(model._pages) == 1 and (model.rowCount() - 1) // PAGE in model._pages
    # thumbnails: a placeholder first, the decoded tile once the thread pool delivered it
    first = model.index(0)
    assert model.data(first, ImageRole) is model.placeholder
    with qtbot.waitSignal(model.dataChanged, timeout=5000):
        pass
    assert model.data(first, ImageRole) is not model.placeholder
    assert model.data(first, ImageRole).width() == model.tile
    model.wait_for_thumbnails()
    cat.close()


def test_filters_sort_and_counts(qtbot, panel):
    assert panel.model.rowCount() == 400 and "400 of 400" in panel.count.text()
    panel.run.setCurrentText("prism")
    panel.klass.setCurrentIndex(1)  # zero
    panel.apply_filters()
    assert panel.model.rowCount() == 20
    rows = [panel.model.data(panel.model.index(i), RowRole) for i in range(20)]
    assert {r["run"] for r in rows} == {"prism"} and {r["class_index"] for r in rows} == {0}
    panel.text.setText("bold")
    qtbot.waitUntil(lambda: panel.model.rowCount() == 10, timeout=3000)
    assert len(panel.h_energy.values) == 20  # histograms follow the run/class, not the text


def test_keyboard_curation_and_undo(qtbot, panel):
    view = panel.view
    view.setFocus()
    view.setCurrentIndex(panel.model.index(0))
    first = panel.model.index(0).data(IdRole)
    qtbot.keyClick(view, Qt.Key.Key_K)
    assert panel.cat.get(first)["status"] == "keep"
    assert view.currentIndex().row() == 1  # moved on
    second = view.currentIndex().data(IdRole)
    qtbot.keyClick(view, Qt.Key.Key_R)
    assert panel.cat.get(second)["status"] == "reject"
    qtbot.keyClick(view, Qt.Key.Key_Right)
    assert view.currentIndex().row() == 3
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert panel.cat.get(second)["status"] == "unreviewed"
    assert panel.cat.get(first)["status"] == "keep"


def test_threshold_rejection_is_one_undoable_step(qtbot, panel):
    panel.run.setCurrentText("plain")
    panel.apply_filters()
    e = panel.h_energy.values
    panel.h_energy.set_threshold(float(sorted(e)[150]))
    expected = int((e > panel.h_energy.threshold).sum())
    assert str(expected) in panel.beyond.text()
    panel.reject_energy.click()
    assert panel.cat.count(statuses=["reject"]) == expected
    assert panel.cat.count(statuses=["reject"], run="prism") == 0
    assert "Rejected" in panel.message.text()
    panel.undo()
    assert panel.cat.count(statuses=["reject"]) == 0
    panel.h_conf.set_threshold(0.4)
    panel.reject_conf.click()
    assert panel.cat.count(statuses=["reject"]) == panel.cat.count(run="plain", confidence_max=0.3999999)


def test_detail_pane_and_generate_again(qtbot, panel):
    panel.view.setCurrentIndex(panel.model.index(5))
    assert "Prompt:" in panel.detail.toPlainText() and "top-5" in panel.detail.toPlainText()
    assert panel.image.pixmap().width() == DETAIL_PX  # the full image, larger than its tile
    with qtbot.waitSignal(panel.regenerate, timeout=1000) as blocker:
        panel.again.click()
    row = blocker.args[0]
    assert row["settings"]["sampler"]["steps"] == 4


def test_switching_projects_clears_the_selected_image(qtbot, panel, tmp_path):
    """Issue 28: after another project opens, the previous project's image and its "Generate again"
    must not stay in the detail pane."""
    panel.view.setCurrentIndex(panel.model.index(5))
    assert panel.again.isEnabled() and panel.detail.toPlainText()
    panel.studio.set_project(fake_catalog(tmp_path / "other", 40))
    assert not panel.again.isEnabled() and panel.detail.toPlainText() == ""
    assert panel.image.pixmap().isNull()
    with qtbot.assertNotEmitted(panel.regenerate):
        panel.again.click()


def test_keep_lowest_per_class_is_one_undoable_step(qtbot, panel):
    panel.run.setCurrentText("prism")
    panel.apply_filters()
    panel.keep_n.setValue(5)
    panel.keep_by.setCurrentIndex(panel.keep_by.findData("lowest"))
    panel.keep_button.click()
    qtbot.waitUntil(lambda: panel.keep_button.isEnabled(), timeout=20000)
    assert "rejected 150" in panel.message.text()
    assert panel.cat.count(run="prism", statuses=["reject"]) == 150
    assert panel.cat.count(run="plain", statuses=["reject"]) == 0
    kept = panel.cat.query(columns="class_index, energy", run="prism", statuses=["unreviewed"], classes=[0])
    rejected = panel.cat.column("energy", run="prism", statuses=["reject"], classes=[0])
    assert len(kept) == 5 and max(r["energy"] for r in kept) <= rejected.min()
    panel.undo()
    assert panel.cat.count(statuses=["reject"]) == 0


def test_precision_recall_numbers_say_what_they_mean(qtbot, tmp_path):
    """Issue 28: P/R/D/C with their ranges on the panel and what each means on hover; the energy
    histogram says lower is better."""
    from types import SimpleNamespace

    from prism_gui.ui.common import make_studio
    from prism_gui.ui.curate_prdc import PRDC_HELP

    studio = make_studio()
    panel = CuratePanel(studio)
    qtbot.addWidget(panel)
    studio.set_project(fake_catalog(tmp_path / "proj", 20))
    m = {"precision": 0.91, "recall": 0.42, "density": 1.07, "coverage": 0.66}
    panel._show_prdc(SimpleNamespace(data={"results": {"prism": m}}))
    text, tip = panel.prdc.text(), panel.prdc.toolTip()
    assert "0.910" in text and "higher is better" in text and "about 1" in text
    assert all(f"{k}: {v}" in tip for k, v in PRDC_HELP.items())
    assert "Lower is closer to what the teacher knows" in panel.h_energy.plot.toolTip()


def test_a_bulk_reject_asks_before_it_overrides_images_kept_by_hand(qtbot, tmp_path, monkeypatch):
    """Issue 28: rejecting beyond a line says how many hand-kept images it would reject and asks;
    spare keeps them, reject-all rejects them, cancel changes nothing."""
    from prism_gui.ui.common import make_studio

    studio = make_studio()
    panel = CuratePanel(studio)
    qtbot.addWidget(panel)
    studio.set_project(fake_catalog(tmp_path / "proj", 200))
    cat = panel.cat
    thr = float(np.median(cat.column("energy")))
    above = cat.beyond(thr)
    cat.set_status(above[:3], "keep")
    asked = []
    for answer, kept_after in ((None, 3), (True, 3), (False, 0)):
        monkeypatch.setattr(panel, "ask_spare_kept", lambda k, n, a=answer: (asked.append((k, n)), a)[1])
        if answer is not None:
            cat.undo() if cat.count(statuses=["reject"]) else None
        panel.reject_beyond("energy", thr)
        assert cat.count(ids=above[:3], statuses=["keep"]) == kept_after, answer
        rejected = cat.count(ids=above, statuses=["reject"])
        assert rejected == (0 if answer is None else len(above) - kept_after), answer
    assert asked[0] == (3, len(above))
