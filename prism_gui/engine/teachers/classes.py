"""Class identities shared by every stage, and a teacher's class names: ImageNet's (names, WordNet
ids and definitions, from timm, imported when asked for), a class file of the user's, and the
names a model's size asks for.  No torch here: the app's panels use it at start-up."""

from __future__ import annotations

import json
from pathlib import Path

from prism_gui.engine.teachers.errors import TeacherLoadError


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


def imagenet_class_names() -> tuple[list[str], list[str]]:
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    names = [info.index_to_description(i) for i in range(1000)]
    desc = [info.index_to_description(i, detailed=True) for i in range(1000)]
    return names, desc


def imagenet_class_ids() -> list[str]:
    """ImageNet-1k's WordNet ids in class order (``n01440764`` ...), as its folders are named."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_label_name(i) for i in range(1000)]


def read_class_names(path: str | Path) -> tuple[list[str], list[str] | None]:
    """Class names from a text file (one per line) or JSON (a list, ``{"0": "cat", ...}``, or
    ``{"class_names": [...], "class_descriptions": [...], "class_ids": [...]}``)."""
    names, descriptions, _ids = read_class_file(path)
    return names, descriptions


def read_class_file(path: str | Path) -> tuple[list[str], list[str] | None, list[str] | None]:
    """(names, descriptions, ids) of a class-names file (see :func:`read_class_names`)."""
    path = Path(path)
    if not path.is_file():
        raise TeacherLoadError(f"Class-names file '{path}' " + ("is a folder: give the text or JSON file of names."
                                                                  if path.is_dir() else "does not exist."))
    from prism_gui.engine.specs import read_text_file

    text = read_text_file(path, "Class-names file", TeacherLoadError)
    descriptions = ids = None
    if path.suffix.lower() == ".json":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise TeacherLoadError(f"Class-names file '{path}' is not valid JSON ({e}): fix it, or write the names "
                                   "one per line in a .txt file.") from e
        if isinstance(obj, dict) and "class_names" in obj:
            names, descriptions, ids = obj["class_names"], obj.get("class_descriptions"), obj.get("class_ids")
        elif isinstance(obj, dict):
            try:
                names = [obj[k] for k in sorted(obj, key=lambda k: int(k))]
            except ValueError as e:
                raise TeacherLoadError(
                    f"Class-names file '{path}': keys must be class indices (\"0\", \"1\", ...).") from e
        elif isinstance(obj, list):
            names = obj
        else:
            raise TeacherLoadError(f"Class-names file '{path}' must hold a list or an object.")
        if not isinstance(names, list):
            raise TeacherLoadError(f"Class-names file '{path}': 'class_names' must be a list of names, not "
                                   f"{type(names).__name__}.")
        bad = next((i for i, n in enumerate(names) if not isinstance(n, (str, int, float)) or isinstance(n, bool)
                    or not str(n).strip()), None)
        if bad is not None:
            raise TeacherLoadError(f"Class-names file '{path}': entry {bad + 1} is {json.dumps(names[bad])}, not a "
                                   "class name: every entry must be a non-empty name.")
        names = [str(n).strip() for n in names]
    else:
        names = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not names:
        raise TeacherLoadError(f"Class-names file '{path}' holds no class names: write one name per line, in the "
                               "order of the teacher's outputs.")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise TeacherLoadError(f"Class-names file '{path}' repeats names: {', '.join(dup[:5])}. Each class needs its "
                               "own name: make them distinct (e.g. 'crane (bird)', 'crane (machine)').")
    if ids is not None and (len(ids) != len(names) or len(set(ids)) != len(ids)):
        raise TeacherLoadError(f"Class-names file '{path}': 'class_ids' must hold {len(names)} distinct ids, "
                               "one per class.")
    return names, descriptions, ([str(i) for i in ids] if ids is not None else None)


def resolve_class_names(num_classes: int, class_names, source: str):
    """(names, descriptions, ids): from a file, a list, or the defaults (ImageNet's names,
    glosses and WordNet ids for 1,000 outputs)."""
    descriptions = ids = None
    origin = ""
    if isinstance(class_names, (str, Path)):
        origin = f" (from '{class_names}')"
        class_names, descriptions, ids = read_class_file(class_names)
    if class_names is None:
        if num_classes == 1000:
            class_names, descriptions = imagenet_class_names()
            ids = imagenet_class_ids()
        else:
            class_names = [f"class {i}" for i in range(num_classes)]
    class_names = list(class_names)
    if len(class_names) != num_classes:
        raise TeacherLoadError(
            f"Teacher '{source}' has {num_classes} outputs but {len(class_names)} class names were "
            f"given{origin}: supply a class-names file with exactly {num_classes} names, one per line.")
    return class_names, descriptions, ids
