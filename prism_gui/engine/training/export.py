"""A distilled student, out as a timm model with a model card (and ONNX).

Layout of a distillation's output folder (``runs/<run>/`` in a project)::

    student/config.json        timm's Hub config: architecture, class count, label names,
                               input size, interpolation, crop and normalization
    student/model.safetensors  the weights (timm's own layout)
    student/README.md          the model card: teacher, student, synthetic set, spec, accuracy
    student.onnx               when asked for (batch dimension dynamic)

The folder is written by ``timm.models.save_for_hf``, so
``timm.create_model("local-dir:runs/<run>/student", pretrained=True)`` rebuilds the student
with its class names (``model.pretrained_cfg["label_names"]``) and gives the same logits; it
can go to the Hub with ``huggingface-cli upload``.  (The built-in Digits student is a PRISM
architecture: ``import prism_gui.engine.digits.models`` registers it in timm first.)

Runs written before this layout (``student.safetensors`` + ``student.json``) still load.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from prism_gui.engine.data.layout import STUDENT, student_folder

STUDENT_DIR = STUDENT  # a run folder's timm student folder (data/layout.py)
PRDC_KEYS = ("precision", "recall", "density", "coverage")
# pretrained-config keys that describe where a random-init architecture's ImageNet weights come
# from: not true of a distilled student
_SOURCE_KEYS = ("tag", "license", "paper_ids", "paper_name", "origin_url", "notes", "hf_hub_filename",
                "test_input_size", "test_crop_pct", "test_pool_size", "label_offset")


def _data_config(teacher) -> dict:
    """The preprocessing the student was trained with: the teacher's (the student sees its input)."""
    return {"input_size": tuple(int(v) for v in teacher.input_size), "mean": tuple(float(v) for v in teacher.mean),
            "std": tuple(float(v) for v in teacher.std), "interpolation": str(teacher.interpolation),
            "crop_pct": float(teacher.crop_pct), "crop_mode": "center"}


def export_student(student, teacher, out: Path, onnx: bool = True, card: str | None = None) -> list[Path]:
    """Write ``out/student/`` (timm: config.json, model.safetensors, README.md) and, with ``onnx``,
    ``out/student.onnx``; returns the paths written."""
    from timm.models import save_for_hf

    from prism_gui.engine.data.files import atomic_write_text

    out = Path(out)
    folder = out / STUDENT_DIR
    student = student.eval().cpu()
    cfg = dict(getattr(student, "pretrained_cfg", None) or {})
    arch = cfg.get("architecture") or type(student).__name__
    student.pretrained_cfg = {k: v for k, v in cfg.items() if k not in _SOURCE_KEYS} | {"architecture": arch}
    label_config = {"label_names": list(teacher.class_names)}
    if teacher.class_descriptions and len(set(teacher.class_names)) == len(teacher.class_names):
        label_config["label_descriptions"] = dict(zip(teacher.class_names, teacher.class_descriptions, strict=True))
    try:
        save_for_hf(student, str(folder), model_config=label_config, safe_serialization=True,
                    data_config=_data_config(teacher))
    except OSError as e:
        from prism_gui.engine.data.files import write_error

        raise write_error(folder, e) from e
    finally:
        student.pretrained_cfg = cfg
    paths = [folder / "config.json", folder / "model.safetensors"]
    if card is not None:
        atomic_write_text(folder / "README.md", card)
        paths.append(folder / "README.md")
    if onnx:
        # the torch.export-based exporter (the TorchScript one is deprecated); batch is dynamic
        dummy = torch.zeros(2, *teacher.input_size)
        torch.onnx.export(student, (dummy,), str(out / "student.onnx"), input_names=["input"],
                          output_names=["logits"], dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
                          dynamo=True, verbose=False)
        paths.append(out / "student.onnx")
    teacher.to(teacher.device)
    return paths


def _read_json(path: Path, fix: str) -> dict:
    """A JSON object file of a student export, or a ValueError naming the file and ``fix``."""
    from prism_gui.engine.specs import read_text_file

    try:
        info = json.loads(read_text_file(path, "The student's file"))
    except json.JSONDecodeError as e:
        raise ValueError(f"'{path}' is not valid JSON ({e}): {fix}") from None
    if not isinstance(info, dict):
        raise ValueError(f"'{path}' holds a {type(info).__name__}, not the student's settings: {fix}")
    return info


def _check_student_weights(path: Path, fix: str) -> None:
    """Refuse, before any loader reads it, a student weights file that is damaged or not safetensors
    (a pickle under the .safetensors name is never unpickled): the teachers' checks, the students' fix."""
    from prism_gui.engine.weights import checkpoint_problem, sniff_model_file

    problem = checkpoint_problem(path)
    if problem is None and sniff_model_file(path) != "safetensors":
        problem = ("is not a safetensors file (it is a pickle or torch.save archive under that name); PRISM Studio "
                   "does not load pickles")
    if problem:
        raise ValueError(f"The student's weights '{path}' {problem.split('. ')[0]}: {fix}")


def load_student(folder: str | Path, teacher, architecture: str | None = None) -> torch.nn.Module:
    """A student exported by :func:`export_student`: a run's folder, or its ``student/`` folder
    (timm ``local-dir:``); also the older ``student.safetensors`` + ``student.json`` layout.  Its
    files go through the teachers' safe checks first: a damaged file, a pickle or a config that does
    not match the weights is a ValueError naming the file and the fix, never a library's traceback."""
    import timm

    from prism_gui.engine.teachers.checkpoints import read_state_dict
    from prism_gui.engine.training.distill import make_student
    from prism_gui.engine.worlds import load_worlds

    folder = Path(folder)
    fix = (f"export the student again (`prism distill` writes '{STUDENT_DIR}/config.json' and "
           f"'{STUDENT_DIR}/model.safetensors'), or copy the folder again")
    load_worlds()  # the built-in worlds' architectures are registered in timm
    timm_dir = student_folder(folder)
    if timm_dir is not None:
        info = _read_json(timm_dir / "config.json", fix)
        n = int(info.get("num_classes", teacher.num_classes))
        if n != teacher.num_classes:
            raise ValueError(f"the student in '{timm_dir}' has {n} classes but the teacher has "
                             f"{teacher.num_classes}: evaluate it with the teacher it was distilled from")
        if architecture and architecture != info.get("architecture"):
            raise ValueError(f"the student in '{timm_dir}' is a {info.get('architecture')}, not a {architecture}: "
                             "leave 'student' out (the folder says its architecture)")
        _check_student_weights(timm_dir / "model.safetensors", fix)
        try:
            return timm.create_model(f"local-dir:{timm_dir}", pretrained=True).eval()
        except (RuntimeError, AttributeError, KeyError, TypeError, ValueError) as e:
            raise ValueError(f"the student in '{timm_dir}' cannot be built: its config.json names architecture "
                             f"'{info.get('architecture')}', which does not match model.safetensors "
                             f"({type(e).__name__}: {str(e).strip().splitlines()[0][:160]}). {fix[0].upper()}{fix[1:]}"
                             ) from None
    for f in ("student.json", "student.safetensors"):
        if not (folder / f).is_file():
            raise ValueError(f"'{folder}' holds no exported student ({STUDENT_DIR}/config.json and "
                             f"{STUDENT_DIR}/model.safetensors): give the out_dir of a `prism distill` run")
    info = _read_json(folder / "student.json", fix)
    if int(info.get("num_classes", teacher.num_classes)) != teacher.num_classes:
        raise ValueError(f"the student in '{folder}' has {info['num_classes']} classes but the teacher has "
                         f"{teacher.num_classes}: evaluate it with the teacher it was distilled from")
    _check_student_weights(folder / "student.safetensors", fix)
    student = make_student(architecture or info.get("architecture", ""), teacher)
    try:
        student.load_state_dict(read_state_dict(folder / "student.safetensors"))
    except RuntimeError as e:
        raise ValueError(f"the weights in '{folder / 'student.safetensors'}' do not fit a "
                         f"{architecture or info.get('architecture')} ({str(e).strip().splitlines()[0][:160]}): "
                         f"{fix}") from None
    return student.eval()


# --------------------------------------------------------------------------- the model card
def training_set_info(spec: dict, images: int) -> dict:
    """What the student was distilled on: a project's runs (counts by status, P/R/D/C saved by
    ``prism metrics``) or a named real set."""
    info: dict = {"data": spec.get("data", "catalog"), "images": int(images)}
    project = spec.get("project")
    if info["data"] != "catalog" or not project:
        return info
    from prism_gui.engine.data.catalog import Catalog
    from prism_gui.engine.data.files import saved_prdc

    root = Path(project)
    info["project"] = str(root)
    info["statuses"] = list(spec.get("statuses") or [])
    info["energy_max"] = spec.get("energy_max")
    with Catalog(root, create=False) as cat:
        runs = spec.get("runs") or [r["id"] for r in cat.runs() if r["kind"] in ("generate", "import")]
        rows = []
        for run in runs:
            counts = {s: cat.count(run=run, statuses=[s]) for s in ("unreviewed", "keep", "reject")}
            saved = saved_prdc(root, run)
            rows.append({"run": run, **counts, **{k: saved[k] for k in PRDC_KEYS if k in saved}})
    info["runs"] = rows
    return info


def _fmt(v, pct: bool = False) -> str:
    if v is None:
        return "–"
    return f"{100 * v:.2f}%" if pct else f"{v:.3f}" if isinstance(v, float) else str(v)


def model_card(spec: dict, result: dict, teacher, set_info: dict, spec_file: str = "spec.json") -> str:
    """The student's ``README.md``: Hub metadata, then teacher, student, synthetic set, spec,
    accuracy and agreement, and the command that reproduces it."""
    from prism_gui.engine.versions import package_versions

    versions = package_versions()
    tsource = teacher.source or str(spec.get("teacher"))
    lines = ["---", "library_name: timm", "pipeline_tag: image-classification",
             "tags:", "- image-classification", "- timm", "- knowledge-distillation", "- data-free", "- prism-studio",
             "---", "", f"# {result.get('student', spec.get('student'))}, distilled from {Path(tsource).name}", "",
             "A student distilled without the teacher's training data by PRISM Studio (energy-guided, prompt-"
             "diversified diffusion; arXiv 2509.16897): it learned the teacher's soft outputs on a synthetic set.",
             "", "## Use", "", "```python", "import timm", "",
             "model = timm.create_model(\"local-dir:PATH/TO/THIS/FOLDER\", pretrained=True).eval()",
             "labels = model.pretrained_cfg[\"label_names\"]",
             "config = timm.data.resolve_data_config({}, model=model)  # size, crop, normalization",
             "transform = timm.data.create_transform(**config)", "```", ""]
    if str(result.get("student", spec.get("student", ""))).startswith("digits_"):
        lines += ["The architecture is PRISM's built-in Digits student: `import prism_gui.engine.digits.models` "
                  "registers it in timm before `create_model`.", ""]
    c, h, w = teacher.input_size
    lines += ["## Teacher", "", "| | |", "|---|---|", f"| source | `{tsource}` |",
              f"| architecture | {teacher.architecture or '–'} |", f"| classes | {teacher.num_classes} |",
              f"| input | {c}×{h}×{w}, {teacher.interpolation}, crop {teacher.crop_pct:g} |",
              f"| normalization | mean {list(teacher.mean)}, std {list(teacher.std)} |", "",
              "## Student", "", "| | |", "|---|---|",
              f"| architecture | {result.get('student', spec.get('student'))} |",
              f"| parameters | {result.get('student_parameters', 0):,} |",
              f"| epochs | {spec.get('epochs')} ({result.get('seconds', 0):.0f} s, {result.get('processes', 1)} "
              f"process{'es' if result.get('processes', 1) != 1 else ''}) |", ""]
    lines += ["## Training set", ""]
    if set_info.get("data") == "catalog":
        lines += [f"{set_info['images']:,} synthetic images of the project `{set_info.get('project')}`, statuses "
                  f"{', '.join(set_info.get('statuses') or [])}"
                  + (f", energy ≤ {set_info['energy_max']:g}" if set_info.get("energy_max") is not None else "")
                  + ".", "", "| run | unreviewed | keep | reject | precision | recall | density | coverage |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in set_info.get("runs", []):
            lines.append(f"| {r['run']} | {r['unreviewed']} | {r['keep']} | {r['reject']} | "
                         + " | ".join(_fmt(r.get(k)) for k in PRDC_KEYS) + " |")
        if not any("precision" in r for r in set_info.get("runs", [])):
            lines += ["", "Precision, recall, density and coverage were not measured: `prism metrics` (or the "
                      "Generate tab's Metrics) saves them to `runs/<run>/prdc.json`."]
    else:
        lines.append(f"{set_info['images']:,} images of the built-in set `{set_info.get('data')}` (real data: "
                     "the upper bound a synthetic set is compared with).")
    lines += ["", "## Evaluation", ""]
    if "test_accuracy" in result:
        lines += [f"On `{spec.get('eval')}` ({result.get('eval_images', '–')} images):",
                  "", "| | |", "|---|---|", f"| student accuracy | {_fmt(result.get('test_accuracy'), True)} |",
                  f"| teacher accuracy | {_fmt(result.get('teacher_accuracy'), True)} |",
                  f"| agreement with the teacher | {_fmt(result.get('agreement'), True)} |", ""]
    else:
        lines += ["Not evaluated: the run had no real held-out set (`eval`). Measure it with `prism evaluate`.", ""]
    shown = {k: v for k, v in spec.items() if k not in ("out_dir",)}
    lines += ["## Distillation", "", "```json", json.dumps(shown, indent=2), "```", "",
              "## Reproduce", "", f"```\nprism distill {spec_file}\n```", "",
              f"`{spec_file}` is the spec above (beside this folder in the run's output). Made with PRISM Studio, "
              f"torch {versions.get('torch', '?')}, timm {versions.get('timm', '?')}.", ""]
    return "\n".join(lines)
