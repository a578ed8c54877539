"""Class identities shared by every stage (no torch here: the app's panels use it at start-up)."""

from __future__ import annotations


def class_key(class_names, k: int) -> str:
    """A class's key in per-class results: its name, or "name [k]" where two classes share it
    (ImageNet's two "crane")."""
    if class_names is None:
        return str(k)
    name = class_names[k]
    return name if class_names.count(name) == 1 else f"{name} [{k}]"


# the per-class table of the Curate panel and of the report
CLASS_COLUMNS = ("class", "name", "id", "images", "kept", "rejected", "mean energy", "mean confidence",
                 "teacher agrees", "precision", "recall", "coverage")


def class_rows(summary: dict[int, dict], class_names, class_ids=None, per_class: dict | None = None) -> list[list]:
    """One row of :data:`CLASS_COLUMNS` per class with images (raw values, None where unknown):
    ``summary`` is ``Catalog.class_summary()``, ``per_class`` the P/R/D/C keyed by :func:`class_key`."""
    per_class = per_class or {}
    rows = []
    for k in sorted(summary):
        st = summary[k]
        known = k < len(class_names)
        m = per_class.get(class_key(class_names, k), {}) if known else {}
        rows.append([k, class_names[k] if known else str(k), class_ids[k] if class_ids and k < len(class_ids) else "",
                     st["images"], st["kept"], st["rejected"], st["energy"], st["confidence"], st["correct"],
                     m.get("precision"), m.get("recall"), m.get("coverage")])
    return rows


def format_class_cell(column: int, value) -> str:
    if value is None:
        return "-"
    if CLASS_COLUMNS[column] == "teacher agrees":
        return f"{100 * value:.0f}%"
    return f"{value:.3f}" if isinstance(value, float) else str(value)
