"""A distillation's speed settings (``precision``, ``channels_last``, ``compile``) as they apply on a
device: which may change between a run and its resume (they change no result on the CPU) and
what cannot run where (a compiler for torch.compile's inductor)."""

from __future__ import annotations

import contextlib
import dataclasses

import torch

SPEED_KEYS = ("precision", "channels_last", "compile")  # settings a run may resume with changed
COMPILE_BACKEND = "inductor"  # torch.compile's backend ("aot_eager" generates no code: tests without a compiler)


@dataclasses.dataclass(frozen=True)
class Speed:
    """The speed settings of a spec as they apply on a device."""

    dtype: torch.dtype | None  # autocast dtype; None: float32
    channels_last: bool
    compile: bool

    @property
    def precision(self) -> str:
        return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.dtype, "fp32")

    def autocast(self, device: torch.device):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.dtype)

    def describe(self) -> dict:
        return {"precision": self.precision, "channels_last": self.channels_last, "compile": self.compile}


def resolve_speed(spec, device: torch.device) -> Speed:
    """``spec``'s precision, memory format and compilation on ``device``; refuses what cannot run there."""
    from prism_gui.engine.devices import autocast_dtype

    dtype = autocast_dtype(device, spec.precision)
    channels_last = device.type == "cuda" if spec.channels_last == "auto" else spec.channels_last
    if spec.compile and COMPILE_BACKEND == "inductor":
        _check_inductor()
    return Speed(dtype, channels_last, spec.compile)


def _check_inductor() -> None:
    try:
        from torch._inductor import cpp_builder
        from torch._inductor.exc import InvalidCxxCompiler
    except ImportError:  # a torch without these internals: let torch.compile speak for itself
        return
    try:
        cpp_builder.get_cpp_compiler()
    except InvalidCxxCompiler as e:
        raise ValueError("compile needs a C++ compiler for torch.compile's inductor backend (g++ or clang++ on "
                         "the PATH, or MSVC's cl on Windows), and none was found: install one or set compile to "
                         "false") from e


def compiled(model: torch.nn.Module):
    """``model``'s forward compiled (the returned wrapper shares its parameters); ``model`` itself,
    whose state dict has no ``_orig_mod.`` prefix, stays the one that is saved and exported."""
    if isinstance(model, torch.jit.ScriptModule):  # a TorchScript teacher is left as it is
        return model
    return torch.compile(model, backend=COMPILE_BACKEND)


def resume_key(spec_dict: dict) -> dict:
    return {k: v for k, v in spec_dict.items() if k not in SPEED_KEYS}
