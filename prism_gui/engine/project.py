"""A PRISM Studio project: a folder with a spec, a prompt set and the engine's catalog.

Qt-free helpers the desktop app drives (and a script could drive too):

- :class:`Project`: ``project.json`` (teacher, generator, generation and distillation
  settings), ``prompts.json`` and ``catalog.sqlite`` in one folder;
- job generators (``factory(cancel) -> Iterator[Event]``) for what the app runs in its worker:
  loading a teacher, expanding prompts, precision/recall against the Digits test split,
  building the stakeholder report;
- :class:`Report`: headline numbers plus PNG figures, rendered to one self-contained HTML file.

Only light modules are imported at module level: torch and friends load inside the jobs.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from prism_gui.engine.demo_settings import demo_settings
from prism_gui.engine.jobs import CancelToken, Event
from prism_gui.resources import resource_path

SPEC_FILE = "project.json"
PROMPTS_FILE = "prompts.json"
SPEC_VERSION = 1


def studio_home() -> Path:
    """Where the app keeps its data (``PRISM_STUDIO_HOME`` overrides the platformdirs folder)."""
    env = os.environ.get("PRISM_STUDIO_HOME")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("PRISM Studio", "PRISM"))


def studio_config_dir() -> Path:
    env = os.environ.get("PRISM_STUDIO_HOME")
    if env:
        return Path(env) / "config"
    import platformdirs

    return Path(platformdirs.user_config_dir("PRISM Studio", "PRISM"))


def default_project_path() -> Path:
    return studio_home() / "projects" / "digits"


def digits_card() -> dict:
    path = resource_path("digits_teacher", "card.json")
    return json.loads(path.read_text()) if path.exists() else {}


def default_spec(name: str = "Digits") -> dict:
    """A new project's settings: the quick demo's (``demo_settings.QUICK``), which follow the
    benchmarks (docs/BENCHMARKS.md)."""
    card = digits_card()
    q = demo_settings(quick=True)
    return {
        "version": SPEC_VERSION,
        "name": name,
        "created": time.time(),
        "teacher": {"kind": "digits", "source": "digits", "checkpoint": None,
                    "class_names": list(card.get("class_names", [])),
                    "test_accuracy": card.get("test_split", {}).get("accuracy"),
                    "parameters": card.get("parameters")},
        "prompts": {"bank": "digits", "disambiguation": "name", "per_class": q["prompts_per_class"], "seed": 0,
                    "axes": None, "include_plain": True},
        "generate": {"generator": "digits", "scheduler": q["scheduler"], "steps": q["steps"], "cfg": q["cfg"],
                     "images_per_class": q["images_per_class"], "batch_size": 50, "seed": 0,
                     "guidance_scale": q["guidance_scale"], "guidance_window": list(q["guidance_window"]),
                     "guidance_mode": q["guidance_mode"], "energy_weights": {"class": 1.0}},
        "distill": {"student": "digits_student", "epochs": 15, "batch_size": 64, "lr": 5e-3, "temperature": 4.0,
                    "alpha_ce": 0.0, "augment": True, "seed": 0},
    }


@dataclasses.dataclass
class Project:
    root: Path
    spec: dict

    # ------------------------------------------------------------------ files
    @property
    def name(self) -> str:
        return str(self.spec.get("name") or self.root.name)

    @property
    def spec_path(self) -> Path:
        return self.root / SPEC_FILE

    @property
    def prompts_path(self) -> Path:
        return self.root / PROMPTS_FILE

    @classmethod
    def create(cls, root: str | Path, name: str | None = None) -> Project:
        root = Path(root).expanduser()
        root.mkdir(parents=True, exist_ok=True)
        p = cls(root, default_spec(name or root.name))
        p.save()
        return p

    @classmethod
    def open(cls, root: str | Path) -> Project:
        root = Path(root).expanduser()
        path = root / SPEC_FILE
        if not path.exists():
            raise FileNotFoundError(f"'{root}' is not a PRISM project: it has no {SPEC_FILE}. "
                                    "Use File > New project to make one there.")
        try:
            spec = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON ({e}); fix or delete it.") from e
        base = default_spec(spec.get("name", root.name))
        for key, value in base.items():  # fill sections added since the project was made
            if isinstance(value, dict):
                spec[key] = {**value, **spec.get(key, {})}
            else:
                spec.setdefault(key, value)
        return cls(root, spec)

    @classmethod
    def open_or_create(cls, root: str | Path) -> Project:
        root = Path(root).expanduser()
        return cls.open(root) if (root / SPEC_FILE).exists() else cls.create(root)

    def save(self) -> None:
        from prism_gui.engine.catalog import atomic_write_text

        atomic_write_text(self.spec_path, json.dumps(self.spec, indent=2))

    def section(self, key: str) -> dict:
        return self.spec.setdefault(key, {})

    def class_names(self) -> list[str]:
        return list(self.spec.get("teacher", {}).get("class_names") or [])

    # ------------------------------------------------------------------ prompts and catalog
    def load_prompts(self):
        from prism_gui.engine.prompts import PromptSet

        return PromptSet.load(self.prompts_path) if self.prompts_path.exists() else None

    def save_prompts(self, prompts) -> None:
        prompts.save(self.prompts_path)

    def catalog(self):
        from prism_gui.engine.catalog import Catalog

        return Catalog(self.root)

    def run_dir(self, run: str) -> Path:
        return self.root / "runs" / run


# ---------------------------------------------------------------------------- model cache
class ModelCache:
    """Loaded teachers and generators, shared by the jobs of one app (one job runs at a time)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple, object] = {}

    def get(self, key: tuple, load):
        with self._lock:
            if key not in self._items:
                self._items[key] = load()
            return self._items[key]

    def put(self, key: tuple, value) -> None:
        with self._lock:
            self._items[key] = value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


MODELS = ModelCache()


def generator(source: str = "digits"):
    from prism_gui.engine.generators import load_generator

    return MODELS.get(("generator", str(source)), lambda: load_generator(source))


# ---------------------------------------------------------------------------- teacher
def teacher_info(teacher) -> dict:
    """What the Teacher panel shows about a loaded teacher."""
    return {"source": teacher.source, "architecture": teacher.architecture, "parameters": teacher.num_parameters,
            "input_size": list(teacher.input_size), "mean": [round(float(m), 4) for m in teacher.mean],
            "std": [round(float(s), 4) for s in teacher.std], "num_classes": teacher.num_classes,
            "class_names": list(teacher.class_names), "has_batchnorm": teacher.has_batchnorm,
            "test_accuracy": teacher.card.get("test_split", {}).get("accuracy") if teacher.card else None,
            "per_class_accuracy": teacher.card.get("test_split", {}).get("per_class_accuracy", {}) if teacher.card
            else {}, "training": teacher.card.get("training", {}) if teacher.card else {},
            "class_descriptions": list(teacher.class_descriptions or [])}


def load_teacher_job(kind: str, source: str = "", checkpoint: str | None = None,
                     class_names: list[str] | None = None, cancel: CancelToken | None = None) -> Iterator[Event]:
    """Load a teacher; ``kind`` is ``digits``, ``timm``, ``checkpoint`` (timm architecture
    ``source`` + state-dict file ``checkpoint``) or ``torchscript`` (file ``source``).
    The last event carries ``data['teacher']`` and ``data['info']``."""
    yield Event("teacher", 0, 2, "importing the engine")
    from prism_gui.engine.teachers import TeacherLoadError, load_teacher

    names = class_names or None
    if kind == "digits":
        src, ck = "digits", None
    elif kind == "timm":
        if not source.strip():
            raise TeacherLoadError("Give a timm model name, e.g. 'resnet18.a1_in1k'.")
        src, ck = source.strip(), None
    elif kind == "checkpoint":
        if not source.strip():
            raise TeacherLoadError("A checkpoint needs its timm architecture (e.g. 'resnet18'): fill in the "
                                   "architecture field.")
        if not checkpoint:
            raise TeacherLoadError("Choose a checkpoint file (.safetensors, .pth or .pt), or drop one here.")
        src, ck = source.strip(), checkpoint
    elif kind == "torchscript":
        if not source.strip():
            raise TeacherLoadError("Choose a TorchScript file (.torchscript, .ts or .pt), or drop one here.")
        src, ck = source.strip(), None
    else:
        raise TeacherLoadError(f"unknown teacher kind {kind!r}")
    yield Event("teacher", 1, 2, f"loading {src}")
    teacher = load_teacher(src, checkpoint=ck)
    if names and list(names) != list(teacher.class_names):  # the user's own names replace the teacher's
        if len(names) != teacher.num_classes:
            raise TeacherLoadError(f"The teacher has {teacher.num_classes} outputs but {len(names)} class names "
                                   f"were given: give exactly {teacher.num_classes} names, one per line, or clear "
                                   "the list to use the teacher's own.")
        teacher.class_names, teacher.class_descriptions = list(names), None
    MODELS.put(("teacher", kind, src, str(ck)), teacher)
    yield Event("teacher", 2, 2, f"loaded {teacher.architecture or src}",
                {"teacher": teacher, "info": teacher_info(teacher)})


# ---------------------------------------------------------------------------- prompts
def expand_prompts_job(class_names: list[str], bank: str = "digits", per_class: int = 6, seed: int = 0,
                       axes: list[str] | None = None, disambiguation: str = "name",
                       descriptions: list[str] | None = None, include_plain: bool = True, plain: bool = False,
                       cancel: CancelToken | None = None) -> Iterator[Event]:
    """DPE (or plain class-name prompts); the last event carries ``data['prompts']``."""
    from prism_gui.engine.prompts import class_phrases, expand, load_bank, plain_prompts

    b = load_bank(bank)
    phrases = class_phrases(class_names, descriptions, mode=disambiguation)
    yield Event("prompts", 0, 1, "expanding")
    if plain:
        ps = plain_prompts(class_names, b, phrases)
    else:
        ps = expand(class_names, b, per_class=per_class, seed=seed, phrases=phrases, axes=axes,
                    include_plain=include_plain)
    yield Event("prompts", 1, 1, f"{len(ps.prompts)} prompts", {"prompts": ps})


# ---------------------------------------------------------------------------- precision / recall
def prdc_job(project_root: str | Path, runs: list[str] | None = None, teacher=None, k: int = 5,
             statuses=("unreviewed", "keep"), cancel: CancelToken | None = None) -> Iterator[Event]:
    """Precision, recall, density and coverage of the project's images (per run) against the
    Digits test split, in the teacher's features; saved to ``runs/<run>/prdc.json``."""
    from prism_gui.engine.catalog import Catalog, atomic_write_text
    from prism_gui.engine.distill import load_eval_set
    from prism_gui.engine.metrics import prdc_per_class, teacher_features
    from prism_gui.engine.teachers import load_teacher

    cancel = cancel or CancelToken()
    teacher = teacher or load_teacher("digits")
    root = Path(project_root)
    with Catalog(root) as cat:
        all_runs = [r["id"] for r in cat.runs("generate")]
    runs = runs or all_runs
    if not runs:
        raise ValueError("no generated images yet: run a generation first")
    yield Event("metrics", 0, len(runs) + 1, "features of the real test split")
    x_test, y_test = load_eval_set("digits-test", teacher)
    real = teacher_features(teacher, x_test)
    out = {}
    for i, run in enumerate(runs):
        cancel.raise_if_cancelled()
        with Catalog(root) as cat:
            x, y, _ = cat.load_images(run=run, statuses=list(statuses))
        if len(x) <= k:
            out[run] = {"error": f"only {len(x)} images"}
        else:
            m = prdc_per_class(real, y_test, teacher_features(teacher, x), y, k=k, class_names=teacher.class_names)
            out[run] = {**m["overall"], "per_class": m["per_class"], "images": len(x)}
            atomic_write_text(root / "runs" / run / "prdc.json", json.dumps(out[run], indent=2))
        yield Event("metrics", i + 2, len(runs) + 1, f"{run}: " + ", ".join(
            f"{key} {out[run][key]:.2f}" for key in ("precision", "recall", "density", "coverage") if key in out[run]),
            {"run": run, "prdc": out[run]})
    yield Event("metrics", len(runs) + 1, len(runs) + 1, "done", {"results": out})


# ---------------------------------------------------------------------------- report
@dataclasses.dataclass
class Report:
    title: str
    headline: list[tuple[str, str, str]]  # (label, value, note)
    tables: list[tuple[str, list[str], list[list[str]]]]  # (caption, header, rows)
    images: dict[str, bytes]  # name -> PNG
    sections: list[tuple[str, list[str], str]]  # (heading, image names, caption)
    created: float = dataclasses.field(default_factory=time.time)

    def to_html(self, embed: bool = True) -> str:
        def src(name: str) -> str:
            if embed:
                return "data:image/png;base64," + base64.b64encode(self.images[name]).decode("ascii")
            return name

        e = html.escape
        cards = "".join(
            f'<td class="card"><div class="label">{e(label)}</div><div class="value">{e(value)}</div>'
            f'<div class="note">{e(note)}</div></td>' for label, value, note in self.headline)
        parts = [
            "<!DOCTYPE html><html><head><meta charset='utf-8'>",
            f"<title>{e(self.title)}</title><style>",
            "body{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;color:#222;margin:24px;max-width:1500px}",
            "h1{font-size:22px;margin-bottom:2px} h2{font-size:17px;margin-top:22px;color:#234}",
            ".sub{color:#666;font-size:12px} table.cards td.card{background:#eef3f8;padding:10px 14px;"
            "border-radius:6px;vertical-align:top}",
            ".label{font-size:11px;color:#567} .value{font-size:22px;font-weight:bold;color:#123}",
            ".note{font-size:11px;color:#777} table.data{border-collapse:collapse;font-size:13px}",
            "table.data td,table.data th{border:1px solid #ccc;padding:4px 8px;text-align:right}",
            "table.data th{background:#f0f0f0} img{image-rendering:pixelated}",
            "</style></head><body>",
            f"<h1>{e(self.title)}</h1><div class='sub'>PRISM Studio report, "
            f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(self.created))}</div>",
            f"<table class='cards' cellspacing='8'><tr>{cards}</tr></table>",
        ]
        for caption, header, rows in self.tables:
            parts.append(f"<h2>{e(caption)}</h2><table class='data' cellspacing='0' cellpadding='4'><tr>"
                         + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
            for r in rows:
                parts.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>")
            parts.append("</table>")
        def section(heading, names, caption) -> str:
            return (f"<h2>{e(heading)}</h2>" + (f"<p class='sub'>{e(caption)}</p>" if caption else "")
                    + "<p>" + "".join(f"<img src='{src(n)}' alt='{e(n)}'> " for n in names) + "</p>")

        if len(self.sections) >= 2:  # samples on the left, figures on the right
            parts.append("<table cellspacing='0' cellpadding='0'><tr><td valign='top' style='padding-right:24px'>"
                         + section(*self.sections[0]) + "</td><td valign='top'>"
                         + "".join(section(*s) for s in self.sections[1:]) + "</td></tr></table>")
        else:
            parts += [section(*s) for s in self.sections]
        parts.append("</body></html>")
        return "\n".join(parts)

    def save_html(self, path: str | Path) -> Path:
        from prism_gui.engine.catalog import atomic_write_text

        path = Path(path)
        atomic_write_text(path, self.to_html(embed=True))
        path.chmod(0o644)
        return path


def _png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def class_grid_png(cat, class_names: list[str], per_class: int = 12, cell: int = 44, run=None) -> bytes | None:
    """One row per class: its lowest-energy kept/unreviewed images, nearest-neighbour upscaled."""
    from PIL import Image, ImageDraw, ImageFont

    try:
        font = ImageFont.load_default(size=15)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    label_w = 70
    pad = 3
    rows = []
    for k in range(len(class_names)):
        rows.append(cat.query(columns="path", classes=[k], statuses=["keep", "unreviewed"], sort="energy",
                              limit=per_class, run=run))
    if not any(rows):
        return None
    sheet = Image.new("RGB", (label_w + per_class * (cell + pad) + pad, len(class_names) * (cell + pad) + pad),
                      (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for k, rs in enumerate(rows):
        y = pad + k * (cell + pad)
        draw.text((4, y + cell // 2 - 9), class_names[k][:10], fill=(40, 40, 40), font=font)
        for j, r in enumerate(rs):
            with Image.open(cat.root / r["path"]) as im:
                tile = im.convert("L")
            tile = Image.eval(tile, lambda v: 255 - v).resize((cell, cell), Image.NEAREST).convert("RGB")
            sheet.paste(tile, (label_w + pad + j * (cell + pad), y))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return buf.getvalue()


def build_report(project_root: str | Path, cancel: CancelToken | None = None) -> Iterator[Event]:
    """The stakeholder report of a project; the last event carries ``data['report']``."""
    from matplotlib.figure import Figure

    from prism_gui.engine.catalog import Catalog

    root = Path(project_root)
    project = Project.open(root)
    names = project.class_names()
    tspec = project.spec.get("teacher", {})
    yield Event("report", 0, 4, "collecting numbers")
    images: dict[str, bytes] = {}
    sections: list[tuple[str, list[str], str]] = []
    tables: list = []
    with Catalog(root) as cat:
        gen_runs = [r["id"] for r in cat.runs("generate")]
        dist_runs = cat.runs("distill")
        n_all = cat.count()
        n_used = cat.count(statuses=["keep", "unreviewed"])
        n_rej = cat.count(statuses=["reject"])
        results = []
        for r in dist_runs:
            res_path = project.run_dir(r["id"]) / "result.json"
            res = json.loads(res_path.read_text()) if res_path.exists() else {}
            steps, acc = cat.metrics(r["id"], "test_accuracy")
            _, agr = cat.metrics(r["id"], "agreement")
            sl, loss = cat.metrics(r["id"], "loss")
            results.append({"run": r["id"], "spec": r["spec"], "status": r["status"], "result": res,
                            "acc_steps": steps, "acc": acc, "agreement": agr, "loss_steps": sl, "loss": loss})
        yield Event("report", 1, 4, "sample grids")
        grid = class_grid_png(cat, names) if names else None
        if grid:
            images["samples.png"] = grid
            sections.append(("Samples per class", ["samples.png"],
                             "Lowest-energy images the student was trained on (kept or unreviewed), one row "
                             "per class."))
        yield Event("report", 2, 4, "energy histograms")
        if gen_runs:
            fig = Figure(figsize=(6.6, 2.7))
            ax = fig.add_subplot(1, 2, 1)
            energies = {run: cat.column("energy", run=run).astype(float) for run in gen_runs}
            energies = {run: np.maximum(e[np.isfinite(e)], 1e-4) for run, e in energies.items() if len(e)}
            if energies:  # energies span decades: log-spaced bins on a log axis
                lo = min(float(e.min()) for e in energies.values())
                hi = max(float(e.max()) for e in energies.values())
                bins = np.logspace(np.log10(lo), np.log10(max(hi, lo * 1.01)), 30)
                for run, e in energies.items():
                    ax.hist(e, bins=bins, alpha=0.55, label=run)
                ax.set_xscale("log")
            ax.set_xlabel("teacher energy (log; lower = more in-distribution)")
            ax.set_ylabel("images")
            ax.legend(fontsize=8)
            ax2 = fig.add_subplot(1, 2, 2)
            for run in gen_runs:
                c = cat.column("confidence", run=run)
                if len(c):
                    ax2.hist(c.astype(float), bins=20, range=(0, 1), alpha=0.55, label=run)
            ax2.set_xlabel("teacher confidence")
            fig.tight_layout()
            images["energy.png"] = _png(fig)
            sections.append(("Teacher energy of the generated images", ["energy.png"],
                             f"{n_all} images generated in {len(gen_runs)} runs; {n_rej} rejected in curation."))
    yield Event("report", 3, 4, "accuracy curves")
    curves = [r for r in results if len(r["acc"])]
    if curves:
        fig = Figure(figsize=(6.6, 2.7))
        ax = fig.add_subplot(1, 2, 1)
        ax2 = fig.add_subplot(1, 2, 2)
        for r in curves:
            epochs = np.arange(1, len(r["acc"]) + 1)
            ax.plot(epochs, 100 * r["acc"], marker="o", ms=3, label=r["run"])
            if len(r["loss"]):
                ax2.plot(r["loss_steps"], r["loss"], lw=1, label=r["run"])
        t_acc = tspec.get("test_accuracy")
        if t_acc:
            ax.axhline(100 * t_acc, color="k", ls="--", lw=1, label="teacher")
        ax.set_xlabel("epoch")
        ax.set_ylabel("student test accuracy (%)")
        ax.legend(fontsize=8)
        ax2.set_xlabel("training step")
        ax2.set_ylabel("distillation loss")
        ax2.set_yscale("log")
        fig.tight_layout()
        images["accuracy.png"] = _png(fig)
        sections.append(("Student training", ["accuracy.png"],
                         "Accuracy of the student on the real Digits test split, which no run trained on."))
    best = max(curves, key=lambda r: r["acc"][-1], default=None)
    t_acc = tspec.get("test_accuracy")
    t_params = tspec.get("parameters")
    headline = [("Teacher accuracy", f"{100 * t_acc:.1f}%" if t_acc else "n/a", "on the real test split")]
    if best is not None:
        s_params = best["result"].get("student_parameters")
        headline.append(("Student accuracy", f"{100 * best['acc'][-1]:.1f}%",
                         f"run '{best['run']}', no real training data"))
        headline.append(("Agreement", f"{100 * best['agreement'][-1]:.1f}%" if len(best["agreement"]) else "n/a",
                         "student = teacher"))
        if s_params and t_params:
            headline.append(("Model size", f"{s_params / 1e3:.0f}k vs {t_params / 1e3:.0f}k",
                             f"{t_params / s_params:.0f}x fewer parameters"))
        headline.append(("Images used", f"{best['result'].get('images', n_used):,}", f"of {n_all:,} generated"))
    else:
        headline.append(("Images", f"{n_used:,}", f"kept of {n_all:,} generated"))
    rows = []
    for r in results:
        if not len(r["acc"]):
            continue
        prdc_rows = []
        for run in r["spec"].get("runs") or []:
            p = project.run_dir(run) / "prdc.json"
            if p.exists():
                prdc_rows.append(json.loads(p.read_text()))
        m = prdc_rows[0] if prdc_rows else {}

        def f(key, m=m):
            return f"{m[key]:.3f}" if key in m else "-"

        rows.append([r["run"], ", ".join(r["spec"].get("runs") or ["all"]), str(r["result"].get("images", "-")),
                     f"{100 * r['acc'][-1]:.1f}%", f"{100 * r['agreement'][-1]:.1f}%" if len(r["agreement"]) else "-",
                     f("precision"), f("recall"), f("density"), f("coverage")])
    if rows:
        tables.append(("Runs compared", ["distill run", "trained on", "images", "accuracy", "agreement", "precision",
                                         "recall", "density", "coverage"], rows))
    report = Report(title=f"{project.name}: teacher -> student without real data", headline=headline,
                    tables=tables, images=images, sections=sections)
    yield Event("report", 4, 4, "done", {"report": report})


# ---------------------------------------------------------------------------- precision-aware prompts
def score_prompts_job(prompts, teacher=None, generator_source: str = "digits", pilot_per_prompt: int = 1,
                      keep_fraction: float = 0.7, steps: int = 15, cfg: float = 3.0, scheduler: str = "ddim",
                      batch: int = 100, cancel: CancelToken | None = None) -> Iterator[Event]:
    """Precision-aware diversity, as ``prism demo`` does it (:func:`prompts.score_prompts`) with the
    project's generator.  The last event carries ``data['prompts']`` (a scored copy)."""
    from prism_gui.engine.prompts import score_prompts
    from prism_gui.engine.sampler import SamplerSettings
    from prism_gui.engine.teachers import load_teacher

    yield from score_prompts(prompts, generator(generator_source), teacher or load_teacher("digits"),
                             pilot_per_prompt=pilot_per_prompt, keep_fraction=keep_fraction,
                             sampler=SamplerSettings(steps=steps, cfg=cfg, scheduler=scheduler),
                             batch_size=batch, cancel=cancel)
