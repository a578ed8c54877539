"""Distillation: a student learns the teacher's soft outputs on a (synthetic) set.

Loss: ``KL(softmax(t/T) || softmax(s/T)) * T^2``, optionally mixed with cross-entropy on the
teacher's argmax (``alpha_ce``).  The student sees the teacher's preprocessed input (same size
and normalization).  The trainer is a generator: it yields an event per step (loss) and per
evaluation (accuracy on a real held-out set, teacher-student agreement), logs every metric to
``metrics.jsonl``, TensorBoard event files and the project's catalog, checkpoints each epoch
(safetensors, :mod:`.checkpoint`) so a stopped run resumes, and exports the student as a timm model
with a model card, and ONNX (:mod:`.export`).  The loop's parts are in :mod:`.loop`, the speed
settings in :mod:`.speed`, the student and its loss in :mod:`.kd`.

Speed (``precision``, ``channels_last``, ``compile``): the forward passes of student and teacher
run under ``torch.autocast`` (bf16 or fp16, with a ``GradScaler`` for fp16) while the KD loss is
computed in float32; models and batches can be put in ``torch.channels_last`` memory format (the
layout tensor cores want); ``torch.compile`` can compile the student's (and the teacher's)
forward.  By default ("auto") mixed precision and channels_last are on for a CUDA GPU and off
elsewhere, so results on the CPU stay those of plain float32 training.  Checkpoints and exports
always hold the un-compiled module's state dict in the standard layout, so a run resumes with
other speed settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch

from prism_gui.engine.data.datasets import TensorImages, catalog_dataset, make_loader
from prism_gui.engine.data.layout import JobFiles
from prism_gui.engine.events import DistillDone
from prism_gui.engine.jobs import Cancelled, CancelToken, Event
from prism_gui.engine.training.evaluate import eval_dataset
from prism_gui.engine.training.kd import STUDENTS, kd_loss, make_student
from prism_gui.engine.training.loop import Epochs, Position, RunLog, Trainer, export_run, layout
from prism_gui.engine.training.spec import DistillSpec, load_distill_file
from prism_gui.engine.training.speed import resolve_speed

__all__ = ["STUDENTS", "DistillSpec", "class_balance_warning", "distill", "kd_loss", "load_distill_file",
           "make_student", "resolve_speed", "run_distillation", "training_dataset", "training_images"]


def training_dataset(spec: DistillSpec, teacher):
    """The images to distill on, streamed: a project's catalog rows, or a built-in real set
    (``digits-train``: the real-data upper bound)."""
    from prism_gui.engine.worlds import IMAGE_SETS, is_named_image_set, named_image_set

    if is_named_image_set(spec.data):
        return named_image_set(spec.data, teacher)
    if spec.data != "catalog":
        raise ValueError(f"unknown training data '{spec.data}': use 'catalog' or one of {IMAGE_SETS.names()}")
    if not spec.project:
        raise ValueError("distilling from a catalog needs a project folder (spec.project)")
    ds = catalog_dataset(spec.project, teacher, run=spec.runs, statuses=spec.statuses, energy_max=spec.energy_max)
    if len(ds) == 0:
        raise ValueError(f"no images to distill on in '{spec.project}' (runs {spec.runs}, statuses {spec.statuses},"
                         f" energy <= {spec.energy_max}): generate images or relax the filters")
    return ds


def class_balance_warning(labels, class_names: list[str]) -> str | None:
    """What a user must hear before training on a set that misses classes of the teacher or holds
    far fewer images of some (a run interrupted after a few classes, a selection that emptied one),
    naming them; None when every class has at least a quarter of the median count."""
    import numpy as np

    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(class_names))[: len(class_names)]
    have = counts[counts > 0]
    if not len(have):
        return None
    median = float(np.median(have))
    missing = [class_names[k] for k in np.flatnonzero(counts == 0)]
    thin = [f"{class_names[k]} ({counts[k]})" for k in np.flatnonzero((counts > 0) & (counts < median / 4))]
    parts = []
    if missing:
        parts.append(f"{len(missing)} of {len(class_names)} classes have no image ({', '.join(missing[:8])}"
                     + (", …" if len(missing) > 8 else "") + ")")
    if thin:
        parts.append(f"{len(thin)} have under a quarter of the median {median:.0f} images ({', '.join(thin[:8])}"
                     + (", …" if len(thin) > 8 else "") + ")")
    if not parts:
        return None
    return ("; ".join(parts) + ": the student cannot learn them from this set. Generate more of them (or choose "
            "more runs), or go on knowing that")


def _check_outputs(spec: DistillSpec) -> None:
    """Refuse, before anything is written, a run name that another kind of run of the project has
    and an ``out_dir`` that is the project's own folder, its images or another run's folder."""
    from prism_gui.engine.data.guard import check_output_dir

    if spec.project and spec.data == "catalog" and Path(spec.project).is_dir():
        from prism_gui.engine.data.catalog import Catalog

        with Catalog(spec.project) as cat:
            cat.check_run(spec.run, "distill")
    if spec.out_dir:
        check_output_dir(spec.out_dir, owner=spec.run, job="distill")


def training_images(spec: DistillSpec, teacher) -> torch.Tensor:
    """The training set as one tensor (small sets only: benchmarks and tests)."""
    ds = training_dataset(spec, teacher)
    return torch.stack([ds[i][0] for i in range(len(ds))])


def run_distillation(spec: DistillSpec, *, teacher=None, images=None, cancel: CancelToken | None = None,
                     ranks=None) -> Iterator[Event]:
    """Yields ``Event("distill", step, total)`` with ``data['loss']`` per step, and with
    ``data['test_accuracy']``/``data['agreement']`` after each evaluation; the last event has
    ``data['result']``.

    On several processes (``ranks``: DDP), ``batch_size`` stays the global batch: each process
    takes its share of every global batch, augments it with the whole batch's draws, and its loss
    is weighted by its share, so the averaged gradient is the one-process gradient of the same
    batch (up to BatchNorm, which on CPUs normalizes each share).  The main process logs, saves
    and exports; evaluation is split over the processes and summed."""
    from prism_gui.engine.jobs import SINGLE
    from prism_gui.engine.teachers.spec import TeacherSpec

    cancel, ranks = cancel or CancelToken(), ranks or SINGLE
    if ranks.is_main:
        _check_outputs(spec)
    device = ranks.device(spec.device)
    speed = resolve_speed(spec, device)
    teacher = teacher or TeacherSpec.from_value(spec.teacher).load()
    teacher.to(device).model.eval()
    torch.manual_seed(spec.seed)
    gen = torch.Generator().manual_seed(spec.seed)
    x = training_dataset(spec, teacher) if images is None else \
        TensorImages(images) if isinstance(images, torch.Tensor) else images
    trainer = Trainer(spec, teacher, len(x), device, speed, ranks)
    eval_set = eval_dataset(spec.eval, teacher, spec.eval_mapping)
    loader = make_loader(x, spec.batch_size, device=device, workers=spec.workers, batch_sampler=trainer.batches)
    files = JobFiles(Path(spec.out_dir)) if spec.out_dir else None
    pos = trainer.resume(files, spec, gen, len(x)) if files is not None else Position()
    log = RunLog(spec, files, pos, ranks.is_main, {"images": len(x), "device": str(device),
                                                      "speed": speed.describe(), "processes": ranks.world_size})
    epoch_run = Epochs(spec, trainer, teacher, x, loader, gen, device, speed, ranks, cancel, log, files)
    try:
        with layout(speed, trainer.student, teacher):
            epoch_run.prepare()
            warning = class_balance_warning(x.labels, teacher.class_names) if hasattr(x, "labels") else None
            yield epoch_run.first_event(pos, warning)
            for epoch in range(pos.epoch, spec.epochs):
                yield from epoch_run.train(epoch, pos, first=epoch == pos.epoch)
                if eval_set is not None and ((epoch + 1) % spec.eval_every == 0 or epoch + 1 == spec.epochs):
                    yield epoch_run.evaluate(epoch, eval_set, pos)
                pos = Position(epoch + 1, pos.step, 0, log.logged, gen.get_state())  # next epoch's order first
                epoch_run.checkpoint(pos)
            result, student = epoch_run.result()
            if files is not None and ranks.is_main:
                export_run(spec, result, student, teacher, files, len(x))
            log.finish()
            ranks.barrier()  # the export is on disk before any process reports the end
            yield Event("distill", trainer.total, trainer.total, "done", DistillDone(result, student))
    except Cancelled:
        if epoch_run.position is not None:  # stopped between steps: it resumes from the step it was at
            epoch_run.checkpoint(epoch_run.position)
        log.finish("interrupted")
        raise
    except BaseException:
        log.finish("interrupted")
        raise
    finally:
        log.close()


def distill(spec: DistillSpec, **kw) -> dict:
    """Run to the end; returns the result dict."""
    last = None
    for ev in run_distillation(spec, **kw):
        last = ev
    return last.data["result"]
