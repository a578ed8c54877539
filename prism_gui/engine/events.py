"""Typed payloads of the progress events the stages hand the app, the CLI and each other.

A job yields :class:`~prism_gui.engine.jobs.Event`\\ s; the events a panel acts on carry one of
these dataclasses as ``Event.data``, so a panel asks ``isinstance(ev.data, BatchStored)`` and
reads ``ev.data.new_ids`` instead of guessing at dictionary keys.  A payload is also a read-only
mapping of its fields (``ev.data["loss"]``, ``ev.data.get("warning")``), so scripts that read
``Event.data`` as a dictionary keep working, and it crosses process boundaries by its class name
(:func:`payload_to_json` / :func:`payload_from_json`: a multi-process run's events come back typed).
Events that carry a one-off result at a job's end (a report, a map) keep plain dictionaries.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any


class Payload(Mapping):
    """Base of the typed payloads: a dataclass that reads as a mapping of its fields.  A field
    left None is absent from the mapping, as the dictionaries these replaced left the key out
    (``"batch_size" in ev.data`` is true only for a batch back-off note)."""

    def __getitem__(self, key: str) -> Any:
        if key in self._present():
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._present())

    def __len__(self) -> int:
        return len(self._present())

    def _present(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None)


PAYLOADS: dict[str, type[Payload]] = {}


def payload(cls):
    """Make ``cls`` a frozen payload dataclass, known by its name across processes."""
    cls = dataclasses.dataclass(frozen=True)(cls)
    PAYLOADS[cls.__name__] = cls
    return cls


# ---------------------------------------------------------------------------------------------- generation
@payload
class GenerationStart(Payload):
    """A generation run starts (or resumes)."""

    resumed: bool
    processes: int = 1


@payload
class GenerationNote(Payload):
    """Something the user should read while the run goes on: the memory estimate behind the
    guidance's settings (``memory``), or a batch size halved after running out of memory."""

    memory: dict | None = None
    batch_size: int | None = None


@payload
class SamplingStep(Payload):
    """One denoising step of the batch being sampled (``mean_energy``: the guidance energy of the
    batch's predicted clean images at this step, on guided steps)."""

    batch_step: int
    batch_steps: int
    mean_energy: float | None = None


@payload
class BatchStored(Payload):
    """A batch of images is in the catalog: their ids, their mean energy and the run's ETA (None
    until the first batch was timed)."""

    new_ids: list[int]
    eta_s: float | None = None
    mean_energy: float | None = None


# ---------------------------------------------------------------------------------------------- distillation
@payload
class DistillStart(Payload):
    """A distillation starts: its training set's size, its processes, and what the set lacks."""

    images: int
    processes: int = 1
    warning: str | None = None


@payload
class DistillStep(Payload):
    """One optimizer step: the whole batch's mean loss at a (fractional) epoch."""

    loss: float
    epoch: float


@payload
class DistillEvaluation(Payload):
    """The student on the real held-out set after an epoch."""

    test_accuracy: float
    agreement: float
    epoch: int
    teacher_accuracy: float | None = None
    eval_images: int | None = None
    per_class_accuracy: list | None = None
    per_class_images: list | None = None


@payload
class DistillDone(Payload):
    """The run's result fields (also in ``result.json``) and the trained student (in this process)."""

    result: dict
    student: Any = None


def payload_to_json(data) -> tuple[str | None, dict]:
    """(the payload's class name or None for a plain dictionary, its fields as a dictionary)."""
    if isinstance(data, Payload):
        return type(data).__name__, dict(data)
    return None, dict(data)


def payload_from_json(kind: str | None, data: dict):
    """The payload :func:`payload_to_json` wrote (fields it dropped, such as a model, take their defaults)."""
    cls = PAYLOADS.get(kind or "")
    if cls is None:
        return data
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})
