"""A project's curated images out as a Hugging Face ``imagefolder`` dataset, with a dataset card.

Layout (``prism export PROJECT DEST``, File ▸ Export dataset)::

    DEST/<class name>/<image>.png    the images (their PNG chunks keep prompt, seed and settings)
    DEST/metadata.jsonl              one line per image: file_name, label (the teacher's class
                                     index), class_name, prompt, negative_prompt, seed, energies,
                                     confidence, status, run, generator
    DEST/classes.json                the class names in the teacher's order (``label`` indexes them)
    DEST/README.md                   the dataset card: generation settings, counts per class, P/R/D/C

``datasets.load_dataset("imagefolder", data_dir=DEST)`` loads it with every metadata column;
``label`` is the teacher's output index, so ``ds.cast_column("label", ClassLabel(names=...))``
with the names of ``classes.json`` makes it a ``ClassLabel`` in the teacher's order.  A folder written
by an earlier export is brought up to date (images no longer selected are removed); a folder
holding anything else is refused.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

from prism_gui.engine.jobs import CancelToken, Event

CARD_TAG = "prism-studio"
METADATA = "metadata.jsonl"
COLUMNS = ("label", "class_name", "prompt", "negative_prompt", "seed", "energy", "energy_class", "energy_free",
           "energy_bn", "confidence", "status", "run", "generator")


class ExportError(ValueError):
    """An export that cannot be written where asked; the message says where to write instead."""


def _folder_name(name: str) -> str:
    bad = '/\\:*?"<>|'
    return "".join("_" if ch in bad else ch for ch in name).strip(" .") or "_"


def _previous_export(dest: Path) -> set[str] | None:
    """The files an earlier PRISM export wrote into ``dest`` (None: ``dest`` is empty or new);
    raises when ``dest`` holds something else."""
    if not dest.exists():
        return None
    if not dest.is_dir():
        raise ExportError(f"'{dest}' is a file: give a folder to export into (a new or empty one)")
    if not any(dest.iterdir()):
        return None
    card = dest / "README.md"
    if not (dest / METADATA).is_file() or not card.is_file() or CARD_TAG not in card.read_text(errors="replace"):
        raise ExportError(f"'{dest}' already holds files that PRISM did not export: choose a new or empty folder "
                          "(an earlier PRISM export there is updated in place)")
    files = set()
    for line in (dest / METADATA).read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            files.add(json.loads(line)["file_name"])
        except (ValueError, KeyError, TypeError):
            continue
    return files


def export_dataset_job(project: str | Path, dest: str | Path, *, statuses=("unreviewed", "keep"), runs=None,
                   class_names: list[str] | None = None, cancel: CancelToken | None = None) -> Iterator[Event]:
    """Copy the project's images with ``statuses`` (of ``runs``, default all) into ``dest`` as an
    imagefolder dataset with ``metadata.jsonl`` and a dataset card; the last event has
    ``data['images']`` and ``data['dest']``."""
    from prism_gui.engine.data.catalog import Catalog
    from prism_gui.engine.data.files import atomic_write_text, write_error

    cancel = cancel or CancelToken()
    root, dest = Path(project), Path(dest).expanduser()
    if dest.resolve() == root.resolve() or root.resolve() in dest.resolve().parents:
        raise ExportError(f"'{dest}' is inside the project: export to a folder outside it")
    from prism_gui.engine.data.guard import check_output_folder

    check_output_folder(dest, "export folder")  # nor into another project's images or a run's files
    old = _previous_export(dest)
    with Catalog(root, create=False) as cat:
        rows = [dict(r) for r in cat.query(statuses=list(statuses), run=runs)]
        run_info = {r["id"]: r for r in cat.runs()}
    if not rows:
        raise ExportError(f"no images with status {', '.join(statuses)} in '{root}'" +
                          (f" (runs {', '.join(runs)})" if runs else "") + ": generate or import images, or include "
                          "other statuses")
    names = list(class_names or [])
    for r in rows:  # classes the project's list does not name (or no list): the catalog's names
        while len(names) <= r["class_index"]:
            names.append(f"class {len(names)}")
        if not class_names:
            names[r["class_index"]] = r["class_name"]
    folders = {k: _folder_name(n) for k, n in enumerate(names)}
    if len(set(folders.values())) != len(folders):  # two classes share a name (ImageNet's two cranes)
        folders = {k: f"{k:04d}_{f}" for k, f in folders.items()}
    lines, wrote = [], set()
    yield Event("export", 0, len(rows), f"exporting {len(rows)} images to {dest}")
    for i, r in enumerate(rows):
        if i % 256 == 0:
            cancel.raise_if_cancelled()
        rel = f"{folders[r['class_index']]}/{r['run']}_{Path(r['path']).name}"
        target = dest / rel
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / r["path"], target)
        except OSError as e:
            raise write_error(target, e) from e
        wrote.add(rel)
        lines.append(json.dumps({"file_name": rel, **{c: r.get(c) for c in COLUMNS}, "label": int(r["class_index"])}))
        if (i + 1) % 256 == 0:
            yield Event("export", i + 1, len(rows), f"{i + 1}/{len(rows)} images")
    atomic_write_text(dest / METADATA, "\n".join(lines) + "\n")
    for stale in sorted((old or set()) - wrote):  # images an earlier export wrote that are no longer chosen
        (dest / stale).unlink(missing_ok=True)
        parent = (dest / stale).parent
        if parent != dest and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
    atomic_write_text(dest / "classes.json", json.dumps(names, indent=1))
    atomic_write_text(dest / "README.md", dataset_card(root, rows, names, run_info, statuses))
    yield Event("export", len(rows), len(rows), f"exported {len(rows)} images to {dest}",
                {"images": len(rows), "dest": str(dest)})


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "1M<n<10M"


def dataset_card(root: Path, rows: list[dict], names: list[str], run_info: dict, statuses) -> str:
    """The dataset's ``README.md``: Hub metadata, how to load it, the generation settings of each
    run, P/R/D/C where ``prism metrics`` measured them, and the images per class."""
    from collections import Counter

    from prism_gui.engine.data.files import saved_prdc

    counts = Counter(r["class_index"] for r in rows)
    per_run = Counter(r["run"] for r in rows)  # in the rows' order
    generator = {r["run"]: r["generator"] for r in rows}
    prdc = {run: saved_prdc(root, run) for run in per_run}
    lines = ["---", "task_categories:", "- image-classification", f"size_categories:\n- {_size_category(len(rows))}",
             "tags:", "- synthetic", "- knowledge-distillation", f"- {CARD_TAG}", "---", "",
             f"# {root.name}: {len(rows):,} synthetic images, {len(counts)} classes", "",
             "Made by PRISM Studio for data-free knowledge distillation (energy-guided, prompt-diversified "
             f"diffusion; arXiv 2509.16897): images with status {', '.join(statuses)}. Each PNG also carries its "
             "prompt, seed and settings (the `parameters` chunk that Stable Diffusion web UIs show).", "",
             "## Load it", "", "```python", "import json", "from datasets import ClassLabel, load_dataset", "",
             'ds = load_dataset("imagefolder", data_dir="PATH/TO/THIS/FOLDER", split="train")',
             'names = json.load(open("PATH/TO/THIS/FOLDER/classes.json"))',
             'ds = ds.cast_column("label", ClassLabel(names=names))  # the teacher\'s class order', "```", "",
             "`label` is the teacher's output index; the other columns: " + ", ".join(f"`{c}`" for c in COLUMNS[1:])
             + ".", "", "## Runs", "",
             "| run | kind | images | generator | steps | CFG | guidance | precision | recall | density | coverage |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for run, n in per_run.items():
        info = run_info.get(run, {})
        spec = info.get("spec") or {}
        sampler = spec.get("sampler") or {}
        guidance = spec.get("guidance") or {}
        lines.append(f"| {run} | {info.get('kind', '–')} | {n:,} | {generator[run]} | {sampler.get('steps', '–')} | "
                     f"{sampler.get('cfg', '–')} | {guidance.get('scale', '–') if guidance else '–'} | "
                     + " | ".join(f"{v:.3f}" if isinstance(v := prdc[run].get(k), (int, float)) else "–"
                                  for k in ("precision", "recall", "density", "coverage")) + " |")
    if not any(prdc.values()):
        lines += ["", "Precision, recall, density and coverage were not measured for these runs (`prism metrics`)."]
    lines += ["", "## Images per class", "", "| label | class | images |", "|---:|---|---:|"]
    lines += [f"| {k} | {names[k]} | {counts.get(k, 0):,} |" for k in range(len(names))]
    return "\n".join(lines)
