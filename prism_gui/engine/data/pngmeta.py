"""What a stored PNG says about itself: PRISM's own ``prism`` text chunk (everything a catalog row
holds, so a damaged catalog is rebuilt from the images) and a ``parameters`` chunk in the layout
the Stable Diffusion web UIs write, which their "PNG Info", Civitai and metadata readers show."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

from PIL import Image, PngImagePlugin


def png_bytes(img: Image.Image, text: dict[str, str] | None = None) -> bytes:
    info = PngImagePlugin.PngInfo()
    for k, v in (text or {}).items():
        info.add_text(k, v)
    buf = io.BytesIO()
    img.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


# Stable Diffusion web UI (A1111 / Forge) sampler names of the engine's schedulers
WEBUI_SAMPLERS = {"ddim": "DDIM", "ddpm": "DDPM", "pndm": "PLMS", "euler": "Euler", "euler_a": "Euler a",
                  "dpm++": "DPM++ 2M", "unipc": "UniPC", None: "Default"}


def _webui_value(v) -> str:
    """A value of the web UI's ``Key: value, ...`` line, quoted as it quotes them when needed."""
    text = v if isinstance(v, str) else json.dumps(v) if isinstance(v, (list, dict)) else f"{v:g}" \
        if isinstance(v, float) else str(v)
    return json.dumps(text) if any(ch in text for ch in ',:"\n') else text


def sd_webui_parameters(prompt: str, negative: str, seed: int, settings: dict, generator: str, score: dict | None,
                        size: tuple[int, int], class_name: str = "", run: str = "") -> str:
    """The ``parameters`` PNG text chunk in the layout Stable Diffusion web UIs write (AUTOMATIC1111,
    Forge), which their "PNG Info", Civitai and metadata readers show: the prompt, a ``Negative
    prompt:`` line, then ``Steps, Sampler, CFG scale, Seed, Size, Model`` and PRISM's own fields."""
    sampler = (settings or {}).get("sampler", {}) or {}
    guidance = (settings or {}).get("guidance", {}) or {}
    score = score or {}
    fields: list[tuple[str, object]] = []
    if "steps" in sampler:
        fields.append(("Steps", int(sampler["steps"])))
    if "scheduler" in sampler:
        fields.append(("Sampler", WEBUI_SAMPLERS.get(sampler["scheduler"], str(sampler["scheduler"]))))
    if "cfg" in sampler:
        fields.append(("CFG scale", float(sampler["cfg"])))
    # Model: the checkpoint's name, as the web UIs write it (a local folder's name, or the hub id), without
    # commas: several readers split the line on every comma, quoted or not
    model = Path(generator).name if os.path.isabs(generator) or generator.startswith(".") else generator
    fields += [("Seed", int(seed)), ("Size", f"{size[0]}x{size[1]}"), ("Model", model.replace(",", ""))]
    if sampler.get("eta"):
        fields.append(("Eta", float(sampler["eta"])))
    if class_name:
        fields.append(("PRISM class", class_name))
    if score.get("energy") is not None:
        fields.append(("PRISM energy", float(score["energy"])))
    if guidance:
        fields.append(("PRISM guidance scale", float(guidance.get("scale", 0.0))))
        weights = (guidance.get("energy") or {}).get("weights")
        if guidance.get("scale") and weights:
            fields.append(("PRISM guidance energy", ", ".join(f"{k} {w:g}" for k, w in weights.items())))
    if run:
        fields.append(("PRISM run", run))
    lines = [prompt]
    if negative:
        lines.append(f"Negative prompt: {negative}")
    lines.append(", ".join(f"{k}: {_webui_value(v)}" for k, v in fields))
    return "\n".join(lines)
