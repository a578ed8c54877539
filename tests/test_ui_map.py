"""Map tab (issue 15): the map job, colouring, hover, lasso/box selection into the gallery and
curation, near-duplicate groups and the holes view with "generate more here"."""

import shutil
from collections import deque

import numpy as np
import pytest
from PySide6.QtCore import QPointF

from prism_gui.engine.data.catalog import Catalog
from prism_gui.ui.common import make_studio
from prism_gui.ui.curate_panel import CuratePanel
from prism_gui.ui.map_panel import COLOURS, MapPanel


@pytest.fixture(scope="module")
def generated(tmp_path_factory, digits_teacher, digits_prior):
    """A real project (project.json, Digits teacher, digits-test as its evaluation set) with 20
    generated images per class."""
    from prism_gui.engine.generation.job import GenerateSpec, run_generation
    from prism_gui.engine.project.project import Project
    from prism_gui.engine.prompts import expand, load_bank

    root = tmp_path_factory.mktemp("map") / "p"
    project = Project.open_or_create(root)
    ps = expand(project.class_names(), load_bank("digits"), per_class=4, seed=0)
    spec = GenerateSpec(project=str(root), run="base", images_per_class=20, batch_size=100, seed=1,
                        sampler={"steps": 10, "cfg": 3.0})
    deque(run_generation(spec, ps, teacher=digits_teacher, components=digits_prior), maxlen=0)
    return root


@pytest.fixture
def panels(qtbot, generated, tmp_path, digits_teacher):
    from prism_gui.engine.project.project import Project

    root = tmp_path / "p"
    shutil.copytree(generated, root, ignore=shutil.ignore_patterns("analysis"))
    studio = make_studio()
    studio.teacher = digits_teacher
    m, c = MapPanel(studio), CuratePanel(studio)
    for w in (m, c):
        qtbot.addWidget(w)
    m.resize(1300, 800)
    m.show()
    studio.set_project(Project.open(root))
    m.show_ids.connect(c.show_ids)
    return m, c


def _run(qtbot, job, timeout=120_000):
    with qtbot.waitSignal(job.ended, timeout=timeout) as blocker:
        pass
    assert blocker.args == ["finished"], job.last_event


def _computed(qtbot, m, method="pca"):
    _run(qtbot, m.compute(method))
    assert m.data is not None
    return m.data


def test_map_draws_synthetic_and_real_points_in_every_colouring(qtbot, panels):
    m, _ = panels
    d = _computed(qtbot, m)
    assert (~d.real).sum() == 200 and d.real.sum() == 719  # the project's evaluation set: the Digits test split
    assert sum(m.drawn().values()) == 200 and sum(m.drawn(real=True).values()) == 719
    # the synthetic points are drawn above the real crosses (issue 28: 719 crosses hid most of them)
    assert min(it.zValue() for it in m.syn_items) > max(it.zValue() for it in m.real_items)
    for name in COLOURS:
        m.colour.setCurrentText(name)
        assert m.legend.text(), name
    m.colour.setCurrentText("class")
    assert len(m.drawn()) == 10 and set(m.drawn().values()) == {20}  # one colour per class
    m.reference.setCurrentText("none")
    d2 = _computed(qtbot, m)
    assert not d2.real.any() and not m.drawn(real=True)


def test_hover_shows_the_image_under_the_mouse(qtbot, panels):
    m, _ = panels
    d = _computed(qtbot, m)
    i = int(np.flatnonzero(~d.real)[5])
    assert m.point_at(*d.xy[i]) is not None
    m.describe_point(i)
    assert f"#{int(d.ids[i])}" in m.hover_text.text() and not m.hover_image.pixmap().isNull()
    far = d.xy.max(axis=0) + 100 * np.ptp(d.xy, axis=0)
    assert m.point_at(*far) is None
    # through the scene: a mouse move over the point
    m.plot.autoRange()
    qtbot.wait(50)
    scene_pos = m.vb.mapViewToScene(QPointF(*d.xy[i]))
    m._hover(scene_pos)
    qtbot.waitUntil(lambda: "#" in m.hover_text.text(), timeout=2000)


def test_lasso_selection_filters_the_gallery_and_curates_in_one_undoable_step(qtbot, panels):
    m, c = panels
    d = _computed(qtbot, m)
    syn = np.flatnonzero(~d.real)
    cls = d.labels[syn] == 3
    lo, hi = d.xy[syn[cls]].min(axis=0), d.xy[syn[cls]].max(axis=0)
    lo, hi = lo - 1e-3 * (hi - lo), hi + 1e-3 * (hi - lo)  # the extreme threes lie inside, not on the edge
    box = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]], [lo[0], lo[1]]])
    m._select_shape(box)
    inside = set(m.selected_ids())
    assert set(d.ids[syn[cls]].tolist()) <= inside  # every three, plus whatever else lies in the box
    assert not (set(m.selected) & set(np.flatnonzero(d.real)))  # real points are never selected
    m.show_in_gallery()
    assert c.map_ids is not None and c.model.rowCount() == len(inside) and not c.map_chip.isHidden()
    m.set_status("reject")
    with Catalog(m.studio.project.root) as cat:
        assert cat.count(statuses=["reject"]) == len(inside)
    m.colour.setCurrentText("status")
    assert "reject" in m.legend.text()
    m.undo()
    with Catalog(m.studio.project.root) as cat:
        assert cat.count(statuses=["reject"]) == 0
    c.map_chip.click()
    assert c.map_ids is None and c.model.rowCount() == 200


def test_dragging_a_lasso_on_the_plot_selects(qtbot, panels):
    m, _ = panels
    d = _computed(qtbot, m)
    m.findChild(type(m.tools.buttons()[0]), "tool_box").click()
    assert m.vb.tool == "box"
    lo, hi = d.xy.min(axis=0), d.xy.max(axis=0)
    mid = (lo + hi) / 2

    class Drag:  # the parts of pyqtgraph's MouseDragEvent the view box reads
        def __init__(self, p, start=False, finish=False):
            self.p, self.s, self.f = p, start, finish

        def button(self):
            from PySide6.QtCore import Qt

            return Qt.MouseButton.LeftButton

        def accept(self):
            pass

        def scenePos(self):
            return m.vb.mapViewToScene(QPointF(*self.p))

        def isStart(self):
            return self.s

        def isFinish(self):
            return self.f

    for ev in (Drag(lo - 1, start=True), Drag(mid), Drag(hi + 1, finish=True)):
        m.vb.mouseDragEvent(ev)
    assert len(m.selected) == 200  # the box spans the whole map: every synthetic point


def test_duplicate_groups_show_on_the_map_and_reject_keeping_the_lowest_energy(qtbot, panels):
    m, _ = panels
    root = m.studio.project.root
    with Catalog(root) as cat:  # plant two exact copies with a higher energy
        for j, i in enumerate(cat.ids(run="base")[:2]):
            r = cat.get(i)
            x, _, _ = cat.load_images(ids=[i])
            a = ((x[0].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
            cat.add_image("copies", j, a, class_index=r["class_index"], class_name=r["class_name"],
                          prompt=r["prompt"], seed=99 + j, generator="planted", settings={},
                          score={"energy": r["energy"] + 1})
    _computed(qtbot, m)
    _run(qtbot, m.find_duplicates())
    assert m.dup_list.count() >= 2 and m.dup_reject.isEnabled()
    m.dup_list.item(0).setSelected(True)
    assert len(m.selected) >= 2 and not m.strip.pixmap().isNull() and "green is kept" in m.strip_title.text()
    m.colour.setCurrentText("density")
    assert "density" in m.legend.text()
    m.reject_duplicates()
    with Catalog(root) as cat:
        rejected = set(cat.ids(statuses=["reject"]))
        assert set(cat.ids(run="copies")) <= rejected and not rejected & set(cat.ids(run="base")[:2])


def test_holes_view_marks_uncovered_regions_and_generates_more_there(qtbot, panels):
    m, _ = panels
    _computed(qtbot, m)
    _run(qtbot, m.find_holes())
    assert m.cov_table.rowCount() == 10 and m.region_list.count() > 0
    first = m.cov_table.item(0, 1).data(0)
    assert first <= m.cov_table.item(9, 1).data(0)  # lowest coverage first
    m.region_list.item(0).setSelected(True)
    assert len(m.hole_item.data) == m.chosen_regions()[0]["size"] and m.fill_button.isEnabled()
    assert not m.strip.pixmap().isNull() and "Nearest images" in m.strip_title.text()
    m.fill_n.setValue(7)
    job = m.fill()
    _run(qtbot, job)
    cls = m.chosen_regions()[0]["class"]
    with Catalog(m.studio.project.root) as cat:
        assert cat.count(run="fill-1") == 7 and set(cat.column("class_index", run="fill-1")) == {cls}
    up = _computed(qtbot, m)  # the cached map takes the new points in place
    assert (~up.real).sum() == 207


def test_map_errors_are_shown_not_raised(qtbot, panels, monkeypatch):
    m, _ = panels
    import prism_gui.engine.analysis.embedding as emb

    monkeypatch.setattr(emb, "umap_available", lambda: False)
    job = m.compute("umap")
    with qtbot.waitSignal(job.ended, timeout=60_000):
        pass
    assert "pip install umap-learn" in m.error.text() and m.compute_button.isEnabled()


def test_the_report_carries_the_map_before_and_after_curation_and_the_coverage_table(qtbot, panels):
    from prism_gui.engine.project.report import report_job

    m, _ = panels
    d = _computed(qtbot, m)
    _run(qtbot, m.find_holes())
    m.select_points(np.flatnonzero(~d.real)[:50])
    m.set_status("reject")
    report = deque(report_job(m.studio.project.root), maxlen=1)[0].data["report"]
    assert report.images["map.png"][:4] == b"\x89PNG"
    caption = next(c for h, names, c in report.sections if "map.png" in names)
    assert "curation kept" in caption
    table = next(t for t in report.tables if t[0].startswith("Coverage per class"))
    assert len(table[2]) == 10 and table[1][:2] == ["class", "coverage"]
    covs = [float(r[1]) for r in table[2]]
    assert covs == sorted(covs)
    html = report.to_html()
    assert "Coverage per class" in html and "The synthetic set against what the teacher knows" in html
