"""Small image helpers shared by the engine, the CLI and the app (no Qt)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def to_uint8(images_pm1) -> np.ndarray:
    """[-1, 1] tensor/array (N, C, H, W) -> uint8 (N, H, W, C)."""
    arr = images_pm1.detach().cpu().float().numpy() if hasattr(images_pm1, "detach") else np.asarray(images_pm1)
    arr = ((arr.clip(-1, 1) + 1) * 127.5).round().astype(np.uint8)
    return arr.transpose(0, 2, 3, 1)


def to_pil(image_hwc: np.ndarray, invert_gray: bool = False) -> Image.Image:
    if image_hwc.shape[-1] == 1:
        img = image_hwc[..., 0]
        return Image.fromarray(255 - img if invert_gray else img, "L")
    return Image.fromarray(image_hwc, "RGB")


def grid(images_hwc: np.ndarray, rows: int, cols: int, cell: int = 48, pad: int = 2,
         invert_gray: bool = True) -> Image.Image:
    """Tile uint8 (N, H, W, C) images into a rows x cols sheet, upscaled to ``cell`` pixels."""
    mode = "L" if images_hwc.shape[-1] == 1 else "RGB"
    sheet = Image.new(mode, (cols * (cell + pad) + pad, rows * (cell + pad) + pad),
                      255 if mode == "L" else (255, 255, 255))
    for i, im in enumerate(images_hwc[: rows * cols]):
        tile = to_pil(im, invert_gray).resize((cell, cell), Image.NEAREST)
        r, c = divmod(i, cols)
        sheet.paste(tile, (pad + c * (cell + pad), pad + r * (cell + pad)))
    return sheet
