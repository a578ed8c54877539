"""A distillation's checkpoint: the student and the trainer's state, changed together or not at
all whenever the process dies, read back without unpickling anything, and the run's metrics cut
back to what the checkpoint saw, so a resumed run continues the uninterrupted one exactly."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from prism_gui.engine.data.layout import JobFiles

NEXT_STUDENT = "student.next.safetensors"  # a new student waiting for its state (see save_checkpoint)
TRAINER_STATE = "trainer_state.pt"
STUDENT_FILE = "student.safetensors"

def save_checkpoint(folder: Path, student, opt, sched, position: dict, scaler=None) -> None:
    """The student (safetensors, the plain module's layout) and the trainer's state: optimizer,
    scheduler, scaler, and ``position`` (epoch, step, batch within the epoch, the data-order
    generator's states, the metrics lines logged), so a resumed run continues the uninterrupted
    run's data order.

    The two files change together or not at all, whenever the process dies: the new student is
    written beside the old one (``student.next.safetensors``), then the state, which names the
    new student by its SHA-256, then the new student replaces the old.  :func:`load_checkpoint`
    finishes or discards an interrupted change."""
    import hashlib
    import io

    import safetensors.torch

    from prism_gui.engine.data.files import atomic_write_bytes

    folder.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().cpu().contiguous() for k, v in student.state_dict().items()}
    weights = safetensors.torch.save(sd)
    buf = io.BytesIO()
    state = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), **position,
             "torch_rng": torch.get_rng_state(), "student_sha256": hashlib.sha256(weights).hexdigest()}
    if scaler is not None:
        state["scaler"] = scaler.state_dict()
    torch.save(state, buf)
    atomic_write_bytes(folder / NEXT_STUDENT, weights)
    atomic_write_bytes(folder / TRAINER_STATE, buf.getvalue())
    os.replace(folder / NEXT_STUDENT, folder / STUDENT_FILE)



def load_checkpoint(folder: Path) -> tuple[dict, dict]:
    """(the student's state dict, the trainer's state) of a checkpoint written by
    :func:`save_checkpoint`, completing or discarding a change a killed process left half done."""
    import hashlib

    import safetensors.torch

    state = read_trainer_state(folder / TRAINER_STATE)
    want = state.get("student_sha256")
    nxt = folder / NEXT_STUDENT
    if nxt.exists():
        if want is not None and hashlib.sha256(nxt.read_bytes()).hexdigest() == want:
            os.replace(nxt, folder / STUDENT_FILE)  # killed after the state was written
        else:
            nxt.unlink()  # killed before: the old student and the old state stand
    weights = (folder / STUDENT_FILE).read_bytes()
    if want is not None and hashlib.sha256(weights).hexdigest() != want:
        raise RuntimeError(f"the checkpoint in {folder} is inconsistent (its student is not the one its trainer "
                           "state was saved with). Delete the folder to start the run over.")
    try:
        return safetensors.torch.load(weights), state
    except Exception as e:  # safetensors' own error type: a damaged or replaced file
        raise ValueError(f"the checkpoint's student '{folder / 'student.safetensors'}' cannot be read ({e}): delete "
                         f"the folder '{folder}' to start the run over, or give another out_dir") from None


def read_trainer_state(path: Path) -> dict:
    """The trainer's state a checkpoint saved, read as weights only: a damaged file or one with
    pickled code (which PRISM never wrote) is a ValueError saying what to do, never unpickled."""
    from prism_gui.engine.weights import weight_file_problem

    fix = f"delete the folder '{path.parent}' to start the run over, or give the run another out_dir"
    problem = weight_file_problem(path)  # the same byte-level checks as teachers' and students' weights
    if problem:
        raise ValueError(f"the resume file '{path}' {problem}: {fix}")
    try:
        state = torch.load(path, weights_only=True)
    except Exception as e:
        raise ValueError(f"the resume file '{path}' cannot be read as weights only ({type(e).__name__}); PRISM "
                         f"Studio does not load pickles and never wrote this file: {fix}") from None
    if not isinstance(state, dict):
        raise ValueError(f"the resume file '{path}' holds a {type(state).__name__}, not a trainer state: {fix}")
    return state


def keep_metrics(out: Path, logged: int) -> list[dict]:
    """Cut ``out/metrics.jsonl`` back to its first ``logged`` lines (those a checkpoint had
    seen): lines a killed run logged after its last checkpoint are logged again when it resumes,
    and a line cut by the kill is dropped.  Returns the lines kept."""
    from prism_gui.engine.data.files import atomic_write_text
    from prism_gui.engine.data.recover import read_jsonl

    path = JobFiles(out).metrics
    kept = read_jsonl(path)[:logged] if path.exists() and logged else []
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))
    return kept
