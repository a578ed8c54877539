import os

# before anything imports huggingface_hub / Qt
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def python() -> str:
    return sys.executable


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory):
    from tests.tiny_sd import build_tiny_sd

    return build_tiny_sd(tmp_path_factory.mktemp("tiny_sd"))


@pytest.fixture(scope="session")
def digits_teacher():
    from prism_gui.engine.teachers.load import load_teacher

    return load_teacher("digits")


@pytest.fixture(scope="session")
def digits_prior():
    from prism_gui.engine.generation.load import load_generator

    return load_generator("digits")


@pytest.fixture
def generate_panel(qtbot, tmp_path):
    """A Generate panel on a new project, set for a tiny Digits run (2 images per class, 4 steps)."""
    from prism_gui.engine.project.project import Project
    from prism_gui.ui.common import make_studio
    from prism_gui.ui.generate_panel import GeneratePanel

    studio = make_studio()
    studio.warm_up(wait=True)  # import the engine up front (the app does it in a thread)
    p = GeneratePanel(studio)
    qtbot.addWidget(p)
    studio.set_project(Project.create(tmp_path / "proj"))
    p.prompt_source.setCurrentIndex(1)  # plain class names
    p.per_class.setValue(2)
    p.steps.setValue(4)
    p.batch.setValue(10)
    return p


@pytest.fixture
def distill_panel_on(qtbot):
    """A factory: a Distill panel of a new app (warmed up) on ``project``."""
    from prism_gui.ui.common import make_studio
    from prism_gui.ui.distill_panel import DistillPanel

    def make(project):
        studio = make_studio()
        panel = DistillPanel(studio)
        qtbot.addWidget(panel)
        studio.warm_up(wait=True)
        studio.set_project(project)
        return panel

    return make
