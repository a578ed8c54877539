"""What the commands that act on a project folder share: the progress bar, the checks of the
project, its runs and its teacher, each refusing bad input with a message that names the fix."""

from __future__ import annotations

from pathlib import Path


def progress(events):
    from prism_gui.engine.jobs import run_to_completion

    return run_to_completion(events)


def require_project(project: Path, prog: str) -> None:
    if not (project / "catalog.sqlite").exists():
        raise SystemExit(f"{prog}: '{project}' is not a PRISM project (no catalog.sqlite): give the project folder "
                         "that 'prism generate' wrote")


def project_class_names(project: Path) -> list[str] | None:
    """The class names of the project's teacher, from its project.json (None without one)."""
    from prism_gui.engine.project.project import SPEC_FILE, Project

    return (Project.open(project).class_names() or None) if (project / SPEC_FILE).exists() else None


def require_runs(project: Path, runs: str | list[str] | None, prog: str) -> None:
    """``runs`` (one name, or a list) must be image runs of ``project`` (generated or imported)."""
    if not runs:
        return
    from prism_gui.engine.data.catalog import Catalog

    with Catalog(project, create=False) as cat:
        known = [r["id"] for r in cat.runs() if r["kind"] in ("generate", "import")]
    if isinstance(runs, str):
        if runs not in known:
            raise SystemExit(f"{prog}: '{project}' has no generation run '{runs}'; its runs are {known}")
        return
    unknown = [r for r in runs if r not in known]
    if unknown:
        raise SystemExit(f"{prog}: '{project}' has no generation run(s) {unknown}; its runs are {known}")


def project_teacher(project: Path, teacher: str | None, prog: str, why: str = ""):
    """The teacher ``--teacher`` names, else the project's (its project.json), loaded; ``why``
    prefixes the message when neither is there."""
    from prism_gui.engine.project.project import SPEC_FILE, Project
    from prism_gui.engine.teachers.spec import TeacherSpec

    if teacher is None and not (project / SPEC_FILE).exists():
        raise SystemExit(f"{prog}: {why}'{project}' has no {SPEC_FILE} naming {'one' if why else 'its teacher'}: "
                         "add --teacher (e.g. --teacher digits)")
    value = teacher if teacher is not None else Project.open(project).teacher_value()
    return TeacherSpec.from_value(value, "--teacher" if teacher else SPEC_FILE).load()


def read_job_spec(path, settings: dict):
    """A spec file of a command that takes a teacher: (its settings, checked against ``settings``
    plus the teacher's keys, and the TeacherSpec)."""
    from prism_gui.engine.specs import check_settings, load_spec
    from prism_gui.engine.teachers.spec import TeacherSpec

    s = load_spec(path)
    tspec = TeacherSpec.take(s, path)
    return check_settings(s, settings, path, also=" plus the teacher's keys"), tspec
