"""PNG figures of the curation analyses, for ``prism map/duplicates/holes`` and the report
(matplotlib, no display needed)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

CLASS_CMAP = "tab20"
MAX_LEGEND = 20


def png_bytes(fig, dpi: int = 100) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def energy_for_display(values) -> tuple[np.ndarray, bool]:
    """(values to colour by, whether they are log10): energies span decades, so a log scale, unless
    some are not positive (free energy is negative), then a linear one."""
    v = np.asarray(values, float)
    log = bool(np.all(v[np.isfinite(v)] > 0))
    return (np.log10(v) if log else v), log


def _scatter_classes(ax, xy, labels, class_names, size, marker="o", alpha=0.8, edge=None):
    import matplotlib

    cmap = matplotlib.colormaps[CLASS_CMAP]
    cols = cmap(np.asarray(labels) % cmap.N)
    ax.scatter(xy[:, 0], xy[:, 1], s=size, c=cols, marker=marker, alpha=alpha, linewidths=0.6 if edge else 0,
               edgecolors=edge or "none", rasterized=True, zorder=2)


def map_png(xy: np.ndarray, labels: np.ndarray, real: np.ndarray, class_names: list[str], *,
            kept: np.ndarray | None = None, title: str = "", values: np.ndarray | None = None,
            value_label: str = "") -> bytes:
    """The map: synthetic images as dots, real reference images as black-edged crosses; colour by
    class (or by ``values`` with a colour bar).  With ``kept`` (a mask over the points), a second
    panel shows the map after curation."""
    from matplotlib.figure import Figure

    panels = [("all synthetic images", np.ones(len(xy), bool))]
    if kept is not None:
        panels = [("before curation", np.ones(len(xy), bool)), ("after curation (not rejected)", kept | real)]
    fig = Figure(figsize=(5.2 * len(panels) + (0.8 if values is not None else 0), 5.0))
    n = len(xy)
    size = float(np.clip(6000 / max(n, 1), 0.5, 14))
    for j, (name, mask) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), j + 1)
        syn = mask & ~real
        if real.any():  # underneath, in grey: the synthetic dots stay visible on top
            ax.scatter(xy[real, 0], xy[real, 1], s=size * 2 + 6, c="#9e9e9e", marker="x", alpha=0.6,
                       linewidths=0.7, rasterized=True, zorder=1)
        if values is not None:
            sc = ax.scatter(xy[syn, 0], xy[syn, 1], s=size, c=values[syn], cmap="viridis", rasterized=True,
                            linewidths=0, zorder=2)
            if j == len(panels) - 1:
                fig.colorbar(sc, ax=ax, label=value_label)
        else:
            _scatter_classes(ax, xy[syn], labels[syn], class_names, size)
        ax.set_title(f"{name}: {int(syn.sum()):,} synthetic" + (f", {int(real.sum()):,} real (x)" if real.any()
                                                                 else ""), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if values is None and len(class_names) <= MAX_LEGEND:
        import matplotlib
        from matplotlib.lines import Line2D

        cmap = matplotlib.colormaps[CLASS_CMAP]
        handles = [Line2D([], [], marker="o", ls="", color=cmap(c % cmap.N), label=name)
                   for c, name in enumerate(class_names)]
        fig.axes[-1].legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return png_bytes(fig)


def montage_png(root: str | Path, rows: list[tuple[str, list[tuple[str, str]]]], cell: int = 56,
                per_row: int = 12) -> bytes:
    """Rows of thumbnails: ``rows`` = [(caption, [(thumbnail path relative to root, "keep"|"reject"|"")])];
    a kept image gets a green frame, a rejected one a red frame."""
    from PIL import Image, ImageDraw

    root = Path(root)
    label_w = 150
    per_row = max(4, min(per_row, max((len(c) for _, c in rows), default=1)))
    h = max(1, len(rows)) * (cell + 6)
    out = Image.new("RGB", (label_w + per_row * (cell + 4), h), "white")
    draw = ImageDraw.Draw(out)
    for r, (caption, cells) in enumerate(rows):
        y = r * (cell + 6) + 3
        draw.text((4, y + cell // 2 - 6), caption[:24], fill="black")
        for j, (path, mark) in enumerate(cells[:per_row]):
            try:
                with Image.open(root / path) as im:
                    tile = im.convert("RGB").resize((cell, cell), Image.NEAREST)
            except OSError:
                tile = Image.new("RGB", (cell, cell), "#ddd")
            x = label_w + j * (cell + 4)
            out.paste(tile, (x, y))
            if mark:
                draw.rectangle([x - 1, y - 1, x + cell, y + cell], outline="#2e7d32" if mark == "keep" else "#c62828",
                               width=2)
    buf = io.BytesIO()
    out.save(buf, format="PNG")
    return buf.getvalue()


def coverage_png(per_class: dict, title: str = "", limit: int = 40) -> bytes:
    """Per-class coverage as horizontal bars, lowest first (at most ``limit`` classes)."""
    from matplotlib.figure import Figure

    items = sorted(per_class.items(), key=lambda kv: kv[1]["coverage"])[:limit]
    fig = Figure(figsize=(5.6, 0.9 + 0.22 * len(items)))
    ax = fig.add_subplot(1, 1, 1)
    names = [v.get("class_name", str(k)) for k, v in items]
    cov = [v["coverage"] for _, v in items]
    ax.barh(np.arange(len(items)), cov, color=["#c62828" if c < 0.5 else "#1f77b4" for c in cov])
    ax.set_yticks(np.arange(len(items)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("coverage (share of real images with a synthetic neighbour)")
    ax.set_title(title or "per-class coverage, lowest first", fontsize=9)
    fig.tight_layout()
    return png_bytes(fig)
