import shutil
import subprocess
import sys

import pytest


def test_ruff_is_clean(root):
    ruff = shutil.which("ruff") or str(root / ".venv" / "bin" / "ruff")
    if not shutil.which(ruff) and not (root / ".venv" / "bin" / "ruff").exists():
        pytest.fail("ruff is not installed: install the dev extras (pip install -e '.[dev]')")
    r = subprocess.run([ruff, "check", "prism_gui", "tests", "benchmarks"], cwd=root,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_ci_calls_the_readme_test_command(root):
    readme = (root / "README.md").read_text()
    ci = (root / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in readme.split("\n## ")[0]
    assert "bash scripts/run.sh" in readme.split("\n## ")[0]
    assert "scripts/test.sh" in ci


def test_cli_help_lists_commands(root):
    r = subprocess.run([sys.executable, "-m", "prism_gui.cli", "--help"], cwd=root, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0
    for cmd in ("world", "train-teacher", "train-prior", "evaluate-prior"):
        assert cmd in r.stdout


def test_cli_rejects_unknown_command(root):
    r = subprocess.run([sys.executable, "-m", "prism_gui.cli", "frobnicate"], cwd=root,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "unknown command 'frobnicate'" in r.stderr
