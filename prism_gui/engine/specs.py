"""Job specs on disk: JSON or TOML files that the GUI edits and the CLI runs."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path


class SpecError(ValueError):
    pass


def load_spec(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise SpecError(f"Spec file '{path}' does not exist.")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(text)
        return json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise SpecError(f"Spec file '{path}' is not valid {path.suffix.lstrip('.').upper() or 'JSON'}: {e}") from e


def build(cls, data: dict, source: str = "spec"):
    """Instantiate dataclass ``cls`` from ``data``, naming unknown or missing keys clearly."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise SpecError(f"{source}: unknown settings {unknown} for {cls.__name__}; valid: {sorted(names)}")
    try:
        return cls(**data)
    except TypeError as e:
        raise SpecError(f"{source}: {e}") from e
