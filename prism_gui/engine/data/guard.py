"""What a job may name and where it may write: the rules that keep a project's data in the project.

Two rules, checked once here and called by every kind of run (generation, distillation, import,
the map's fills) and every command that writes a file:

- **Run names** (:func:`check_run_name`): a run's name becomes a folder under ``images/``,
  ``thumbs/`` and ``runs/``, so it holds no path separator, no ``..``, no control character and no
  name Windows reserves, and it is not empty.  ``../../escape`` in a spec from someone else would
  otherwise write files wherever the user can.
- **Outputs** (:func:`check_output`, :func:`check_output_dir`): no command writes over a file
  that a project keeps (its catalog and journal, ``project.json``, images and thumbnails, a run's
  manifest, spec, checkpoint or student) or over a file it is reading (its spec).  A typo of a path
  must not empty a catalog.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from prism_gui.engine.data.layout import (
    CATALOG_FILE,
    IMAGES,
    JOB_FILES,
    JOB_FOLDERS,
    JOURNAL,
    PROJECT_FILE,
    PROMPTS_FILE,
    RUNS,
    THUMBS,
)

MAX_RUN_NAME = 100
# device names Windows reserves in any folder, with or without an extension
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
_RUN_NAME = re.compile(r"^[\w][\w .,+=@()\[\]-]*$")  # \w: letters of any script, digits, underscore
_PROJECT_MARKERS = (PROJECT_FILE, CATALOG_FILE)
# a project's own files and folders, relative to its root: never an output of a command
_PROJECT_FILES = {PROJECT_FILE, CATALOG_FILE, f"{CATALOG_FILE}-wal", f"{CATALOG_FILE}-shm", JOURNAL,
                  ".prism.lock", ".prism.lock.json", PROMPTS_FILE}
_PROJECT_FOLDERS = {IMAGES, THUMBS}
# inside runs/<run>/: what a job wrote and a resume or the report reads
_RUN_FILES = set(JOB_FILES)
_RUN_FOLDERS = set(JOB_FOLDERS)


class RunNameError(ValueError):
    """A run name that cannot be a folder of the project."""


class OutputRefused(ValueError):
    """An output path that would overwrite a project's file or the command's input."""


def check_run_name(name, what: str = "run name") -> str:
    """``name`` if a project can take it as a run's name, else :class:`RunNameError` saying why and
    what to write instead."""
    fix = "use letters, digits, spaces and - _ . ( ), e.g. 'prism-2'"
    if not isinstance(name, str) or not name.strip():
        raise RunNameError(f"the {what} is empty: give the run a name ({fix})")
    if "/" in name or "\\" in name:
        raise RunNameError(f"the {what} {name!r} contains a path separator: a run is one folder inside the "
                           f"project, not a path ({fix})")
    if ".." in name:
        raise RunNameError(f"the {what} {name!r} contains '..': a run stays inside its project ({fix})")
    if len(name) > MAX_RUN_NAME:
        raise RunNameError(f"the {what} is {len(name)} characters long: at most {MAX_RUN_NAME}")
    if name != name.strip() or name.endswith("."):
        raise RunNameError(f"the {what} {name!r} starts or ends with a space or ends with a dot, which some "
                           f"file systems drop: remove them ({fix})")
    if not _RUN_NAME.match(name):
        bad = next((ch for ch in name if not re.match(r"[\w .,+=@()\[\]-]", ch)), name[:1])
        raise RunNameError(f"the {what} {name!r} contains {bad!r}, which cannot be in a folder name on every "
                           f"system ({fix})")
    if name.split(".")[0].lower() in _RESERVED:
        raise RunNameError(f"the {what} {name!r} is a device name that Windows reserves: choose another ({fix})")
    return name


def project_above(path: str | Path) -> Path | None:
    """The project folder that holds ``path`` (the nearest folder above it, or itself, with a
    ``project.json`` or a ``catalog.sqlite``), or None."""
    p = Path(path).expanduser().resolve()
    for folder in (p, *p.parents):
        if any((folder / m).is_file() for m in _PROJECT_MARKERS):
            return folder
    return None


def _kept_by_project(p: Path, root: Path, allow: tuple[str, ...]) -> str | None:
    """Why ``p`` (inside project ``root``) is a file the project keeps, or None."""
    parts = p.relative_to(root).parts
    if not parts:
        return "the project folder itself"
    if parts[0] in _PROJECT_FOLDERS:
        return f"inside its '{parts[0]}/' folder"
    if len(parts) == 1 and parts[0] in _PROJECT_FILES and parts[0] not in allow:
        return f"its '{parts[0]}'"
    if parts[0] == RUNS and len(parts) >= 3:
        inside = parts[2:]
        if len(inside) == 1 and inside[0] in _RUN_FILES and inside[0] not in allow:
            return f"run '{parts[1]}''s {inside[0]}"
        if inside[0] in _RUN_FOLDERS or inside[-1].startswith("events.out.tfevents"):
            return f"run '{parts[1]}''s {'/'.join(inside)}"
    return None


def check_output(path: str | Path, *, inputs=(), what: str = "output", allow: tuple[str, ...] = ()) -> Path:
    """``path`` as a file a command may write, else :class:`OutputRefused` naming both files.

    Refused: one of ``inputs`` (the spec the command reads, its prompt file ...), a folder, and a
    file a project keeps (see the module's docstring); ``allow`` names project files this command
    owns (``prism prompts`` writes ``prompts.json``)."""
    p = Path(path).expanduser().resolve()
    for i in inputs:
        if i and Path(i).expanduser().resolve() == p:
            raise OutputRefused(f"the {what} '{path}' is the file this command reads ('{i}'): writing it would "
                                "replace it; give another file name")
    if p.is_dir():
        raise OutputRefused(f"the {what} '{path}' is a folder: give a file name inside it")
    root = project_above(p)
    why = _kept_by_project(p, root, allow) if root is not None else None
    if why:
        raise OutputRefused(f"the {what} '{path}' would overwrite {why} of the project '{root}', which the project "
                            "needs: give a file outside those (e.g. in the project's 'analysis/' folder or "
                            "elsewhere)")
    return p


def check_output_folder(folder: str | Path, what: str = "output folder") -> Path:
    """``folder`` as a folder a command may write its own files into, else :class:`OutputRefused`:
    a project's images or thumbnails, or a run's student, checkpoint or shards folder."""
    p = Path(folder).expanduser().resolve()
    root = project_above(p)
    parts = p.relative_to(root).parts if root is not None else ()
    why = None
    if parts and parts[0] in _PROJECT_FOLDERS:
        why = f"inside its '{parts[0]}/' folder"
    elif parts[:1] == (RUNS,) and len(parts) >= 3 and parts[2] in _RUN_FOLDERS:
        why = f"inside run '{parts[1]}''s '{parts[2]}/' folder"
    if why:
        raise OutputRefused(f"the {what} '{folder}' is {why} of the project '{root}', which only the project "
                            f"writes: give another folder (e.g. '{root / 'analysis'}')")
    return p


def check_output_dir(folder: str | Path, *, owner: str, job: str, what: str = "out_dir") -> Path:
    """``folder`` as the output folder of run ``owner`` (a ``job`` such as ``distill``), else
    :class:`OutputRefused`: a project's own folder, its images, another run's folder, or a folder
    whose manifest says another job wrote it."""
    p = Path(folder).expanduser().resolve()
    root = project_above(p)
    if root is not None:
        parts = p.relative_to(root).parts
        if not parts or parts[0] in _PROJECT_FOLDERS:
            raise OutputRefused(f"the {what} '{folder}' is {'the project folder' if not parts else 'inside the '}"
                                f"{'' if not parts else repr(parts[0] + '/') + ' folder of the project'} '{root}': "
                                f"give a folder of its own, e.g. '{root / 'runs' / owner / 'student'}'")
        if parts[0] == RUNS and len(parts) >= 2 and parts[1] != owner:
            raise OutputRefused(f"the {what} '{folder}' is inside run '{parts[1]}''s folder of the project "
                                f"'{root}', but this is run '{owner}': give '{root / 'runs' / owner / 'student'}' "
                                "or a folder outside the project")
    manifest = p / "manifest.json"
    if manifest.is_file():
        try:
            wrote = json.loads(manifest.read_text()).get("job")
        except (OSError, ValueError, AttributeError):
            wrote = None
        if wrote not in (None, job):
            raise OutputRefused(f"the {what} '{folder}' holds the output of a '{wrote}' job ({manifest}): give an "
                                f"empty folder or one an earlier '{job}' run wrote")
    return p
