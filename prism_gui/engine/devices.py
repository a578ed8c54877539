"""Device and precision choice: CUDA, Apple MPS or CPU, automatically or as the user says."""

from __future__ import annotations

import torch


def pick_device(preference: str | None = "auto") -> torch.device:
    pref = (preference or "auto").lower()
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if pref.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"Device '{preference}' was asked for but CUDA is not available: use 'auto' or 'cpu'.")
    if pref == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError("Device 'mps' was asked for but Apple MPS is not available: use 'auto' or 'cpu'.")
    return torch.device(pref)


def pick_dtype(device: torch.device, half: bool) -> torch.dtype:
    """float16 on GPUs when asked; float32 otherwise (CPU half precision is slow and lossy)."""
    return torch.float16 if half and device.type in ("cuda", "mps") else torch.float32


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type
