"""One generated image on disk: the PNG with its metadata and its thumbnail, written atomically,
and the catalog row that describes them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from prism_gui.engine.data.files import atomic_write_bytes
from prism_gui.engine.data.layout import RunPaths
from prism_gui.engine.data.pngmeta import png_bytes, sd_webui_parameters

THUMB_SIZE = 96

ROW_COLUMNS = ("run", "item", "class_index", "class_name", "prompt", "negative_prompt", "seed", "generator",
               "settings", "energy", "energy_class", "energy_free", "energy_bn", "energies", "top5", "confidence",
               "entropy", "correct", "path", "thumb", "width", "height", "created", "updated")


def write_image_files(root: str | Path, run: str, item: int, image_hwc: np.ndarray, *, class_index: int,
                      class_name: str, prompt: str, seed: int, generator: str, settings: dict,
                      score: dict | None = None, negative_prompt: str = "") -> dict:
    """Write one image and its thumbnail atomically under ``root``; returns its catalog row (a
    dict of :data:`ROW_COLUMNS`, JSON-serializable), for :meth:`Catalog.insert_rows` or a shard."""
    root = Path(root)
    score = score or {}
    paths = RunPaths.of(root, run)
    rel, rel_t = paths.image_rel(item, seed), paths.thumb_rel(item, seed)
    mode = "L" if image_hwc.shape[-1] == 1 else "RGB"
    img = Image.fromarray(image_hwc[..., 0] if mode == "L" else image_hwc, mode)
    # everything the row holds, so a damaged catalog can be rebuilt from the images (data/recover.py)
    meta = {"prompt": prompt, "negative_prompt": negative_prompt, "seed": seed, "class": class_name,
            "class_index": int(class_index), "generator": generator, "settings": settings, "run": run, "item": item,
            "score": score or {}}
    text = {"prism": json.dumps(meta),
            "parameters": sd_webui_parameters(prompt, negative_prompt, seed, settings, generator, score,
                                              (img.width, img.height), class_name, run)}
    atomic_write_bytes(root / rel, png_bytes(img, text))
    thumb = img.resize((THUMB_SIZE, THUMB_SIZE), Image.NEAREST if img.width < THUMB_SIZE else Image.BILINEAR)
    atomic_write_bytes(root / rel_t, png_bytes(thumb))
    en = score.get("energies", {})
    now = time.time()
    return {"run": run, "item": int(item), "class_index": int(class_index), "class_name": class_name,
            "prompt": prompt, "negative_prompt": negative_prompt, "seed": int(seed), "generator": generator,
            "settings": json.dumps(settings), "energy": score.get("energy"), "energy_class": en.get("class"),
            "energy_free": en.get("free"), "energy_bn": en.get("bn"), "energies": json.dumps(en),
            "top5": json.dumps(score.get("top5", [])), "confidence": score.get("confidence"),
            "entropy": score.get("entropy"), "correct": None if "correct" not in score else int(score["correct"]),
            "path": rel.as_posix(), "thumb": rel_t.as_posix(), "width": img.width, "height": img.height,
            "created": now, "updated": now}
