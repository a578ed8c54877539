"""Checkpoint forensics: a weights file read without running code in it (a state dict through
safetensors or ``torch.load(weights_only=True)``, its pickle globals checked first), and the
errors that say what a file is, what is wrong with it and what to do."""

from __future__ import annotations

from pathlib import Path

import torch

from prism_gui.engine.teachers.errors import TeacherLoadError
from prism_gui.engine.weights import SAFE_PICKLE_MODULES, checkpoint_problem, pickle_globals, sniff_model_file


# --------------------------------------------------------------------------- loading
def explain_load_error(path: Path, e: Exception) -> str:
    """A user's message for a checkpoint that torch.load (weights only) or safetensors refused."""
    if "weights only" in str(e).lower() or "weights_only" in str(e):
        code = [g for g in pickle_globals(path) if not g.startswith(SAFE_PICKLE_MODULES)]
        if code:
            return (f"Checkpoint '{path}' holds Python objects that only running code from the file could load "
                    f"({', '.join(code[:3])}); PRISM never runs code from a file. Save the weights alone: "
                    "safetensors, or torch.save(model.state_dict(), path).")
        return (f"Checkpoint '{path}' holds objects other than tensors, which PRISM does not unpickle. Save the "
                "weights alone: safetensors, or torch.save(model.state_dict(), path).")
    first = str(e).strip().split("\n")[0][:200]
    return (f"Could not read checkpoint '{path}' ({type(e).__name__}: {first}). The file is truncated, damaged or not "
            "a state dict: export it again with safetensors or torch.save(model.state_dict(), path).")


def read_state_dict(path: Path) -> dict:
    if not path.exists():
        raise TeacherLoadError(f"Checkpoint '{path}' does not exist (working folder: {Path.cwd()}): check the path.")
    problem = checkpoint_problem(path)
    if problem:
        raise TeacherLoadError(f"Checkpoint '{path}' {problem}.")
    kind = sniff_model_file(path)
    if kind == "torchscript":
        raise TeacherLoadError(
            f"'{path}' is a TorchScript archive, not a state dict: give it as the teacher itself "
            "(teacher = \"" + str(path) + "\", no checkpoint and no architecture).")
    try:
        if kind == "safetensors":
            import safetensors.torch

            sd = safetensors.torch.load_file(str(path))
        else:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # damaged files, pickles with code, wrong formats
        raise TeacherLoadError(explain_load_error(path, e)) from e
    for key in ("state_dict", "model", "model_state_dict", "state_dict_ema"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
            break
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise TeacherLoadError(f"Checkpoint '{path}' does not hold a state dict of tensors (it holds a "
                               f"{type(sd).__name__}): save it with torch.save(model.state_dict(), path).")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def check_finite(model: torch.nn.Module, input_size, source: str) -> None:
    """Refuse a degenerate teacher: NaN/inf weights, a BatchNorm with a negative variance, or
    non-finite outputs on a test input (its energies would be NaN, and NaN images would be
    scored as if they were the best)."""
    for name, t in list(model.state_dict().items()):
        if torch.is_floating_point(t) and not bool(torch.isfinite(t).all()):
            raise TeacherLoadError(
                f"Teacher '{source}' is degenerate: its weights '{name}' hold NaN or infinite values (a diverged "
                "training run or a damaged file). Use a checkpoint saved before the training diverged.")
        if name.endswith("running_var") and bool((t < 0).any()):
            raise TeacherLoadError(
                f"Teacher '{source}' is degenerate: the BatchNorm variances '{name}' are negative. The checkpoint is "
                "damaged: export it again.")
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, *input_size))
    except Exception as e:
        raise TeacherLoadError(f"Teacher '{source}' fails on a test input of size {list(input_size)} "
                               f"({type(e).__name__}: {str(e)[:200]}): check its input_size.") from e
    if isinstance(out, torch.Tensor) and not bool(torch.isfinite(out).all()):
        raise TeacherLoadError(
            f"Teacher '{source}' is degenerate: it gives NaN or infinite outputs on a test input, so its energies "
            "would be NaN. Check the checkpoint (a diverged training run?) and its normalization.")


def num_classes_in(sd: dict, model) -> int | None:
    try:
        head = model.get_classifier()
    except Exception:
        return None
    names = [n for n, m in model.named_modules() if m is head]
    if names and f"{names[0]}.weight" in sd:
        return int(sd[f"{names[0]}.weight"].shape[0])
    return None


def diff_keys(expected: dict, got: dict) -> tuple[list[str], list[str]]:
    missing = [k for k in expected if k not in got]
    bad = [k for k in got if k not in expected or tuple(got[k].shape) != tuple(expected[k].shape)]
    return missing, bad
