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


def check_keys(data: dict, allowed, source: str = "spec", what: str = "", also: str = "") -> None:
    """Refuse settings outside ``allowed``, naming them and the valid ones."""
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise SpecError(f"{source}: unknown settings {unknown}{f' for {what}' if what else ''}; valid: "
                        f"{sorted(allowed)}{also}")


def build(cls, data: dict, source: str = "spec"):
    """Instantiate dataclass ``cls`` from ``data``, naming unknown or missing keys clearly."""
    check_keys(data, {f.name for f in dataclasses.fields(cls)}, source, cls.__name__)
    try:
        return cls(**data)
    except TypeError as e:
        raise SpecError(f"{source}: {e}") from e
