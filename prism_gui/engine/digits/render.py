"""Procedural renderer of *printed* digits, captioned from the attributes that made them.

This is the training corpus of the Digits world's generative prior.  It never touches
scikit-learn's handwritten digits: glyphs come from the TrueType fonts that matplotlib
ships, and are turned into 8x8 images the way the UCI "optdigits" data were made
(a 32x32 binary bitmap, then the count of ink pixels in each 4x4 block, 0..16).

Every image is described by a :class:`DigitAttributes`; :func:`caption` turns the
attributes into an English caption ("a bold italic serif seven, small, shifted left").
"""

from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# attribute -> (values, sampling probabilities); the first value is the unremarkable default
ATTRIBUTES: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "family": (("sans", "serif", "mono"), (0.4, 0.4, 0.2)),
    "weight": (("regular", "bold"), (0.65, 0.35)),
    "slant": (("upright", "italic"), (0.7, 0.3)),
    "stroke": (("normal", "thin", "thick"), (0.6, 0.2, 0.2)),
    "width": (("normal", "narrow", "wide"), (0.7, 0.15, 0.15)),
    "size": (("medium", "small", "large"), (0.6, 0.2, 0.2)),
    "position": (
        ("centered", "shifted left", "shifted right", "shifted up", "shifted down"),
        (0.6, 0.1, 0.1, 0.1, 0.1),
    ),
    "rotation": (("straight", "tilted left", "tilted right"), (0.7, 0.15, 0.15)),
    "distortion": (("clean", "wavy"), (0.85, 0.15)),
    "noise": (("smooth", "noisy"), (0.9, 0.1)),
}
# attributes that read as adjectives before the noun ("a bold italic serif seven")
ADJECTIVES = ("stroke", "weight", "slant", "width", "family")

_MPL_FONTS = {
    # family: [(file, bold, italic)]
    "sans": [
        ("DejaVuSans.ttf", False, False),
        ("DejaVuSans-Bold.ttf", True, False),
        ("DejaVuSans-Oblique.ttf", False, True),
        ("DejaVuSans-BoldOblique.ttf", True, True),
        ("cmss10.ttf", False, False),
    ],
    "serif": [
        ("DejaVuSerif.ttf", False, False),
        ("DejaVuSerif-Bold.ttf", True, False),
        ("DejaVuSerif-Italic.ttf", False, True),
        ("DejaVuSerif-BoldItalic.ttf", True, True),
        ("STIXGeneral.ttf", False, False),
        ("STIXGeneralBol.ttf", True, False),
        ("STIXGeneralItalic.ttf", False, True),
        ("STIXGeneralBolIta.ttf", True, True),
        ("cmr10.ttf", False, False),
        ("cmb10.ttf", True, False),
        ("cmti10.ttf", False, True),
    ],
    "mono": [
        ("DejaVuSansMono.ttf", False, False),
        ("DejaVuSansMono-Bold.ttf", True, False),
        ("DejaVuSansMono-Oblique.ttf", False, True),
        ("DejaVuSansMono-BoldOblique.ttf", True, True),
        ("cmtt10.ttf", False, False),
    ],
}


@functools.lru_cache(maxsize=1)
def font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def fonts_for(family: str, bold: bool, italic: bool) -> list[Path]:
    """Font files of ``family`` with the requested weight and slant."""
    return [font_dir() / f for f, b, i in _MPL_FONTS[family] if b == bold and i == italic]


@dataclasses.dataclass(frozen=True)
class DigitAttributes:
    digit: int
    family: str = "sans"
    weight: str = "regular"
    slant: str = "upright"
    stroke: str = "normal"
    width: str = "normal"
    size: str = "medium"
    position: str = "centered"
    rotation: str = "straight"
    distortion: str = "clean"
    noise: str = "smooth"
    font_index: int = 0  # which of the matching font files
    seed: int = 0  # fine-grained jitter (exact angle, offset, wave phase, noise)

    def non_default(self) -> dict[str, str]:
        return {
            k: getattr(self, k) for k, (vals, _) in ATTRIBUTES.items() if getattr(self, k) != vals[0]
        }


def sample_attributes(rng: np.random.Generator, digit: int | None = None) -> DigitAttributes:
    values = {k: str(rng.choice(vals, p=np.asarray(p) / sum(p))) for k, (vals, p) in ATTRIBUTES.items()}
    d = int(rng.integers(10)) if digit is None else int(digit)
    n_fonts = len(fonts_for(values["family"], values["weight"] == "bold", values["slant"] == "italic"))
    return DigitAttributes(
        digit=d, font_index=int(rng.integers(n_fonts)), seed=int(rng.integers(2**31)), **values
    )


@functools.lru_cache(maxsize=512)
def _glyph(font_path: str, digit: int) -> np.ndarray:
    """High-resolution ink mask (float 0..1, cropped to the glyph) of one digit in one font."""
    font = ImageFont.truetype(font_path, 120)
    canvas = Image.new("L", (240, 240), 0)
    ImageDraw.Draw(canvas).text((60, 40), str(digit), fill=255, font=font)
    box = canvas.getbbox()
    return np.asarray(canvas.crop(box), dtype=np.float32) / 255.0


def _thicken(mask: Image.Image, stroke: str, height: int) -> Image.Image:
    if stroke == "thick":  # odd kernels, about 7% / 3% of the glyph height
        return mask.filter(ImageFilter.MaxFilter(int(height * 0.07) | 1))
    if stroke == "thin":
        return mask.filter(ImageFilter.MinFilter(int(height * 0.03) | 1))
    return mask


def render_bitmap(attrs: DigitAttributes) -> np.ndarray:
    """The 32x32 binary bitmap (bool) of ``attrs``."""
    rng = np.random.default_rng(attrs.seed)
    files = fonts_for(attrs.family, attrs.weight == "bold", attrs.slant == "italic")
    glyph = _glyph(str(files[attrs.font_index % len(files)]), attrs.digit)
    img = Image.fromarray((glyph * 255).astype(np.uint8))
    # canonical height 128 px, so stroke kernels mean the same thing for every font
    h0 = 128
    w0 = max(8, round(img.width * h0 / img.height))
    widen = {"normal": 1.0, "narrow": 0.65, "wide": 1.45}[attrs.width] * rng.uniform(0.93, 1.07)
    img = img.resize((max(8, int(w0 * widen)), h0), Image.BILINEAR)
    pad = 40
    big = Image.new("L", (img.width + 2 * pad, img.height + 2 * pad), 0)
    big.paste(img, (pad, pad))
    big = _thicken(big, attrs.stroke, h0)
    angle = {"straight": 0.0, "tilted left": 1.0, "tilted right": -1.0}[attrs.rotation]
    angle = angle * rng.uniform(9, 18) + rng.uniform(-2.5, 2.5)
    big = big.rotate(angle, resample=Image.BILINEAR, expand=True)
    arr = np.asarray(big, dtype=np.float32) / 255.0
    if attrs.distortion == "wavy":
        arr = _wave(arr, rng)
    box = Image.fromarray((arr * 255).astype(np.uint8)).getbbox()
    if box is None:  # erosion removed everything: fall back to the plain glyph
        return render_bitmap(dataclasses.replace(attrs, stroke="normal"))
    crop = Image.fromarray((arr * 255).astype(np.uint8)).crop(box)
    # size-normalise into the 32x32 frame like the optdigits preprocessing
    target_h = {"medium": 28, "small": 21, "large": 32}[attrs.size] * rng.uniform(0.95, 1.0)
    scale = min(target_h / crop.height, 30.0 / crop.width)
    tw, th = max(1, round(crop.width * scale)), max(1, round(crop.height * scale))
    small = np.asarray(crop.resize((tw, th), Image.BOX), dtype=np.float32) / 255.0
    dx, dy = {
        "centered": (0, 0),
        "shifted left": (-1, 0),
        "shifted right": (1, 0),
        "shifted up": (0, -1),
        "shifted down": (0, 1),
    }[attrs.position]
    offset = rng.uniform(3.0, 5.0)
    x0 = round((32 - tw) / 2 + dx * offset + rng.uniform(-0.7, 0.7))
    y0 = round((32 - th) / 2 + dy * offset + rng.uniform(-0.7, 0.7))
    x0, y0 = int(np.clip(x0, 0, 32 - tw)), int(np.clip(y0, 0, 32 - th))
    frame = np.zeros((32, 32), np.float32)
    frame[y0 : y0 + th, x0 : x0 + tw] = small
    bitmap = frame > 0.5
    if attrs.noise == "noisy":
        flips = rng.random((32, 32)) < rng.uniform(0.03, 0.07)
        bitmap = bitmap ^ flips
    return bitmap


def _wave(arr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = arr.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    amp = rng.uniform(4.0, 8.0)
    period = rng.uniform(50.0, 90.0)
    ph1, ph2 = rng.uniform(0, 2 * math.pi, size=2)
    xs = xx + amp * np.sin(2 * math.pi * yy / period + ph1)
    ys = yy + amp * np.sin(2 * math.pi * xx / period + ph2)
    xi = np.clip(np.round(xs).astype(int), 0, w - 1)
    yi = np.clip(np.round(ys).astype(int), 0, h - 1)
    return arr[yi, xi]


def to_digits_8x8(bitmap: np.ndarray) -> np.ndarray:
    """Count ink pixels in each 4x4 block: 32x32 bool -> 8x8 float in 0..16 (optdigits)."""
    return bitmap.reshape(8, 4, 8, 4).sum(axis=(1, 3)).astype(np.float32)


def render(attrs: DigitAttributes) -> np.ndarray:
    """An 8x8 image with values in 0..16, the scale of ``sklearn.datasets.load_digits``."""
    return to_digits_8x8(render_bitmap(attrs))


def caption(attrs: DigitAttributes, rng: np.random.Generator | None = None, p_mention: float = 1.0,
            p_default: float = 0.0) -> str:
    """English caption of ``attrs``.

    With an ``rng``, each non-default attribute is mentioned with probability ``p_mention``
    and each default one with ``p_default``, and the digit is named in one of several ways,
    so that a model trained on these captions also follows partial prompts such as
    "the digit 7" or "a bold seven".
    """
    rng = rng or np.random.default_rng(0)
    mention = {}
    for k, (vals, _) in ATTRIBUTES.items():
        v = getattr(attrs, k)
        if v == "normal":  # "normal" stroke or width is never spoken of
            continue
        p = p_default if v == vals[0] else p_mention
        if rng.random() < p:
            mention[k] = v
    adjectives = [mention[k] for k in ADJECTIVES if k in mention and k != "family"]
    if "family" in mention:
        adjectives.append(mention["family"])
    trailing = [mention[k] for k in ATTRIBUTES if k in mention and k not in ADJECTIVES]
    word, numeral = DIGIT_WORDS[attrs.digit], str(attrs.digit)
    style = rng.random() if p_mention < 1.0 else 0.0
    if style < 0.5:
        noun = word
    elif style < 0.75:
        noun = numeral
    else:
        noun = f"digit {numeral}" if rng.random() < 0.5 else f"digit {word}"
    if not adjectives and style >= 0.75 and rng.random() < 0.5:
        head = f"the {noun}"
    else:
        phrase = " ".join([*adjectives, noun])
        head = ("an " if phrase[0] in "aeiou" else "a ") + phrase
    return ", ".join([head, *trailing])


def render_corpus(n: int, seed: int = 0) -> tuple[np.ndarray, list[DigitAttributes]]:
    """``n`` renders with balanced digits: images (n, 8, 8) in 0..16 and their attributes."""
    rng = np.random.default_rng(seed)
    attrs = [sample_attributes(rng, digit=i % 10) for i in range(n)]
    images = np.stack([render(a) for a in attrs]) if n else np.zeros((0, 8, 8), np.float32)
    return images, attrs


def vocabulary() -> list[str]:
    """Every word a caption can contain (lower case), for the prior's tokenizer."""
    words = {"a", "an", "the", "digit", ","}
    words.update(DIGIT_WORDS)
    words.update(str(d) for d in range(10))
    for vals, _ in ATTRIBUTES.values():
        for v in vals:
            words.update(v.split())
    return sorted(words)
