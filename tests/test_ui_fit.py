"""The app fits a laptop (issue 28): at 1366x768, with a project of 2,000 images and long status
texts, no tab asks for a larger window, nothing sits outside it, no plot collapses, and each
panel's primary action is on screen.  The real-window check (a window manager, Xvfb) is
``benchmarks/laptop_fit.py``."""

import pytest
from PySide6.QtCore import QPoint, QRect
from PySide6.QtWidgets import QAbstractScrollArea, QWidget

from prism_gui.ui.testing import fake_catalog

SCREEN = (1366, 768)
DECORATIONS = 40  # a title bar and a task bar take about this much of a laptop screen's height
TABS = ("world", "teacher", "prompts", "generate", "curate", "map", "distill", "report")
ACTIONS = {"generate": "start_button", "distill": "start_button", "report": "build_button",
           "prompts": "expand_button", "map": "compute_button"}
LONG = "a status text long enough to widen any row that does not wrap it " * 4


def _outside(win) -> list[str]:
    rect = win.rect()
    bad = []
    for w in win.findChildren(QWidget):
        if not w.isVisible() or w.width() <= 0:
            continue
        p, scrolled = w.parentWidget(), False
        while p is not None and p is not win:
            scrolled = scrolled or isinstance(p, QAbstractScrollArea)
            p = p.parentWidget()
        if not scrolled and not rect.contains(QRect(w.mapTo(win, QPoint(0, 0)), w.size())):
            bad.append(f"{type(w).__name__} {w.objectName()!r} at {w.mapTo(win, QPoint(0, 0))} size {w.size()}")
    return bad


@pytest.fixture
def laptop_window(qtbot, tmp_path, qapp):
    from prism_gui.ui.main_window import MainWindow

    project = fake_catalog(tmp_path / "proj", 2000)
    win = MainWindow(project=str(project.root), warm_up=False)
    qtbot.addWidget(win)
    win.resize(*SCREEN)
    win.show()
    qtbot.waitUntil(lambda: win.studio.project is not None, timeout=10000)
    # the texts that widened the window: curation messages, the line counts, the map's selection bar
    for label in (win.curate.message, win.curate.beyond, win.map.sel_label, win.map.status, win.generate.note,
                  win.distill.result):
        label.setText(LONG)
    return win


def test_every_tab_fits_a_laptop_screen_and_the_window_never_grows(laptop_window, qapp):
    import pyqtgraph as pg

    win = laptop_window
    for tab in TABS:
        win.show_panel(tab)
        for _ in range(5):
            qapp.processEvents()
        hint = win.minimumSizeHint()
        assert hint.width() <= SCREEN[0] and hint.height() <= SCREEN[1] - DECORATIONS, (tab, hint)
        assert (win.width(), win.height()) == SCREEN, (tab, win.size())  # it did not grow by itself
        assert _outside(win) == [], tab
        for plot in win.findChildren(pg.PlotWidget):
            if plot.isVisible():
                assert plot.height() >= 120, (tab, plot.height())  # a title, an axis and bars
        if tab in ACTIONS:
            action = getattr(getattr(win, tab), ACTIONS[tab])
            assert not action.visibleRegion().isEmpty(), f"{tab}: {ACTIONS[tab]} is off screen"
