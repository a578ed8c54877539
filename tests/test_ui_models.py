"""The app's Qt item models hand None back to Qt for the roles they do not serve, thousands of
times while a large gallery scrolls.  PySide6 6.12.0 dropped a reference to None on each such
return, so the interpreter crashed ("deallocating None") after some scrolling; pyproject.toml
excludes that release.  These tests read through Qt (``QModelIndex.data`` goes C++ -> Python
``data()`` -> C++), the path the views take, and fail on a binding with that bug."""

import sys

from PySide6.QtCore import Qt

from prism_gui.engine.prompts import Prompt, PromptSet
from prism_gui.ui.gallery import GalleryModel
from prism_gui.ui.prompts_panel import ClassFilter, PromptTableModel
from prism_gui.ui.testing import fake_catalog

UNSERVED = (Qt.ItemDataRole.DecorationRole, Qt.ItemDataRole.FontRole, Qt.ItemDataRole.TextAlignmentRole,
            Qt.ItemDataRole.BackgroundRole, Qt.ItemDataRole.ForegroundRole, Qt.ItemDataRole.SizeHintRole)


def none_refcount_change(index, calls: int = 500) -> int:
    for role in UNSERVED:  # warm up: the first calls may cache a role's name
        index.data(role)
    before = sys.getrefcount(None)
    for _ in range(calls):
        for role in UNSERVED:
            assert index.data(role) is None
    return sys.getrefcount(None) - before


def test_gallery_model_returns_none_to_qt_without_losing_references(qapp, tmp_path):
    model = GalleryModel()
    model.set_catalog(fake_catalog(tmp_path / "p", 30).catalog())
    assert abs(none_refcount_change(model.index(3))) < 50


def test_prompt_models_return_none_to_qt_without_losing_references(qapp):
    ps = PromptSet(["zero", "one"], [Prompt(0, "the digit zero"), Prompt(1, "the digit one")])
    model = PromptTableModel()
    model.set_prompts(ps)
    assert abs(none_refcount_change(model.index(1, 1))) < 50
    proxy = ClassFilter()
    proxy.setSourceModel(model)
    assert abs(none_refcount_change(proxy.index(0, 1))) < 50
