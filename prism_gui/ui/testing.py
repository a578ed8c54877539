"""Helpers for the app's tests and benchmarks: small projects, fast fake catalogs (no torch
needed) and a probe of how long the GUI thread's event loop was blocked."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QTimer

from prism_gui.engine.data.catalog import Catalog
from prism_gui.engine.project.project import Project


def digit_images(n: int = 10) -> list[np.ndarray]:
    """Real 8x8 test digits as uint8 (H, W) in [0, 255] (one per class, cycled)."""
    from prism_gui.engine.digits.data import load_split

    x, y = load_split("test")
    out = []
    for k in range(n):
        i = int(np.flatnonzero(y == k % 10)[k // 10])
        out.append((x[i] * 255 / 16).round().astype(np.uint8))
    return out


def fake_catalog(root: str | Path, n: int, runs=("plain", "prism"), seed: int = 0) -> Project:
    """A project whose catalog holds ``n`` rows (direct SQL, fast), pointing at 10 real digit
    images; energies and confidences are random but plausible."""
    project = Project.open_or_create(root)
    root = project.root
    names = project.class_names()
    rng = np.random.default_rng(seed)
    paths = []
    for k, img in enumerate(digit_images(10)):
        rel = Path("images") / "fake" / f"{k}.png"
        rel_t = Path("thumbs") / "fake" / f"{k}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel_t).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img, "L").save(root / rel)
        Image.fromarray(img, "L").resize((96, 96), Image.NEAREST).save(root / rel_t)
        paths.append((str(rel), str(rel_t)))
    cat = Catalog(root)
    now = time.time()
    settings = json.dumps({"sampler": {"steps": 4, "cfg": 3.0, "scheduler": "ddim", "eta": 0.0},
                           "guidance": {"scale": 0.02, "window": [0.5, 1.0], "mode": "cheap",
                                        "energy": {"weights": {"class": 1.0}, "temperature": 1.0}}})
    rows = []
    for i in range(n):
        k = i % 10
        run = runs[(i // 10) % len(runs)]
        energy = float(abs(rng.normal(0.4 if run == "prism" else 0.9, 0.5)))
        conf = float(np.exp(-energy))
        top5 = json.dumps([[k, conf], [(k + 1) % 10, (1 - conf) / 2]])
        rows.append((run, i, k, names[k], f"a {['thin', 'bold'][(i // 20) % 2]} {names[k]}", "", 1000 + i, "digits",
                     settings, energy, energy, -energy, 0.1, json.dumps({"class": energy}), top5, conf, 0.5,
                     1, paths[k][0], paths[k][1], 8, 8, now, now))
    with cat._conn:
        for r in runs:
            cat.start_run(r, "generate", {"fake": True})
            cat.finish_run(r)
        cat._conn.executemany(
            "INSERT INTO images (run, item, class_index, class_name, prompt, negative_prompt, seed, generator,"
            " settings, energy, energy_class, energy_free, energy_bn, energies, top5, confidence, entropy,"
            " correct, path, thumb, width, height, created, updated)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    cat.close()
    return project


class StallProbe:
    """The gaps between the ticks of a 10 ms ``QTimer`` on the GUI thread: a gap much longer than
    the interval is a time the event loop was blocked (a frozen window)."""

    def __init__(self, interval_ms: int = 10):
        self.gaps: list[float] = []
        self._last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        self._last = now

    def start(self) -> None:
        """Forget earlier gaps and start measuring from now."""
        self.gaps.clear()
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def summary(self) -> dict:
        g = sorted(self.gaps)
        return {"ticks": len(g), "longest_stall_ms": 1000 * g[-1], "p99_gap_ms": 1000 * g[int(0.99 * len(g))]}
