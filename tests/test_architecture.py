"""The core (engine, CLI) must never import Qt: napari-style model/view split, machine-checked."""

import ast
import subprocess
import sys

FORBIDDEN = ("PySide6", "pyqtgraph", "superqt", "PyQt5", "PyQt6", "qtpy")


def core_files(root):
    pkg = root / "prism_gui"
    files = [*list((pkg / "engine").rglob("*.py")), pkg / "cli.py", pkg / "resources.py"]
    assert len(files) > 10
    return files


def test_core_sources_never_import_qt(root):
    offenders = []
    for path in core_files(root):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(root)}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
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
