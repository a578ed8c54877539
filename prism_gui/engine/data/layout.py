"""A project folder's layout, in one place: every path of a project, a run or a job's output
folder is built here, so the folder names live in one module (the guards in ``guard.py``, the
rebuild in ``recover.py`` and every job read them from here).

Layout of a project folder::

    project.json        the project's spec (teacher, generator, settings)
    prompts.json        the prompt set
    catalog.sqlite      one row per image (WAL journal), runs, metrics, curation history
    curation.jsonl      every curation change, replayed by a rebuild
    images/<run>/       full-size PNGs
    thumbs/<run>/       thumbnails, rendered when an image is saved
    runs/<run>/         what each job wrote: manifest.json, spec.json, metrics.jsonl, ... (:class:`JobFiles`)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROJECT_FILE = "project.json"
PROMPTS_FILE = "prompts.json"
CATALOG_FILE = "catalog.sqlite"
JOURNAL = "curation.jsonl"  # append-only: every curation change by (run, item), replayed by a rebuild
IMAGES = "images"
THUMBS = "thumbs"
RUNS = "runs"

# inside a job's folder: what a job wrote and a resume or the report reads
MANIFEST, SPEC, METRICS, RESULT, PRDC = "manifest.json", "spec.json", "metrics.jsonl", "result.json", "prdc.json"
STUDENT, CHECKPOINT, SHARDS = "student", "checkpoint", "shards"
JOB_FILES = (MANIFEST, SPEC, METRICS, RESULT, PROMPTS_FILE, PRDC, "job.json")
JOB_FOLDERS = (STUDENT, CHECKPOINT, SHARDS)


def _in_dir(name: str) -> property:
    return property(lambda self: self.dir / name, doc=f"``{name}`` in the job's folder")


@dataclass(frozen=True)
class JobFiles:
    """The files of one job's folder: a run's ``runs/<run>/``, or a distillation's ``out_dir``."""

    dir: Path
    manifest = _in_dir(MANIFEST)
    spec = _in_dir(SPEC)
    metrics = _in_dir(METRICS)
    result = _in_dir(RESULT)
    prompts = _in_dir(PROMPTS_FILE)
    prdc = _in_dir(PRDC)
    student = _in_dir(STUDENT)
    checkpoint = _in_dir(CHECKPOINT)
    shards = _in_dir(SHARDS)


@dataclass(frozen=True)
class RunPaths(JobFiles):
    """Every path of run ``run`` in the project at ``root``: its job folder (``runs/<run>/``, the
    :class:`JobFiles` fields) and its images and thumbnails."""

    root: Path
    run: str

    @classmethod
    def of(cls, root: str | Path, run: str) -> RunPaths:
        root = Path(root)
        return cls(root / RUNS / run, root, run)

    @property
    def images(self) -> Path:
        return self.root / IMAGES / self.run

    @property
    def thumbs(self) -> Path:
        return self.root / THUMBS / self.run

    def image_name(self, item: int, seed: int) -> str:
        """The file name of item ``item`` (its seed in the name, so two seeds never collide)."""
        return f"{int(item):07d}_{int(seed)}.png"

    def image_rel(self, item: int, seed: int) -> Path:
        """Item ``item``'s image, relative to the project (as the catalog stores it)."""
        return Path(IMAGES) / self.run / self.image_name(item, seed)

    def thumb_rel(self, item: int, seed: int) -> Path:
        return Path(THUMBS) / self.run / self.image_name(item, seed)


def runs_dir(root: str | Path) -> Path:
    """The folder that holds every run's job folder."""
    return Path(root) / RUNS


def student_folder(folder: str | Path) -> Path | None:
    """The timm folder of a student export (``config.json`` and ``model.safetensors``, as timm's
    ``save_for_hf`` writes them): ``folder/student`` or ``folder`` itself (None if neither)."""
    folder = Path(folder)
    for f in (folder / STUDENT, folder):
        if (f / "config.json").is_file() and (f / "model.safetensors").is_file():
            return f
    return None
