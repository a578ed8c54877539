"""Labelled image folders (evaluation and reference sets): which class each subfolder is.

``root/<folder>/*.jpg``.  A folder is matched to the teacher's classes, in this order:

1. an explicit mapping file (``mapping``): JSON ``{"folder": index or class name}`` or CSV lines
   ``folder,index-or-name``;
2. the class ids of the teacher (ImageNet's WordNet ids: ``n01440764/``), when it has them;
3. the class names, where a name is unique among the teacher's classes ("tench/").

A folder named by a name two classes share (ImageNet's "crane" is 134, the bird, and 517, the
machine) is refused with the classes it could be; so is a folder that matches nothing.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm")


class FolderError(ValueError):
    """An image folder that cannot be labelled; the message names the folder and the fix."""


def read_mapping(path: str | Path, class_names: list[str]) -> dict[str, int]:
    """A folder -> class index mapping from JSON or CSV; values are indices or class names."""
    path = Path(path)
    if not path.is_file():
        raise FolderError(f"Mapping file '{path}' does not exist.")
    from prism_gui.engine.specs import read_text_file

    text = read_text_file(path, "Mapping file", FolderError)
    if path.suffix.lower() == ".json":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise FolderError(f"Mapping file '{path}' is not valid JSON ({e}).") from e
        if not isinstance(raw, dict):
            raise FolderError(f"Mapping file '{path}' must be an object {{\"folder\": class index or name}}.")
        pairs = list(raw.items())
    else:
        pairs = [(r[0].strip(), r[1].strip()) for r in csv.reader(text.splitlines()) if len(r) >= 2 and r[0].strip()]
        if pairs and not pairs[0][1].lstrip("-").isdigit() and pairs[0][1] not in class_names:
            pairs = pairs[1:]  # a header line
    counts = Counter(class_names)
    index = {n: i for i, n in enumerate(class_names)}
    out: dict[str, int] = {}
    for folder, value in pairs:
        if isinstance(value, int) or (isinstance(value, str) and value.lstrip("-").isdigit()):
            k = int(value)
            if not 0 <= k < len(class_names):
                raise FolderError(f"Mapping file '{path}': folder '{folder}' -> class {k}, but the teacher has "
                                  f"classes 0..{len(class_names) - 1}.")
        elif value in index:
            if counts[value] > 1:
                dup = [i for i, n in enumerate(class_names) if n == value]
                raise FolderError(f"Mapping file '{path}': '{value}' names classes {dup}: map '{folder}' to an index.")
            k = index[value]
        else:
            raise FolderError(f"Mapping file '{path}': '{value}' (for folder '{folder}') is neither a class index "
                              "nor one of the teacher's class names.")
        out[str(folder)] = k
    return out


def label_folders(root: str | Path, class_names: list[str], class_ids: list[str] | None = None,
                  mapping: str | Path | dict | None = None) -> dict[str, int]:
    """``{subfolder name: class index}`` for every subfolder of ``root`` (see the module doc)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FolderError(f"Image folder '{root}' does not exist: give a folder with one subfolder per class "
                          "(ImageNet's val folder: n01440764/, n01443537/, ...).")
    subdirs = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not subdirs:
        raise FolderError(f"Image folder '{root}' has no subfolders: put each class's images in a subfolder named by "
                          "its WordNet id, its class name or a mapping file.")
    if isinstance(mapping, (str, Path)):
        mapping = read_mapping(mapping, class_names)
    ids = {c: i for i, c in enumerate(class_ids or [])}
    counts = Counter(class_names)
    names = {n: i for i, n in enumerate(class_names) if counts[n] == 1}
    out: dict[str, int] = {}
    ambiguous, unknown = [], []
    for d in subdirs:
        if mapping is not None:
            if d in mapping:
                out[d] = int(mapping[d])
            else:
                unknown.append(d)
        elif d in ids:
            out[d] = ids[d]
        elif d in names:
            out[d] = names[d]
        elif counts.get(d, 0) > 1:
            ambiguous.append(d)
        else:
            unknown.append(d)
    if ambiguous:
        d = ambiguous[0]
        which = [i for i, n in enumerate(class_names) if n == d]
        hint = (f" ({', '.join(class_ids[i] for i in which)})" if class_ids else "")
        raise FolderError(
            f"Image folder '{root}': subfolder '{d}' is a name that classes {which} share, so its images cannot be "
            f"labelled. Rename the folders to class ids{hint} or give a mapping file (folder -> class index).")
    if unknown:
        how = "in the mapping file" if mapping is not None else \
            ("a WordNet id or class name of the teacher" if class_ids else "a class name of the teacher")
        raise FolderError(
            f"Image folder '{root}': {len(unknown)} subfolder(s) match no class ({', '.join(unknown[:5])}); each must "
            f"be {how}. Rename them, remove them, or give a mapping file.")
    return out


# the first bytes of every format in IMAGE_SUFFIXES
_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*",
          b"P1", b"P2", b"P3", b"P4", b"P5", b"P6")


def image_file_problem(path: Path) -> str | None:
    """Why a file with an image suffix is not an image (read from its first bytes), or None."""
    try:
        size = path.stat().st_size
        if size == 0:
            return "is empty (0 bytes)"
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    if head.startswith(_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return None
    return "is not an image (its bytes are not PNG, JPEG, GIF, BMP, TIFF, WebP or PPM)"


def _hidden(path: Path, root: Path) -> bool:
    """Files the system leaves beside images (``.DS_Store``, macOS's ``._name.png``, folders
    such as ``.ipynb_checkpoints``): never images, never counted."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def image_files(folder: Path, root: Path | None = None) -> list[Path]:
    """The files with an image suffix under ``folder``, sorted, without hidden ones (hidden
    relative to ``root``, default ``folder``)."""
    root = root or folder
    return [f for f in sorted(folder.rglob("*"))
            if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file() and not _hidden(f, root)]


def folder_items(root: str | Path, class_names: list[str], class_ids: list[str] | None = None,
                 mapping=None) -> list[tuple[Path, int]]:
    """Every image under ``root/<subfolder>/`` with its class index, in a fixed order.  Files of
    other types (notes, ``Thumbs.db``) and hidden files are left out; an empty file, or one with an
    image suffix that is not an image, is refused up front (with every such file named), so an
    evaluation never stops half-way through."""
    root = Path(root).expanduser()
    labels = label_folders(root, class_names, class_ids, mapping)
    items, bad = [], []
    for d, k in labels.items():
        for f in image_files(root / d, root):
            problem = image_file_problem(f)
            if problem:
                bad.append(f"'{f.relative_to(root)}' {problem}")
            else:
                items.append((f, k))
    if bad:
        raise FolderError(f"Image folder '{root}': {len(bad)} file(s) cannot be used: {'; '.join(bad[:5])}"
                          f"{' …' if len(bad) > 5 else ''}. Remove or replace them, then try again.")
    if not items:
        raise FolderError(f"Image folder '{root}' holds no images ({', '.join(IMAGE_SUFFIXES)}) in its class "
                          "subfolders: put each class's images in its subfolder.")
    return items
