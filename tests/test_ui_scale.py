"""The app with a 1,000-class teacher: prompts (40,000), the curation class filter, the
project's evaluation set, and a report that samples classes and lists them all in a table.
(Timings live in benchmarks/app_perf.py; these tests check behaviour at that size.)"""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from prism_gui.engine.project.project import Project
from prism_gui.ui.common import make_studio

CRANE_BIRD, CRANE_MACHINE = 134, 517


@pytest.fixture(scope="module")
def imagenet():
    from prism_gui.engine.teachers.classes import imagenet_class_ids, imagenet_class_names

    names, desc = imagenet_class_names()
    return names, desc, imagenet_class_ids()


def _project(path, imagenet) -> Project:
    names, _desc, ids = imagenet
    project = Project.create(path)
    t = project.section("teacher")
    t.update(kind="checkpoint", source="resnet50", checkpoint="/models/resnet50.safetensors", class_names=names,
             class_ids=ids, test_accuracy=None)
    project.section("evaluation").update(set="", mapping=None)
    project.save()
    return project


def test_prompts_panel_holds_40000_prompts_and_filters_by_class_index(qtbot, tmp_path, imagenet):
    from prism_gui.engine.prompts import class_phrases, expand, load_bank
    from prism_gui.ui.prompts_panel import PromptsPanel

    names, desc, _ = imagenet
    studio = make_studio()
    panel = PromptsPanel(studio)
    qtbot.addWidget(panel)
    studio.set_project(_project(tmp_path / "p", imagenet))
    ps = expand(names, load_bank("natural"), per_class=40, seed=0, phrases=class_phrases(names, desc, "definition"))
    studio.set_prompts(ps)
    assert panel.model.rowCount() == 40000
    assert panel.class_filter.count() == 1001
    panel.class_filter.setCurrentIndex(CRANE_MACHINE + 1)
    rows = [panel.proxy.mapToSource(panel.proxy.index(i, 0)).row() for i in range(panel.proxy.rowCount())]
    assert len(rows) == 40 and {ps.prompts[r].class_index for r in rows} == {CRANE_MACHINE}
    assert all("bird" not in ps.prompts[r].text for r in rows)
    panel.class_filter.setCurrentIndex(CRANE_BIRD + 1)
    assert {ps.prompts[panel.proxy.mapToSource(panel.proxy.index(i, 0)).row()].class_index
            for i in range(panel.proxy.rowCount())} == {CRANE_BIRD}
    text = panel.counts.text()
    assert "40,000 prompts" in text and "1,000 classes" in text and len(text) < 300


@pytest.fixture
def rgb_catalog(tmp_path, imagenet):
    """A 1,000-class project with 2 RGB images per class (16 px), written through the catalog."""
    from prism_gui.engine.data.catalog import Catalog

    names = imagenet[0]
    project = _project(tmp_path / "proj", imagenet)
    rng = np.random.default_rng(0)
    with Catalog(project.root) as cat:
        cat.start_run("sd", "generate", {"fake": True})
        for i in range(2000):
            k = i // 2
            img = np.zeros((16, 16, 3), np.uint8)
            img[..., 0] = 255  # pure red: shown as it is, never inverted or made gray
            e = float(rng.uniform(0, 3))
            cat.add_image("sd", i, img, class_index=k, class_name=names[k], prompt=f"a photo of a {names[k]}",
                          seed=i, generator="sd", settings={},
                          score={"energy": e, "energies": {"class": e}, "top5": [[k, 0.5]], "confidence": 0.5,
                                 "entropy": 1.0, "correct": bool(i % 3 == 0)})
        cat.finish_run("sd")
    return project


def test_curate_class_filter_keeps_the_two_cranes_apart(qtbot, rgb_catalog):
    from prism_gui.ui.curate_panel import CuratePanel
    from prism_gui.ui.gallery import RowRole

    studio = make_studio()
    panel = CuratePanel(studio)
    qtbot.addWidget(panel)
    studio.set_project(rgb_catalog)
    assert panel.klass.count() == 1001
    panel.klass.setCurrentIndex(CRANE_MACHINE + 1)
    panel.apply_filters()
    m = panel.model
    assert m.rowCount() == 2
    assert {m.data(m.index(i), RowRole)["class_index"] for i in range(2)} == {CRANE_MACHINE}
    # the per-class table: 1,000 rows, sortable by a number, double-click shows the class
    from prism_gui.ui.class_table import SortRole

    t = panel.class_table
    assert t.proxy.rowCount() == 1000
    assert t.proxy.index(CRANE_BIRD, 2).data() == "n02012849" and t.proxy.index(CRANE_MACHINE, 2).data() == "n03126707"
    t.sortByColumn(6, Qt.SortOrder.AscendingOrder)  # mean energy
    energies = [t.proxy.index(i, 6).data(SortRole) for i in range(1000)]
    assert energies == sorted(energies)
    first = int(t.proxy.index(0, 0).data(SortRole))
    t.doubleClicked.emit(t.proxy.index(0, 3))
    assert panel.klass.currentIndex() == first + 1 and m.rowCount() == 2
    # no evaluation set chosen yet: precision/recall say where to choose one instead of failing
    assert panel.compute_prdc() is None
    assert "evaluation set" in panel.error.text()


def test_distill_panel_evaluation_set_is_the_projects(qtbot, tmp_path, rgb_catalog):
    from prism_gui.ui.distill_panel import DistillPanel

    studio = make_studio()
    panel = DistillPanel(studio)
    qtbot.addWidget(panel)
    studio.set_project(rgb_catalog)
    assert panel.eval_set.value() == ("", None)
    val = tmp_path / "val"
    (val / "n01440764").mkdir(parents=True)
    panel.eval_set.set_value(str(val), str(tmp_path / "map.json"))
    panel.eval_set._changed()
    assert Project.open(rgb_catalog.root).evaluation() == (str(val), str(tmp_path / "map.json"))
    assert rgb_catalog.teacher_value() == {"source": "resnet50", "checkpoint": "/models/resnet50.safetensors"}


def test_report_samples_24_classes_in_colour_and_tables_all_1000(rgb_catalog, tmp_path):
    import io

    from PIL import Image

    from prism_gui.engine.project.report import MAX_GRID_CLASSES, report_job

    ev = list(report_job(rgb_catalog.root))[-1]
    report = ev.data["report"]
    grid = Image.open(io.BytesIO(report.images["samples.png"])).convert("RGB")
    assert grid.height < (MAX_GRID_CLASSES + 1) * 47  # 24 rows of 44 px tiles, not 1,000
    px = np.asarray(grid)
    assert ((px[..., 0] > 200) & (px[..., 1] < 60) & (px[..., 2] < 60)).sum() > 1000  # red tiles stay red
    (_caption, header, rows), = [t for t in report.tables if t[0] == "Per class"]
    assert len(rows) == 1000 and header[:3] == ["class", "name", "id"]
    assert rows[CRANE_BIRD][2] == "n02012849" and rows[CRANE_MACHINE][2] == "n03126707"
    html = report.to_html()
    assert "table class='data sortable'" in html and "div class='scroll'" in html
    assert "24 of 1000 classes" in html
