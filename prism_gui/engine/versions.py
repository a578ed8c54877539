"""Manifests: what produced an artefact (spec, seeds, package versions, git revision)."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
from pathlib import Path

_PACKAGES = ("torch", "diffusers", "transformers", "timm", "accelerate", "safetensors",
             "numpy", "scikit-learn", "pillow", "matplotlib")


def package_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def git_revision(path: Path | None = None) -> str | None:
    try:
        cwd = path or Path(__file__).resolve().parent
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=5)
        return rev.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def manifest(spec: dict, seeds: dict | None = None, **extra) -> dict:
    return {"spec": spec, "seeds": seeds or {}, "versions": package_versions(),
            "git_revision": git_revision(), **extra}
