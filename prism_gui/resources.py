"""Where the shipped resources (Digits teacher, prior, prompt banks) live."""

from __future__ import annotations

import os
from pathlib import Path


def resources_root() -> Path:
    env = os.environ.get("PRISM_RESOURCES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "resources"


def resource_path(*parts: str) -> Path:
    return resources_root().joinpath(*parts)
