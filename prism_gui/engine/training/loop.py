"""The distillation loop's parts, in the order :func:`~.distill.run_distillation` uses them: the
position a checkpoint records (:class:`Position`), the trainer (student, optimizer, schedule,
scaler; resuming from a checkpoint), the run's log (``metrics.jsonl``, TensorBoard, the catalog)
and the epochs (a step, an evaluation, the result)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from prism_gui.engine.data.datasets import PlannedBatches
from prism_gui.engine.data.files import atomic_write_text
from prism_gui.engine.data.layout import JobFiles
from prism_gui.engine.events import DistillEvaluation, DistillStart, DistillStep
from prism_gui.engine.jobs import Event
from prism_gui.engine.training.augment import augment_batch
from prism_gui.engine.training.checkpoint import TRAINER_STATE, keep_metrics, load_checkpoint, save_checkpoint
from prism_gui.engine.training.evaluate import evaluate
from prism_gui.engine.training.kd import kd_loss, make_student
from prism_gui.engine.training.speed import Speed, compiled, resume_key


def ddp(student, device, ranks):
    """``student`` for a multi-process run: BatchNorm synchronized across GPUs (SyncBatchNorm
    needs CUDA: on CPUs each process normalizes its share), wrapped in DistributedDataParallel.
    The teacher is never wrapped (it is frozen); the plain ``student`` stays the one saved."""
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        student = torch.nn.SyncBatchNorm.convert_sync_batchnorm(student)
        return student, DistributedDataParallel(student, device_ids=[device.index])
    return student, DistributedDataParallel(student)


@dataclasses.dataclass
class Position:
    """Where a run is: what a checkpoint records and a resumed run starts from."""

    epoch: int = 0
    step: int = 0
    batch: int = 0  # the next batch within ``epoch``
    logged: int = 0  # metrics lines written (a resumed run keeps that many)
    order_state: torch.Tensor | None = None  # the data-order generator's state at the epoch's start
    gen_state: torch.Tensor | None = None  # its state after the last batch (the augmentation draws)

    def saved(self) -> dict:
        return {"epoch": self.epoch, "step": self.step, "batch": self.batch, "order_state": self.order_state,
                "gen_state": self.gen_state, "logged": self.logged}


class Trainer:
    """What a distillation trains: the student with its optimizer, schedule and scaler, the data
    order's generator, and the batches each process takes."""

    def __init__(self, spec, teacher, n_images: int, device, speed: Speed, ranks):
        world = ranks.world_size
        if spec.batch_size < world:
            raise ValueError(f"batch_size {spec.batch_size} is smaller than the {world} processes: each process "
                             "takes a share of every batch; raise batch_size")
        self.student = make_student(spec.student, teacher).to(device)
        self.scaler = torch.amp.GradScaler(device.type) if speed.dtype == torch.float16 else None
        self.batches = PlannedBatches(spec.batch_size, ranks.rank, world)
        steps_per_epoch = n_images // spec.batch_size + (n_images % spec.batch_size >= max(1, world))
        self.total = spec.epochs * steps_per_epoch
        self.opt = torch.optim.AdamW(self.student.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
        self.sched = torch.optim.lr_scheduler.OneCycleLR(self.opt, max_lr=spec.lr, total_steps=max(1, self.total),
                                                         pct_start=0.15)

    def resume(self, files: JobFiles, spec, gen: torch.Generator, n_images: int) -> Position:
        """The position of ``files``' checkpoint, loaded into this trainer and ``gen``, when the
        checkpoint was saved by a run of the same spec (speed settings aside); else the start."""
        pos = Position()
        if not ((files.checkpoint / TRAINER_STATE).exists() and files.spec.exists()
                and resume_key(json.loads(files.spec.read_text())) == resume_key(dataclasses.asdict(spec))):
            return pos
        weights, state = load_checkpoint(files.checkpoint)
        self.student.load_state_dict(weights)
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        pos.epoch, pos.step, pos.logged = int(state["epoch"]), int(state["step"]), int(state.get("logged", 0))
        if "order_state" in state:  # where in the epoch, and the generator's states there
            pos.batch = int(state["batch"])
            gen.set_state(state["order_state"])
            pos.gen_state = state["gen_state"]
            torch.set_rng_state(state["torch_rng"])
        else:  # a checkpoint of an older version (epoch ends only): replay the epochs' orders
            for _ in range(pos.epoch):
                torch.randperm(n_images, generator=gen)
        return pos

    def update(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            loss.backward()
            self.opt.step()
        self.sched.step()

    def checkpoint(self, folder: Path, pos: Position) -> None:
        save_checkpoint(folder, self.student, self.opt, self.sched, pos.saved(), self.scaler)


class RunLog:
    """The run's three sinks of curves, opened on the main process: ``metrics.jsonl`` and
    TensorBoard in the output folder (cut back to what the checkpoint saw) and the project's
    catalog, which also records the run's state."""

    def __init__(self, spec, files: JobFiles | None, pos: Position, main: bool, manifest_fields: dict):
        self.spec, self.logged = spec, pos.logged
        self._file = self._tb = self.cat = None
        kept: list[dict] = []
        if files is not None and main:
            from prism_gui.engine.tblog import TensorBoardLog
            from prism_gui.engine.versions import manifest

            files.dir.mkdir(parents=True, exist_ok=True)
            spec_dict = dataclasses.asdict(spec)
            atomic_write_text(files.spec, json.dumps(spec_dict, indent=2))
            atomic_write_text(files.manifest, json.dumps(
                manifest(spec_dict, {"seed": spec.seed}, job="distill", **manifest_fields), indent=2))
            kept = keep_metrics(files.dir, pos.logged)
            self._file = open(files.metrics, "a", encoding="utf-8")
            self._tb = TensorBoardLog(files.dir, purge_step=pos.step + 1)  # later steps replace the old ones
        if main and spec.project and spec.data == "catalog":
            from prism_gui.engine.data.catalog import Catalog

            self.cat = Catalog(spec.project)
            self.cat.start_run(spec.run, "distill", dataclasses.asdict(spec))
            # the run's curves are those of metrics.jsonl as cut back to the checkpoint (or to nothing)
            self.cat.replace_metrics(spec.run, kept)

    def log(self, step: int, values: dict, epoch: float) -> None:
        from prism_gui.engine.tblog import DISTILL_TAGS

        self.logged += 1
        if self._file is not None:
            self._file.write(json.dumps({"step": step, "epoch": epoch, "time": time.time(), **values}) + "\n")
            self._file.flush()
            self._tb.scalars(values, step, DISTILL_TAGS)
        if self.cat is not None:
            self.cat.log_metrics(self.spec.run, step, values, epoch)

    def finish(self, status: str = "finished") -> None:
        if self.cat is not None:
            self.cat.finish_run(self.spec.run, status)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._tb.close()
        if self.cat is not None:
            self.cat.close()


@contextlib.contextmanager
def layout(speed: Speed, student, teacher):
    """channels_last for the run when the speed settings ask for it; the teacher is shared with
    the app, so its layout is restored at the end, however the run ends."""
    if speed.channels_last:
        student.to(memory_format=torch.channels_last)
        teacher.model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        if speed.channels_last:
            teacher.model.to(memory_format=torch.contiguous_format)


class Epochs:
    """The training loop's parts, in the order :func:`run_distillation` calls them."""

    def __init__(self, spec, trainer: Trainer, teacher, x, loader, gen, device, speed: Speed, ranks, cancel,
                 log: RunLog, files: JobFiles | None):
        self.spec, self.trainer, self.teacher, self.x, self.loader, self.gen = spec, trainer, teacher, x, loader, gen
        self.device, self.speed, self.ranks, self.cancel, self.log = device, speed, ranks, cancel, log
        self.files = files
        self.t0 = time.time()
        self.last_eval: dict = {}
        self.position: Position | None = None  # after the latest step or epoch (what a cancel checkpoints)

    def prepare(self) -> None:
        """The forward passes: the student wrapped for several processes, both compiled if asked."""
        trained = self.trainer.student
        if self.ranks.world_size > 1:
            self.trainer.student, trained = ddp(self.trainer.student, self.device, self.ranks)
        self.student_fwd = compiled(trained) if self.speed.compile else trained
        self.teacher_fwd = compiled(self.teacher.model) if self.speed.compile else self.teacher.model

    def first_event(self, pos: Position, warning: str | None) -> Event:
        x, world = self.x, self.ranks.world_size
        return Event("distill", pos.step, self.trainer.total, f"{len(x)} images, {self.spec.epochs} epochs"
                     + (f", {world} processes" if world > 1 else ""), DistillStart(len(x), world, warning))

    def train(self, epoch: int, pos: Position, first: bool) -> Iterator[Event]:
        """One epoch (from ``pos.batch`` on the epoch a run resumes in); an event per step."""
        spec, batches, n = self.spec, self.trainer.batches, len(self.x)
        self.trainer.student.train()
        order_state = self.gen.get_state()
        batches.order = torch.randperm(n, generator=self.gen)  # the epoch's order: the same on every rank
        batches.start = pos.batch if first else 0
        if first and pos.gen_state is not None:
            self.gen.set_state(pos.gen_state)  # the augmentation draws continue where the checkpoint left them
        global_batches = batches.global_batches()
        seen = sum(len(b) for b in global_batches[: batches.start])
        step = pos.step
        for b, (xb, _) in enumerate(self.loader, start=batches.start):
            self.cancel.raise_if_cancelled()
            n_global = len(global_batches[b])
            seen += n_global
            lv = self._step(xb, batches.share(global_batches[b])[0], n_global)
            step += 1
            if lv != lv or lv in (float("inf"), float("-inf")):  # stop before a NaN reaches a checkpoint
                raise ValueError(f"the distillation loss is not finite at step {step} ({lv}): the teacher gives NaN "
                                 "or infinite outputs, or the learning rate is too high (lr "
                                 f"{spec.lr:g}). Check the teacher or lower lr; the last checkpoint is kept.")
            self.log.log(step, {"loss": lv, "lr": self.trainer.sched.get_last_lr()[0]}, epoch + seen / n)
            self.position = Position(epoch, step, b + 1, self.log.logged, order_state, self.gen.get_state())
            if spec.checkpoint_every and step % spec.checkpoint_every == 0:
                self.checkpoint(self.position)
            yield Event("distill", step, self.trainer.total, f"epoch {epoch + 1}/{spec.epochs} loss {lv:.4f}",
                        DistillStep(lv, epoch + seen / n))
        pos.step = step

    def _step(self, xb, offset: int, n_global: int) -> float:
        """One optimizer step on this process's share of a global batch; the whole batch's mean loss."""
        spec, world = self.spec, self.ranks.world_size
        if spec.augment:
            xb = augment_batch(xb, self.gen, part=(offset, n_global))
        xb = self.teacher.preprocess(xb.to(self.device, non_blocking=True))
        if self.speed.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with self.speed.autocast(self.device):
            with torch.no_grad():
                t_logits = self.teacher_fwd(xb)
            s_logits = self.student_fwd(xb)
        loss = kd_loss(s_logits, t_logits, spec.temperature, spec.alpha_ce)  # in float32
        # DDP averages the processes' gradients: weighting each share's mean loss by its size makes
        # that average the gradient of the whole batch's mean loss
        self.trainer.update(loss * (len(xb) * world / n_global) if world > 1 else loss)
        lv = loss.item()
        if world > 1:  # the whole batch's mean loss
            lv = float(self.ranks.all_sum([lv * len(xb)])[0]) / n_global
        return lv

    def evaluate(self, epoch: int, eval_set, pos: Position) -> Event:
        self.last_eval = evaluate(self.trainer.student, self.teacher, eval_set, workers=self.spec.workers,
                                  ranks=self.ranks)
        self.log.log(pos.step, {"test_accuracy": self.last_eval["test_accuracy"],
                                "agreement": self.last_eval["agreement"]}, epoch + 1)
        return Event("distill", pos.step, self.trainer.total,
                     f"epoch {epoch + 1}: accuracy {100 * self.last_eval['test_accuracy']:.1f}%",
                     DistillEvaluation(**self.last_eval, epoch=epoch + 1))

    def checkpoint(self, pos: Position) -> None:
        self.position = pos
        if self.ranks.is_main and self.files is not None:
            self.trainer.checkpoint(self.files.checkpoint, pos)

    def result(self):
        """The run's result fields and the plain student (one process's module, standard layout)."""
        spec, student, world = self.spec, self.trainer.student, self.ranks.world_size
        student.to(memory_format=torch.contiguous_format)
        result = {"student": spec.student, "images": len(self.x), "epochs": spec.epochs,
                  "student_parameters": sum(p.numel() for p in student.parameters()),
                  "seconds": round(time.time() - self.t0, 2), "speed": self.speed.describe(), "processes": world,
                  **self.last_eval}
        if world > 1:  # the module as one process trains it (no SyncBatchNorm), for export and the app
            plain = make_student(spec.student, self.teacher)
            plain.load_state_dict({k: v.cpu() for k, v in student.state_dict().items()})
            student = plain.to(self.device)
        return result, student


def export_run(spec, result: dict, student, teacher, files: JobFiles, n_images: int) -> None:
    """The student as a timm model with its model card (and ONNX when asked), and the result."""
    from prism_gui.engine.training.export import export_student, model_card, training_set_info

    spec_dict = dataclasses.asdict(spec)
    card = model_card(spec_dict, result, teacher, training_set_info(spec_dict, n_images))
    export_student(student, teacher, files.dir, onnx=spec.export_onnx, card=card)
    atomic_write_text(files.result, json.dumps(result, indent=2))
