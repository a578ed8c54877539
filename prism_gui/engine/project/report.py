"""The stakeholder report: headline numbers plus PNG figures, one self-contained HTML file."""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from prism_gui.engine.data.layout import JobFiles, RunPaths
from prism_gui.engine.jobs import CancelToken, Event
from prism_gui.engine.project.project import Project
from prism_gui.engine.teachers.classes import CLASS_COLUMNS


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
            "div.scroll{max-height:420px;overflow:auto;display:inline-block;border:1px solid #ddd}",
            "table.sortable th{cursor:pointer;position:sticky;top:0}",
            "</style>",
            "<script>document.addEventListener('click',function(ev){var th=ev.target.closest('table.sortable th');"
            "if(!th)return;var t=th.closest('table'),i=Array.from(th.parentNode.children).indexOf(th),"
            "rows=Array.from(t.rows).slice(1),asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';"
            "function v(r){var s=r.cells[i].textContent.replace('%','');var n=parseFloat(s);return isNaN(n)?s:n;}"
            "rows.sort(function(a,b){var x=v(a),y=v(b);return (x>y?1:x<y?-1:0)*(asc?1:-1);});"
            "rows.forEach(function(r){t.tBodies[0].appendChild(r);});});</script>",
            "</head><body>",
            f"<h1>{e(self.title)}</h1><div class='sub'>PRISM Studio report, "
            f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(self.created))}</div>",
            f"<table class='cards' cellspacing='8'><tr>{cards}</tr></table>",
        ]
        def table(caption, header, rows) -> str:
            long = len(rows) > 30  # long tables scroll and sort (click a column header), after the figures
            out = [f"<h2>{e(caption)}</h2>" + ("<div class='scroll'>" if long else "")
                   + f"<table class='data{' sortable' if long else ''}' cellspacing='0' cellpadding='4'><tr>"
                   + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>"]
            for r in rows:
                out.append("<tr>" + "".join(
                    f"<td>{e(c)}</td>" if _numeric(c) else f"<td align='left' style='text-align:left'>{e(c)}</td>"
                    for c in r) + "</tr>")
            out.append("</table>" + ("</div>" if long else ""))
            return "\n".join(out)

        parts += [table(*t) for t in self.tables if len(t[2]) <= 30]
        def section(heading, names, caption) -> str:
            return (f"<h2>{e(heading)}</h2>" + (f"<p class='sub'>{e(caption)}</p>" if caption else "")
                    + "<p>" + "".join(f"<img src='{src(n)}' alt='{e(n)}'> " for n in names) + "</p>")

        if len(self.sections) >= 2:  # samples on the left, figures on the right
            parts.append("<table cellspacing='0' cellpadding='0'><tr><td valign='top' style='padding-right:24px'>"
                         + section(*self.sections[0]) + "</td><td valign='top'>"
                         + "".join(section(*s) for s in self.sections[1:]) + "</td></tr></table>")
        else:
            parts += [section(*s) for s in self.sections]
        parts += [table(*t) for t in self.tables if len(t[2]) > 30]
        parts.append("</body></html>")
        return "\n".join(parts)

    def save_html(self, path: str | Path) -> Path:
        from prism_gui.engine.data.files import atomic_write_text

        path = Path(path)
        atomic_write_text(path, self.to_html(embed=True))
        path.chmod(0o644)
        return path


MAX_HIST_RUNS = 6  # runs drawn in the histograms and curves (one legend row each)


def _numeric(cell: str) -> bool:
    c = str(cell).strip().rstrip("%").replace(",", "")
    if c in ("", "-"):
        return True
    try:
        float(c)
        return True
    except ValueError:
        return False


def _png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


MAX_GRID_CLASSES = 24


def grid_classes(counts: dict[int, int], n_classes: int, limit: int = MAX_GRID_CLASSES, seed: int = 0) -> list[int]:
    """The classes a sample grid shows: all of them up to ``limit``, else ``limit`` classes with
    images drawn evenly over the class order (seeded, so a report is reproducible)."""
    have = [k for k in range(n_classes) if counts.get(k, 0) > 0]
    if len(have) <= limit:
        return have
    rng = np.random.default_rng(seed)
    strata = np.array_split(np.array(have), limit)
    return sorted(int(rng.choice(s)) for s in strata if len(s))


def class_grid_png(cat, class_names: list[str], per_class: int = 12, cell: int = 44, run=None,
                   classes: list[int] | None = None, invert_gray: bool = True) -> bytes | None:
    """One row per class (``classes``, default all): its lowest-energy kept/unreviewed images.
    Colour images are shown as they are; grayscale ones (Digits) dark-on-light when ``invert_gray``."""
    from PIL import Image, ImageDraw, ImageFont

    try:
        font = ImageFont.load_default(size=13)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    classes = list(range(len(class_names))) if classes is None else list(classes)
    label_w = 120 if any(len(class_names[k]) > 10 for k in classes) else 70
    pad = 3
    rows = []
    for k in classes:
        rows.append(cat.query(columns="path", classes=[k], statuses=["keep", "unreviewed"], sort="energy",
                              limit=per_class, run=run))
    if not any(rows):
        return None
    sheet = Image.new("RGB", (label_w + per_class * (cell + pad) + pad, len(classes) * (cell + pad) + pad),
                      (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for row, (k, rs) in enumerate(zip(classes, rows, strict=True)):
        y = pad + row * (cell + pad)
        label = class_names[k].split(",")[0]
        draw.text((4, y + cell // 2 - 8), label[:16] if label_w > 70 else label[:10], fill=(40, 40, 40), font=font)
        for j, r in enumerate(rs):
            with Image.open(cat.root / r["path"]) as im:
                if im.mode in ("L", "LA", "I", "I;16", "1"):
                    tile = im.convert("L")
                    if invert_gray:
                        tile = Image.eval(tile, lambda v: 255 - v)
                    tile = tile.convert("RGB")
                else:
                    tile = im.convert("RGB")
            # small images (Digits' 8 px) are enlarged pixel for pixel; large ones are downsampled smoothly
            resample = Image.NEAREST if max(tile.size) < cell else Image.LANCZOS
            sheet.paste(tile.resize((cell, cell), resample), (label_w + pad + j * (cell + pad), y))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return buf.getvalue()


def per_class_rows(summary: dict[int, dict], class_names: list[str], class_ids: list[str] | None = None,
                   prdc_per_class: dict | None = None) -> list[list[str]]:
    """The per-class table (:data:`~prism_gui.engine.teachers.classes.CLASS_COLUMNS`) as text;
    ``summary`` is ``Catalog.class_summary()``."""
    from prism_gui.engine.teachers.classes import class_rows, format_class_cell

    return [[format_class_cell(c, v) for c, v in enumerate(row)]
            for row in class_rows(summary, class_names, class_ids, prdc_per_class)]


def _map_section(root: Path, cat, names: list[str], images: dict, sections: list, tables: list) -> None:
    """The latest map (Map tab or ``prism map``), before and after curation, and the per-class
    coverage of the latest holes analysis, when the project has them."""
    from prism_gui.engine.analysis.embedding import latest_map
    from prism_gui.engine.analysis.features import ANALYSIS_DIR
    from prism_gui.engine.analysis.plots import map_png

    m = latest_map(root)
    if m is not None:
        status = {f"{r['run']}\x00{r['item']}": r["status"] for r in cat.query(columns="run, item, status")}
        keys = m["keys"].tolist()
        real = np.array([k.startswith("\x01ref") for k in keys])
        exists = real | np.array([k in status for k in keys])  # images removed since the map was made: left out
        kept = real | np.array([status.get(k) not in (None, "reject") for k in keys])
        images["map.png"] = map_png(m["xy"][exists], m["labels"][exists], real[exists], names, kept=kept[exists],
                                    title=f"{m['method'].upper()} map in the teacher's features")
        sections.append(("The synthetic set against what the teacher knows", ["map.png"],
                         "Each dot is a generated image, each grey cross a real image of the evaluation set, in the "
                         "teacher's penultimate features; left all generated images, right those curation kept."
                         if real.any() else "Each dot is a generated image, in the teacher's penultimate features; "
                         "left all generated images, right those curation kept."))
    holes = root / ANALYSIS_DIR / "holes.json"
    if holes.exists():
        try:
            h = json.loads(holes.read_text())
        except (OSError, ValueError):
            return
        per = sorted(h.get("per_class", {}).items(), key=lambda kv: kv[1].get("coverage", 0))
        if h.get("reference") == "real":
            rows = [[v.get("class_name", c), f"{v['coverage']:.2f}", str(v.get("real", "-")),
                     str(v.get("synthetic", "-")), str(v.get("real", 0) - v.get("covered", 0))] for c, v in per]
            tables.append((f"Coverage per class (real set: {Path(h.get('reference_set', '')).name or 'evaluation'}"
                           f", k={h.get('k')}; lowest first)",
                           ["class", "coverage", "real images", "synthetic images", "uncovered"], rows))
        else:
            rows = [[v.get("class_name", c), f"{v['coverage']:.2f}", str(v.get("synthetic", "-")),
                     str(v.get("aligned", "-"))] for c, v in per]
            tables.append(("Agreement with the teacher's class prototypes per class (no real set; lowest first)",
                           ["class", "aligned share", "synthetic images", "aligned"], rows))


def report_job(project_root: str | Path, cancel: CancelToken | None = None) -> Iterator[Event]:
    """The stakeholder report of a project; the last event carries ``data['report']``."""
    from prism_gui.engine.data.catalog import Catalog

    root = Path(project_root)
    project = Project.open_for_reading(root)  # a project made by the CLI alone has no project.json
    names = project.class_names()
    tspec = project.spec.get("teacher", {})
    yield Event("report", 0, 4, "collecting numbers")
    images: dict[str, bytes] = {}
    sections: list[tuple[str, list[str], str]] = []
    tables: list = []
    with Catalog(root) as cat:
        gen_runs = [r["id"] for r in cat.runs("generate")]
        counts = {"all": cat.count(), "used": cat.count(statuses=["keep", "unreviewed"]),
                  "rejected": cat.count(statuses=["reject"])}
        results = _distill_results(cat, project)
        yield Event("report", 1, 4, "sample grids")
        _samples_section(cat, root, names, tspec, gen_runs, images, sections, tables)
        yield Event("report", 2, 4, "energy histograms")
        _energy_section(cat, gen_runs, counts, images, sections)
        _map_section(root, cat, names, images, sections, tables)
    yield Event("report", 3, 4, "accuracy curves")
    curves = [r for r in results if len(r["acc"])]
    _training_section(project, tspec, curves, images, sections)
    rows = _runs_rows(root, results)
    if rows:
        tables.append(("Runs compared", ["distill run", "trained on", "images", "accuracy", "agreement", "precision",
                                         "recall", "density", "coverage"], rows))
    report = Report(title=f"{project.name}: teacher -> student without real data",
                    headline=_headline(tspec, curves, counts), tables=tables, images=images, sections=sections)
    yield Event("report", 4, 4, "done", {"report": report})


def _distill_results(cat, project) -> list[dict]:
    """Each distillation run's result (from wherever it wrote: the app uses ``runs/<run>/``) and curves."""
    results = []
    for r in cat.runs("distill"):
        out_dir = r["spec"].get("out_dir")
        res_path = JobFiles(Path(out_dir)).result if out_dir else RunPaths.of(project.root, r["id"]).result
        res = json.loads(res_path.read_text()) if res_path.exists() else {}
        steps, acc = cat.metrics(r["id"], "test_accuracy")
        _, agr = cat.metrics(r["id"], "agreement")
        sl, loss = cat.metrics(r["id"], "loss")
        results.append({"run": r["id"], "spec": r["spec"], "status": r["status"], "result": res,
                        "acc_steps": steps, "acc": acc, "agreement": agr, "loss_steps": sl, "loss": loss})
    return results


def _samples_section(cat, root, names, tspec, gen_runs, images, sections, tables) -> None:
    """The lowest-energy images per class (a sample of the classes past MAX_GRID_CLASSES, then a table)."""
    from prism_gui.engine.data.files import saved_prdc

    summary = cat.class_summary()
    counts = {k: st["images"] - st["rejected"] for k, st in summary.items()}
    shown = grid_classes(counts, len(names))
    grid = class_grid_png(cat, names, classes=shown) if names else None
    if grid:
        images["samples.png"] = grid
        note = "one row per class" if len(shown) == len(names) else \
            f"{len(shown)} of {len(names)} classes, drawn evenly over the class list (all classes: the table)"
        sections.append(("Samples per class", ["samples.png"],
                         f"Lowest-energy images the student was trained on (kept or unreviewed), {note}."))
    if len(names) > MAX_GRID_CLASSES:  # the grid shows a sample: the table lists every class
        newest = (saved_prdc(root, run) for run in reversed(gen_runs))
        prdc_pc = next((m["per_class"] for m in newest if "per_class" in m), {})
        tables.append(("Per class", list(CLASS_COLUMNS), per_class_rows(summary, names, tspec.get("class_ids"),
                                                                         prdc_pc)))


def _energy_section(cat, gen_runs, counts, images, sections) -> None:
    """Histograms of the latest generation runs' teacher energies (log bins) and confidences."""
    from matplotlib.figure import Figure

    if not gen_runs:
        return
    fig = Figure(figsize=(6.6, 2.7))
    ax = fig.add_subplot(1, 2, 1)
    shown_runs = gen_runs[-MAX_HIST_RUNS:]  # one legend row per run: the latest runs stay readable
    energies = {run: cat.column("energy", run=run).astype(float) for run in shown_runs}
    energies = {run: np.maximum(e[np.isfinite(e)], 1e-4) for run, e in energies.items()}
    energies = {run: e for run, e in energies.items() if len(e)}  # runs whose images have no score: none
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
    for run in shown_runs:
        c = cat.column("confidence", run=run)
        if len(c):
            ax2.hist(c.astype(float), bins=20, range=(0, 1), alpha=0.55, label=run)
    ax2.set_xlabel("teacher confidence")
    fig.tight_layout()
    images["energy.png"] = _png(fig)
    sections.append(("Teacher energy of the generated images", ["energy.png"],
                     f"{counts['all']} images generated in {len(gen_runs)} runs; {counts['rejected']} rejected in "
                     "curation." + (f" The histograms show the latest {len(shown_runs)} runs."
                                    if len(shown_runs) < len(gen_runs) else "")))


def _training_section(project, tspec, curves, images, sections) -> None:
    """The latest distillations' accuracy per epoch (the teacher's as a line) and loss per step."""
    from matplotlib.figure import Figure

    if not curves:
        return
    fig = Figure(figsize=(6.6, 2.7))
    ax = fig.add_subplot(1, 2, 1)
    ax2 = fig.add_subplot(1, 2, 2)
    for r in curves[-MAX_HIST_RUNS:]:  # the latest runs: one legend row each
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
    eval_set, _ = project.evaluation()
    where = "the real Digits test split" if eval_set == "digits-test" else \
        (f"the real evaluation set ({Path(eval_set).name})" if eval_set else "the evaluation set")
    sections.append(("Student training", ["accuracy.png"],
                     f"Accuracy of the student on {where}, which no run trained on."
                     + (f" The latest {MAX_HIST_RUNS} of {len(curves)} runs." if len(curves) > MAX_HIST_RUNS
                        else "")))


def _headline(tspec, curves, counts) -> list[tuple[str, str, str]]:
    """The report's tiles: the teacher's and the best student's accuracy, agreement, size, images."""
    best = max(curves, key=lambda r: r["acc"][-1], default=None)
    t_acc = tspec.get("test_accuracy")
    if t_acc is None and best is not None:  # measured by the distillation's evaluation
        t_acc = best["result"].get("teacher_accuracy")
    t_params = tspec.get("parameters")
    headline = [("Teacher accuracy", f"{100 * t_acc:.1f}%" if t_acc else "n/a", "on the real test split")]
    if best is None:
        return [*headline, ("Images", f"{counts['used']:,}", f"kept of {counts['all']:,} generated")]
    s_params = best["result"].get("student_parameters")
    headline.append(("Student accuracy", f"{100 * best['acc'][-1]:.1f}%",
                     f"run '{best['run']}', no real training data"))
    headline.append(("Agreement", f"{100 * best['agreement'][-1]:.1f}%" if len(best["agreement"]) else "n/a",
                     "student = teacher"))
    if s_params and t_params:
        headline.append(("Model size", f"{s_params / 1e3:.0f}k vs {t_params / 1e3:.0f}k",
                         f"{t_params / s_params:.0f}x fewer parameters"))
    headline.append(("Images used", f"{best['result'].get('images', counts['used']):,}",
                     f"of {counts['all']:,} generated"))
    return headline


def _runs_rows(root, results) -> list[list[str]]:
    """One row per evaluated distillation: its runs, images, accuracy, agreement and the P/R/D/C of its set."""
    from prism_gui.engine.data.files import saved_prdc

    rows = []
    for r in results:
        if not len(r["acc"]):
            continue
        m = next((m for run in r["spec"].get("runs") or [] if (m := saved_prdc(root, run))), {})

        def f(key, m=m):
            return f"{m[key]:.3f}" if key in m else "-"

        rows.append([r["run"], ", ".join(r["spec"].get("runs") or ["all"]), str(r["result"].get("images", "-")),
                     f"{100 * r['acc'][-1]:.1f}%", f"{100 * r['agreement'][-1]:.1f}%" if len(r["agreement"]) else "-",
                     f("precision"), f("recall"), f("density"), f("coverage")])
    return rows


