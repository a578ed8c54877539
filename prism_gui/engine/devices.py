"""Device and precision choice: CUDA, Apple MPS or CPU, automatically or as the user says."""

from __future__ import annotations

import torch

DEVICE_CHOICES = "'auto', 'cpu', 'cuda', 'cuda:N' (the N-th GPU) or 'mps'"


class DeviceError(ValueError):
    """A ``device`` setting this machine cannot run on."""


def check_device_name(preference: str | None) -> str:
    """``preference`` as a ``device`` setting (lower case) if it names a device PRISM Studio runs on,
    whether or not this machine has it (a spec may be written here for a GPU machine)."""
    pref = (preference or "auto").strip().lower()
    kind, _, index = pref.partition(":")
    if pref != "auto" and (kind not in ("cpu", "cuda", "mps") or (index and (kind != "cuda" or not index.isdigit()))):
        raise DeviceError(f"'device' is {preference!r}, which PRISM Studio cannot run on: give {DEVICE_CHOICES}")
    return pref


def pick_device(preference: str | None = "auto") -> torch.device:
    """The torch device for a ``device`` setting, or :class:`DeviceError` naming the setting and the
    choices (never torch's own list of internal device types)."""
    pref = check_device_name(preference)
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind, _, index = pref.partition(":")
    if kind == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"'device' is {preference!r} but CUDA is not available on this machine: use 'auto' or "
                          "'cpu'")
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise DeviceError(f"'device' is {preference!r} but this machine has {torch.cuda.device_count()} GPU(s) "
                          f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceError("'device' is 'mps' but Apple MPS is not available on this machine: use 'auto' or 'cpu'.")
    return torch.device(pref)


PRECISIONS = ("fp32", "fp16", "bf16")


def pick_dtype(device: torch.device, precision: str | bool = "fp32") -> torch.dtype:
    """The generator's dtype: ``fp16``/``bf16`` on GPUs when asked (``True`` means fp16); float32
    otherwise, and always on the CPU (half precision there is slow and lossy)."""
    if isinstance(precision, bool):
        precision = "fp16" if precision else "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    if device.type not in ("cuda", "mps") or precision == "fp32":
        return torch.float32
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise RuntimeError("this GPU does not support bfloat16: choose fp16 or fp32")
    return torch.bfloat16 if precision == "bf16" else torch.float16


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The dtype of mixed-precision training (``torch.autocast`` of the forward passes) on
    ``device``, or None for plain float32.  ``auto``: bf16 on a CUDA GPU that supports it, fp16 on
    older CUDA GPUs, float32 on the CPU and MPS.  Combinations that cannot train are refused."""
    if precision not in ("auto", *PRECISIONS):
        raise ValueError(f"precision must be one of {('auto', *PRECISIONS)}, not {precision!r}")
    kind = device.type
    if precision == "auto":
        if kind != "cuda":
            return None
        native = torch.cuda.is_bf16_supported(including_emulation=False)  # pre-Ampere GPUs only emulate bf16
        return torch.bfloat16 if native else torch.float16
    if precision == "fp32":
        return None
    if kind == "cuda":
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise ValueError("this GPU does not support bfloat16: choose precision fp16 (or auto) or fp32")
        return torch.bfloat16 if precision == "bf16" else torch.float16
    if precision == "fp16":
        raise ValueError(f"precision fp16 needs a CUDA GPU (fp16 training needs gradient scaling, and it is slow "
                         f"on the {kind.upper()}): choose bf16 or fp32 on the {kind.upper()}")
    if not torch.amp.is_autocast_available(kind):
        raise ValueError(f"mixed precision is not available on device '{kind}': choose precision fp32")
    return torch.bfloat16
