"""Images made elsewhere, into a project as a run (``prism import``, File ▸ Import images).

Each image of a folder (and its subfolders) becomes a catalog row like a generated one, so
curation, metrics, the map and distillation treat it the same way:

- **class**: from its subfolder, named as the evaluation folders of the real-world run are (a
  class name, a WordNet id, or a mapping file; :mod:`~prism_gui.engine.data.folders`); where
  the folder has no class subfolders (or an image lies outside them), the teacher's prediction,
  marked ``class_from: "teacher"`` in the row's settings (its ``correct`` is then unknown);
- **prompt, seed and settings**: read with ``sd-parsers`` from the PNG metadata that Stable
  Diffusion web UIs (AUTOMATIC1111, Forge), ComfyUI, Fooocus, InvokeAI and NovelAI write;
- **scores**: every energy term, confidence, entropy and top-5 from the teacher, on the image
  as distillation reads it back (resized to the teacher's input).

The stored copy is a PNG (with PRISM's chunks, so a damaged catalog can be rebuilt from it); the
original's path, SHA-256, size and source tool are kept in ``settings["import"]``.  An image whose
bytes are already in the project (any earlier import) is skipped, so importing a folder again
adds only what is new.  Files that cannot be read are listed and skipped, never fatal.

The catalog's ``seed`` column is unique within a run: an image's own seed goes there when no
other image of the run has it, else (and where the file has none) ``-(item + 1)``; the seed from
the file is always in ``settings["import"]["seed"]``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from prism_gui.engine.jobs import CancelToken, Event

IMPORT_KIND = "import"


def class_plan(folder: Path, files: list[Path], teacher, mapping=None) -> tuple[dict[Path, int | None], str]:
    """Each file's class index (None: the teacher decides) and how the classes were found:
    ``"folders"`` (subfolders named by classes, ids or ``mapping``) or ``"teacher"``."""
    from prism_gui.engine.data.folders import FolderError, label_folders

    in_subfolder = [f for f in files if f.parent != folder]
    if not in_subfolder:
        if mapping is not None:
            raise FolderError(f"'{folder}' has no subfolders for the mapping file to name: put each class's images in "
                              "a subfolder, or leave the mapping out (the teacher then labels each image)")
        return {f: None for f in files}, "teacher"
    try:
        labels = label_folders(folder, list(teacher.class_names), teacher.class_ids, mapping)
    except FolderError:
        names = set(teacher.class_names) | set(teacher.class_ids or [])
        subdirs = {f.relative_to(folder).parts[0] for f in in_subfolder}
        if mapping is not None or subdirs & names:
            raise  # some folders name classes, others do not: say which
        return {f: None for f in files}, "teacher"  # folders that organise, not label: the teacher labels
    return {f: (labels.get(f.relative_to(folder).parts[0]) if f.parent != folder else None) for f in files}, "folders"


def metadata_reader():
    """An ``sd-parsers`` manager for :func:`read_generation_info` (one per import)."""
    import logging

    from sd_parsers import ParserManager

    logging.getLogger("sd_parsers").setLevel(logging.CRITICAL)  # a file without metadata is normal here
    return ParserManager()


def read_generation_info(im, reader=None) -> dict:
    """Prompt, negative prompt, seed, steps, CFG, sampler, model and tool from an image's
    metadata (``sd-parsers``: A1111/Forge, ComfyUI, Fooocus, InvokeAI, NovelAI); {} if none."""
    try:
        info = (reader or metadata_reader()).parse(im)
    except Exception:  # metadata that claims a tool but does not parse: the image still imports
        return {}
    if info is None:
        return {}
    out: dict = {"tool": getattr(info.generator, "value", str(info.generator))}
    out["prompt"] = info.full_prompt or ""
    out["negative_prompt"] = info.full_negative_prompt or ""
    if info.samplers:
        s = info.samplers[0]
        params = dict(s.parameters or {})

        def number(key, cast):
            try:
                return cast(float(params[key])) if key in params else None
            except (TypeError, ValueError):
                return None

        seed = number("seed", int)
        if seed is None:
            seed = number("noise_seed", int)
        out.update(seed=seed, steps=number("steps", int), cfg=number("cfg_scale", float), sampler=s.name or None,
                   model=(s.model.name if s.model is not None else None))
    return {k: v for k, v in out.items() if v not in (None, "")}


def _known_hashes(cat) -> set[str]:
    runs = [r["id"] for r in cat.runs(IMPORT_KIND)]
    if not runs:
        return set()
    out = set()
    for r in cat.query(run=runs, columns="settings"):
        try:
            h = json.loads(r["settings"]).get("import", {}).get("sha256")
        except (ValueError, AttributeError):
            h = None
        if h:
            out.add(h)
    return out


def default_run_name(cat, folder: Path) -> str:
    """``import-<folder>``, or with a number when that run came from another folder."""
    base = "import-" + (re.sub(r"[^A-Za-z0-9_.-]+", "-", folder.name).strip("-") or "images")
    specs = {r["id"]: r["spec"] for r in cat.runs()}
    name, n = base, 1
    while name in specs and specs[name].get("folder") != str(folder):
        n += 1
        name = f"{base}-{n}"
    return name


def import_job(project: str | Path, folder: str | Path, teacher, *, run: str | None = None, mapping=None,
                  energy=None, batch_size: int = 32, cancel: CancelToken | None = None) -> Iterator[Event]:
    """Import every image under ``folder`` into ``project`` as the run ``run`` (default
    ``import-<folder name>``); the last event's data: ``run``, ``added``, ``duplicates``,
    ``unreadable`` (``[file, reason]`` pairs), ``teacher_labelled``, ``classes_from``."""
    import torch

    from prism_gui.engine.data.catalog import Catalog
    from prism_gui.engine.data.datasets import pm1_tensor
    from prism_gui.engine.data.lock import project_lock
    from prism_gui.engine.generation.energies import EnergySpec
    from prism_gui.engine.generation.sampler import score_images
    from prism_gui.engine.versions import manifest

    cancel = cancel or CancelToken()
    root, folder = Path(project), Path(folder).expanduser()
    files = _files_to_import(root, folder, run)
    energy = energy or EnergySpec({"class": 1.0})
    plan, classes_from = class_plan(folder, files, teacher, mapping)
    mode = "L" if teacher.input_size[0] == 1 else "RGB"  # as distillation reads the stored image back
    size = tuple(teacher.input_size[1:])
    reader = metadata_reader()
    with project_lock(root, "prism import"), Catalog(root) as cat:
        cat.repair()  # an import killed between a file and its row: the file is adopted, not copied again
        run = run or default_run_name(cat, folder)
        cat.check_run(run, IMPORT_KIND)
        known = _known_hashes(cat)
        done = cat.done_items(run)
        item = max(done) + 1 if done else 0
        used_seeds = {int(r["seed"]) for r in cat.query(run=run, columns="seed")}
        spec = {"folder": str(folder), "mapping": str(mapping) if mapping else None, "classes_from": classes_from,
                "teacher": getattr(teacher, "source", ""), "energy": dataclasses.asdict(energy)}
        cat.start_run(run, IMPORT_KIND, spec, manifest(spec, {}, job="import", files=len(files)))
        added = duplicates = teacher_labelled = 0
        unreadable: list[list[str]] = []
        status = "interrupted"
        try:
            yield Event("import", 0, len(files), f"{len(files)} image files in {folder}"
                        + (" (classes from the subfolders)" if classes_from == "folders" else
                           " (no class subfolders: the teacher labels each image)"))
            for start in range(0, len(files), batch_size):
                cancel.raise_if_cancelled()
                batch, dup = _read_batch(files[start:start + batch_size], folder, known, reader, mode, unreadable)
                duplicates += dup
                if not batch:
                    yield Event("import", min(start + batch_size, len(files)), len(files),
                                f"{added} added, {duplicates} already in the project")
                    continue
                # the teacher sees each image as distillation will read it back: its own size resized to the input
                x = torch.stack([pm1_tensor(b[-1], size) for b in batch]).to(teacher.device)
                targets = [plan[f] for f, *_ in batch]
                if any(k is None for k in targets):
                    with torch.no_grad():
                        predicted = teacher.logits(x).argmax(-1).tolist()
                    targets = [p if k is None else k for k, p in zip(targets, predicted, strict=True)]
                scores = score_images(teacher, x, targets, energy)
                rows = []
                for (f, rel, digest, meta, px, _seen), k, sc in zip(batch, targets, scores, strict=True):
                    by_teacher = plan[f] is None
                    teacher_labelled += by_teacher
                    rows.append(_stored_row(root, run, item, px, int(k), teacher.class_names[int(k)], meta, sc,
                                            used_seeds, {"file": rel, "folder": str(folder), "sha256": digest,
                                                         "class_from": "teacher" if by_teacher else classes_from}))
                    item += 1
                ids = cat.insert_rows(rows, skip_existing=False)
                added += len(ids)
                yield Event("import", min(start + batch_size, len(files)), len(files),
                            f"{added} added, {duplicates} already in the project", {"new_ids": ids})
            status = "finished"
        finally:
            cat.finish_run(run, status)
    result = {"run": run, "added": added, "duplicates": duplicates, "unreadable": unreadable,
              "teacher_labelled": teacher_labelled, "classes_from": classes_from, "files": len(files)}
    yield Event("import", len(files), len(files),
                f"{added} images added to '{run}', {duplicates} already in the project"
                + (f", {len(unreadable)} unreadable" if unreadable else ""), {"result": result})


def _read_batch(files, folder: Path, known: set, reader, mode: str, unreadable: list) -> tuple[list, int]:
    """The readable, new images among ``files``: ``(file, relative path, sha256, metadata, pixels as
    stored, pixels as the teacher sees them)`` each, and how many were already in the project.
    Unreadable files are appended to ``unreadable`` with the reason."""
    from PIL import Image

    from prism_gui.engine.data.datasets import to_mode
    from prism_gui.engine.data.folders import image_file_problem

    batch, duplicates = [], 0
    for f in files:
        rel = f.relative_to(folder).as_posix()
        problem = image_file_problem(f)
        if problem:
            unreadable.append([rel, problem])
            continue
        try:
            digest = hashlib.sha256(f.read_bytes()).hexdigest()
            if digest in known:
                duplicates += 1
                continue
            with Image.open(f) as im:
                im.load()
                meta = read_generation_info(im, reader)
                stored = to_mode(im, "RGB" if im.mode not in ("L", "1", "I;16", "I", "F") else "L")
            pixels, seen = np.array(stored), np.array(to_mode(stored, mode))
        except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as e:
            unreadable.append([rel, f"cannot be read ({type(e).__name__}: {str(e)[:120]})"])
            continue
        known.add(digest)
        batch.append((f, rel, digest, meta, pixels[..., None] if pixels.ndim == 2 else pixels,
                      seen[..., None] if seen.ndim == 2 else seen))
    return batch, duplicates


def _stored_row(root, run: str, item: int, px, k: int, class_name: str, meta: dict, score: dict, used_seeds: set,
                origin: dict) -> dict:
    """One imported image written as the project stores images, with its own seed when it has a
    free one (else a negative one), its generation settings and where it came from; its row."""
    from prism_gui.engine.data.image_files import write_image_files

    if origin["class_from"] == "teacher":
        score.pop("correct", None)  # the teacher named the class: its "correctness" means nothing
    own_seed = meta.get("seed")
    seed = own_seed if own_seed is not None and own_seed not in used_seeds else -(item + 1)
    used_seeds.add(seed)
    settings = {"sampler": {k2: v for k2, v in (("steps", meta.get("steps")), ("cfg", meta.get("cfg")),
                                                ("scheduler", meta.get("sampler"))) if v is not None},
                "guidance": {},
                "import": {"file": origin["file"], "folder": origin["folder"], "sha256": origin["sha256"],
                           "seed": own_seed, "tool": meta.get("tool"), "model": meta.get("model"),
                           "class_from": origin["class_from"], "size": [int(px.shape[1]), int(px.shape[0])]}}
    return write_image_files(root, run, item, px, class_index=k, class_name=class_name, prompt=meta.get("prompt", ""),
                             negative_prompt=meta.get("negative_prompt", ""), seed=seed,
                             generator=f"imported: {meta['model']}" if meta.get("model") else "imported",
                             settings=settings, score=score)


def _files_to_import(root: Path, folder: Path, run: str | None) -> list[Path]:
    """The image files under ``folder``, or an error naming the problem: a run name that cannot
    be a folder, a folder that is not there, inside the project, or without images."""
    from prism_gui.engine.data.folders import IMAGE_SUFFIXES, image_files

    if run is not None:
        from prism_gui.engine.data.guard import check_run_name

        check_run_name(run)
    if not folder.is_dir():
        raise FileNotFoundError(f"'{folder}' " + ("is a file: give the folder that holds the images" if folder.exists()
                                                   else f"does not exist (working folder: {Path.cwd()})"))
    if root.resolve() == folder.resolve() or root.resolve() in folder.resolve().parents:
        raise ValueError(f"'{folder}' is inside the project: import from a folder outside it")
    files = image_files(folder)
    if not files:
        raise ValueError(f"'{folder}' holds no image files ({', '.join(IMAGE_SUFFIXES)}), in it or its subfolders: "
                         "give the folder that holds the images")
    return files
