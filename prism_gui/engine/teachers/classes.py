"""Class identities shared by every stage (no torch here: the app's panels use it at start-up)."""

from __future__ import annotations


def class_key(class_names, k: int) -> str:
    """A class's key in per-class results: its name, or "name [k]" where two classes share it
    (ImageNet's two "crane")."""
    if class_names is None:
        return str(k)
    name = class_names[k]
    return name if class_names.count(name) == 1 else f"{name} [{k}]"
