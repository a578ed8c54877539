"""The core (engine, CLI) must never import Qt: napari-style model/view split, machine-checked."""

import ast
import subprocess
import sys

FORBIDDEN = ("PySide6", "pyqtgraph", "superqt", "PyQt5", "PyQt6", "qtpy")


def core_files(root):
    pkg = root / "prism_gui"
    files = [*list((pkg / "engine").rglob("*.py")), *list((pkg / "cli").rglob("*.py")), pkg / "resources.py"]
    assert len(files) > 10
    return files


def imported_modules(path):
    """Every module a source file imports (at any depth of the file)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_core_sources_never_import_qt(root):
    offenders = []
    for path in core_files(root):
        offenders += [f"{path.relative_to(root)}: {n}" for n in imported_modules(path) if n.split(".")[0] in FORBIDDEN]
    assert not offenders, "the Qt-free core imports Qt:\n" + "\n".join(offenders)


def test_importing_the_whole_core_loads_no_qt(root):
    mods = sorted(
        ".".join(p.relative_to(root).with_suffix("").parts)
        for p in core_files(root) if p.name != "__main__.py"
    )
    code = (
        "import importlib, sys\n"
        f"for m in {mods!r}: importlib.import_module(m)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_ui_layer_exists_and_uses_qt(root):
    src = (root / "prism_gui" / "ui" / "worker.py").read_text()
    assert "PySide6" in src


# Which engine packages each may import (besides the base modules): arrows run one way, and
# only the built-in worlds (engine/digits) know the Digits world; generic code asks engine/worlds.py.
BASE = {"jobs", "events", "registry", "specs", "devices", "versions", "worlds", "hub", "tblog", "weights", "seeds"}
ALLOWED = {
    "teachers": set(),
    "data": set(),
    "prompts": {"data", "generation"},  # pilot scoring samples a few images per prompt
    "generation": {"teachers", "data", "prompts"},
    "training": {"teachers", "data", "generation"},  # DeepInversion scores its images with the energies
    "analysis": {"teachers", "data"},
    "project": {"teachers", "data", "prompts", "generation", "training", "analysis", "scale"},
    # launching the same jobs on several processes: above the stages it runs, below the project
    "scale": {"teachers", "data", "prompts", "generation", "training"},
}


def _engine_imports(path):
    for m in imported_modules(path):
        if m.startswith("prism_gui.engine."):
            yield m.split(".")[2]


def test_engine_arrows_run_one_way_and_nothing_generic_imports_the_digits_world(root):
    engine = root / "prism_gui" / "engine"
    bad = []
    for path in engine.rglob("*.py"):
        rel = path.relative_to(engine)
        group = rel.parts[0].removesuffix(".py")
        if group in ("digits", "preload", "__init__"):  # a world; the warm-up imports everything on purpose
            continue
        for target in _engine_imports(path):
            if target == group or target in BASE:
                continue
            if target == "digits":
                bad.append(f"{rel}: imports the Digits world (register through engine/worlds.py instead)")
            elif group in ALLOWED and target not in ALLOWED[group]:
                bad.append(f"{rel}: {group} imports {target}")
            elif group in BASE and target not in BASE:
                bad.append(f"{rel}: base module imports {target}")
    assert not bad, "\n".join(bad)
