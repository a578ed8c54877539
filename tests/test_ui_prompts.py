"""Prompts panel: DPE expansion as a job, inline editing, add/remove, import/export, counts."""

from PySide6.QtCore import QItemSelectionModel, Qt

from prism_gui.engine.project.project import Project
from prism_gui.engine.prompts import PromptSet
from prism_gui.ui.common import make_studio
from prism_gui.ui.prompts_panel import PromptsPanel


def make_panel(qtbot, tmp_path):
    studio = make_studio()
    panel = PromptsPanel(studio)
    qtbot.addWidget(panel)
    studio.set_project(Project.create(tmp_path / "proj"))
    return studio, panel


def expand(qtbot, panel, plain=False):
    job = panel.expand(plain=plain)
    qtbot.waitUntil(lambda: job.state == "finished", timeout=30000)
    qtbot.waitUntil(panel.expand_button.isEnabled, timeout=5000)


def test_expand_fills_the_table_with_balanced_prompts_per_class(qtbot, tmp_path):
    studio, panel = make_panel(qtbot, tmp_path)
    assert set(panel.axis_checks) >= {"stroke", "slant", "position", "noise"}
    panel.per_class.setValue(4)
    panel.axis_checks["noise"].setChecked(False)
    expand(qtbot, panel)
    assert panel.model.rowCount() == 40
    assert "zero 4" in panel.counts.text()
    assert studio.prompts.meta["axes"] and "noise" not in studio.prompts.meta["axes"]
    assert (tmp_path / "proj" / "prompts.json").exists()
    panel.class_filter.setCurrentIndex(3)  # "two"
    assert panel.proxy.rowCount() == 4
    expand(qtbot, panel, plain=True)
    assert panel.model.rowCount() == 10


def test_inline_editing_add_remove_and_active(qtbot, tmp_path):
    studio, panel = make_panel(qtbot, tmp_path)
    panel.per_class.setValue(2)
    expand(qtbot, panel)
    m = panel.model
    assert m.setData(m.index(0, 1), "a handwritten zero")
    assert studio.prompts.prompts[0].text == "a handwritten zero" and studio.prompts.prompts[0].source == "user"
    assert m.setData(m.index(1, 2), Qt.CheckState.Unchecked.value, Qt.ItemDataRole.CheckStateRole)
    assert studio.prompts.prompts[1].weight == 0
    assert m.setData(m.index(2, 3), "2.5") and studio.prompts.prompts[2].weight == 2.5
    n = m.rowCount()
    panel.class_filter.setCurrentIndex(2)  # "one"
    panel.add_prompt()
    assert m.rowCount() == n + 1 and studio.prompts.prompts[-1].class_index == 1
    # select exactly row 0 (selectRow() would honour a Ctrl modifier left pressed by an earlier test)
    sel = panel.table.selectionModel()
    sel.select(panel.proxy.index(0, 0), QItemSelectionModel.SelectionFlag.ClearAndSelect
               | QItemSelectionModel.SelectionFlag.Rows)
    panel.remove_selected()
    assert m.rowCount() == n
    saved = PromptSet.load(tmp_path / "proj" / "prompts.json")
    assert len(saved.prompts) == n


def test_export_and_import_json_and_csv(qtbot, tmp_path):
    studio, panel = make_panel(qtbot, tmp_path)
    panel.per_class.setValue(3)
    expand(qtbot, panel)
    for ext in ("json", "csv"):
        path = tmp_path / f"p.{ext}"
        assert panel.export_file(str(path))
        studio.set_prompts(PromptSet(studio.class_names()))
        assert panel.model.rowCount() == 0
        assert panel.import_file(str(path))
        assert panel.model.rowCount() == 30
    bad = tmp_path / "bad.csv"
    bad.write_text("class,text\nelephant,a big one\n")
    assert not panel.import_file(str(bad))
    assert "unknown class 'elephant'" in panel.error.text()


def test_pilot_scoring_switches_off_the_worst_prompts(qtbot, tmp_path):
    studio, panel = make_panel(qtbot, tmp_path)
    studio.project.section("generate").update(steps=3)
    panel.per_class.setValue(3)
    expand(qtbot, panel)
    panel.keep_fraction.setValue(0.67)
    job = panel.score()
    qtbot.waitUntil(lambda: job.state == "finished", timeout=120000)
    ps = studio.prompts
    assert all(p.score is not None for p in ps.prompts)
    assert sum(p.weight == 0 for p in ps.prompts) == 10  # one of three per class
    assert panel.model.data(panel.model.index(0, 4))  # the score column shows
