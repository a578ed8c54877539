"""Distillation: a student learns the teacher's soft outputs on a (synthetic) set.

Loss: ``KL(softmax(t/T) || softmax(s/T)) * T^2``, optionally mixed with cross-entropy on the
teacher's argmax (``alpha_ce``).  The student sees the teacher's preprocessed input (same size
and normalization).  The trainer is a generator: it yields an event per step (loss) and per
evaluation (accuracy on a real held-out set, teacher-student agreement), logs every metric to
``metrics.jsonl``, TensorBoard event files and the project's catalog, checkpoints each epoch (safetensors) so a stopped
run resumes, and exports the student as a timm model with a model card, and ONNX
(:mod:`.export`).

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

import contextlib
import dataclasses
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F

from prism_gui.engine.data.datasets import TensorImages, catalog_dataset, make_loader
from prism_gui.engine.jobs import Cancelled, CancelToken, Event
from prism_gui.engine.registry import Registry
from prism_gui.engine.training.augment import augment_batch
from prism_gui.engine.training.evaluate import eval_dataset, evaluate

STUDENTS = Registry("student")
STUDENTS.register("digits_student", "built-in Digits student (3 conv-BN layers, ~14k parameters)")("digits_student")
STUDENTS.register("resnet18", "timm ResNet-18, random init")("resnet18")
STUDENTS.register("mobilenetv3_small_100", "timm MobileNetV3-Small, random init")("mobilenetv3_small_100")
STUDENTS.register("resnet50", "timm ResNet-50, random init")("resnet50")


@dataclasses.dataclass
class DistillSpec:
    teacher: str | dict = "digits"  # a TeacherSpec value: a name/path, or a table with checkpoint etc.
    student: str = "digits_student"
    epochs: int = 30
    batch_size: int = 64
    lr: float = 5e-3
    weight_decay: float = 5e-4
    temperature: float = 4.0
    alpha_ce: float = 0.0
    augment: bool = True
    seed: int = 0
    # training data: "catalog" (a project's curated images) or "digits-train" (the real upper bound)
    data: str = "catalog"
    project: str | None = None
    runs: list[str] | None = None
    statuses: list[str] = dataclasses.field(default_factory=lambda: ["unreviewed", "keep"])
    energy_max: float | None = None
    # evaluation: "digits-test", a labelled image folder (WordNet-id or class-name subfolders), or "" for none
    eval: str = "digits-test"
    eval_mapping: str | None = None  # optional folder -> class mapping file (JSON/CSV) for the eval folder
    workers: int = -1  # data-loading workers; -1: automatic (none on the CPU)
    eval_every: int = 1
    checkpoint_every: int = 200  # steps between checkpoints (and at each epoch's end and on stop); 0: epochs only
    out_dir: str | None = None
    run: str = "distill"
    device: str = "auto"
    export_onnx: bool = False
    # speed: "auto" is on for a CUDA GPU and off elsewhere; resuming may change them
    precision: str = "auto"  # auto | fp32 | bf16 | fp16: autocast of the forward passes (auto: bf16/fp16 on CUDA)
    channels_last: bool | str = "auto"  # channels_last memory format for the models and batches (auto: on CUDA)
    compile: bool = False  # torch.compile the student's and teacher's forward (inductor needs a C++ compiler)

    def __post_init__(self):
        from prism_gui.engine.data.guard import check_run_name
        from prism_gui.engine.devices import PRECISIONS, check_device_name
        from prism_gui.engine.teachers.spec import TeacherSpec

        check_run_name(self.run, "run name ('run')")
        check_device_name(self.device)
        self.teacher = TeacherSpec.from_value(self.teacher, "distill spec").to_value()
        if self.precision not in ("auto", *PRECISIONS):
            raise ValueError(f"precision must be one of {['auto', *PRECISIONS]}, not {self.precision!r}")
        if not (self.channels_last == "auto" or isinstance(self.channels_last, bool)):
            raise ValueError(f"channels_last must be true, false or 'auto', not {self.channels_last!r}")
        if not isinstance(self.compile, bool):
            raise ValueError(f"compile must be true or false, not {self.compile!r}")


def load_distill_file(path) -> tuple[DistillSpec, object]:
    """A ``prism distill`` spec file: (spec, the TeacherSpec)."""
    from prism_gui.engine.specs import build, load_spec
    from prism_gui.engine.teachers.spec import TeacherSpec

    s = load_spec(path)
    tspec = TeacherSpec.take(s, path)
    return build(DistillSpec, {**s, "teacher": tspec.to_value()}, path), tspec


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


def resolve_speed(spec: DistillSpec, device: torch.device) -> Speed:
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


def _compiled(model: torch.nn.Module):
    """``model``'s forward compiled (the returned wrapper shares its parameters); ``model`` itself,
    whose state dict has no ``_orig_mod.`` prefix, stays the one that is saved and exported."""
    if isinstance(model, torch.jit.ScriptModule):  # a TorchScript teacher is left as it is
        return model
    return torch.compile(model, backend=COMPILE_BACKEND)


def _resume_key(spec_dict: dict) -> dict:
    return {k: v for k, v in spec_dict.items() if k not in SPEED_KEYS}


def make_student(name: str, teacher) -> torch.nn.Module:
    import timm

    from prism_gui.engine.worlds import load_worlds

    load_worlds()  # built-in worlds register their students in timm
    if not timm.is_model(name):
        raise ValueError(f"unknown student '{name}': choose a timm architecture or one of {STUDENTS.names()}")
    return timm.create_model(name, pretrained=False, num_classes=teacher.num_classes, in_chans=teacher.input_size[0])


def kd_loss(s_logits, t_logits, T: float, alpha_ce: float = 0.0) -> torch.Tensor:
    """KL at temperature ``T`` (times T²), in float32 whatever the logits' dtype."""
    s_logits, t_logits = s_logits.float(), t_logits.float()
    kl = F.kl_div(F.log_softmax(s_logits / T, -1), F.log_softmax(t_logits / T, -1), log_target=True,
                  reduction="batchmean") * T * T
    if alpha_ce:
        kl = (1 - alpha_ce) * kl + alpha_ce * F.cross_entropy(s_logits, t_logits.argmax(-1))
    return kl


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


def _save_checkpoint(folder: Path, student, opt, sched, position: dict, scaler=None) -> None:
    """The student (safetensors, the plain module's layout) and the trainer's state: optimizer,
    scheduler, scaler, and ``position`` (epoch, step, batch within the epoch, the data-order
    generator's states, the metrics lines logged), so a resumed run continues the uninterrupted
    run's data order.

    The two files change together or not at all, whenever the process dies: the new student is
    written beside the old one (``student.next.safetensors``), then the state, which names the
    new student by its SHA-256, then the new student replaces the old.  :func:`_load_checkpoint`
    finishes or discards an interrupted change."""
    import hashlib
    import io

    import safetensors.torch

    from prism_gui.engine.data.catalog import atomic_write_bytes

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
    atomic_write_bytes(folder / "trainer_state.pt", buf.getvalue())
    os.replace(folder / NEXT_STUDENT, folder / "student.safetensors")


NEXT_STUDENT = "student.next.safetensors"


def _load_checkpoint(folder: Path) -> tuple[dict, dict]:
    """(the student's state dict, the trainer's state) of a checkpoint written by
    :func:`_save_checkpoint`, completing or discarding a change a killed process left half done."""
    import hashlib

    import safetensors.torch

    state = _read_trainer_state(folder / "trainer_state.pt")
    want = state.get("student_sha256")
    nxt = folder / NEXT_STUDENT
    if nxt.exists():
        if want is not None and hashlib.sha256(nxt.read_bytes()).hexdigest() == want:
            os.replace(nxt, folder / "student.safetensors")  # killed after the state was written
        else:
            nxt.unlink()  # killed before: the old student and the old state stand
    weights = (folder / "student.safetensors").read_bytes()
    if want is not None and hashlib.sha256(weights).hexdigest() != want:
        raise RuntimeError(f"the checkpoint in {folder} is inconsistent (its student is not the one its trainer "
                           "state was saved with). Delete the folder to start the run over.")
    try:
        return safetensors.torch.load(weights), state
    except Exception as e:  # safetensors' own error type: a damaged or replaced file
        raise ValueError(f"the checkpoint's student '{folder / 'student.safetensors'}' cannot be read ({e}): delete "
                         f"the folder '{folder}' to start the run over, or give another out_dir") from None


def _read_trainer_state(path: Path) -> dict:
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


def _keep_metrics(out: Path, logged: int) -> list[dict]:
    """Cut ``out/metrics.jsonl`` back to its first ``logged`` lines (those a checkpoint had
    seen): lines a killed run logged after its last checkpoint are logged again when it resumes,
    and a line cut by the kill is dropped.  Returns the lines kept."""
    from prism_gui.engine.data.catalog import atomic_write_text
    from prism_gui.engine.data.recover import read_jsonl

    path = out / "metrics.jsonl"
    kept = read_jsonl(path)[:logged] if path.exists() and logged else []
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))
    return kept


def _ddp(student, device, ranks):
    """``student`` for a multi-process run: BatchNorm synchronized across GPUs (SyncBatchNorm
    needs CUDA: on CPUs each process normalizes its share), wrapped in DistributedDataParallel.
    The teacher is never wrapped (it is frozen); the plain ``student`` stays the one saved."""
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        student = torch.nn.SyncBatchNorm.convert_sync_batchnorm(student)
        return student, DistributedDataParallel(student, device_ids=[device.index])
    return student, DistributedDataParallel(student)


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
    from prism_gui.engine.data.catalog import atomic_write_text
    from prism_gui.engine.data.datasets import PlannedBatches
    from prism_gui.engine.jobs import SINGLE
    from prism_gui.engine.tblog import DISTILL_TAGS, TensorBoardLog
    from prism_gui.engine.teachers.spec import TeacherSpec
    from prism_gui.engine.training.export import export_student, model_card, training_set_info
    from prism_gui.engine.versions import manifest

    cancel = cancel or CancelToken()
    ranks = ranks or SINGLE
    main, world = ranks.is_main, ranks.world_size
    if main:
        _check_outputs(spec)
    device = ranks.device(spec.device)
    speed = resolve_speed(spec, device)
    teacher = teacher or TeacherSpec.from_value(spec.teacher).load()
    teacher.to(device).model.eval()
    torch.manual_seed(spec.seed)
    gen = torch.Generator().manual_seed(spec.seed)
    if images is None:
        x = training_dataset(spec, teacher)
    else:
        x = TensorImages(images) if isinstance(images, torch.Tensor) else images
    if spec.batch_size < world:
        raise ValueError(f"batch_size {spec.batch_size} is smaller than the {world} processes: each process takes "
                         "a share of every batch; raise batch_size")
    student = make_student(spec.student, teacher).to(device)
    scaler = torch.amp.GradScaler(device.type) if speed.dtype == torch.float16 else None
    eval_set = eval_dataset(spec.eval, teacher, spec.eval_mapping)
    batches = PlannedBatches(spec.batch_size, ranks.rank, world)
    loader = make_loader(x, spec.batch_size, device=device, workers=spec.workers, batch_sampler=batches)
    steps_per_epoch = len(x) // spec.batch_size + (len(x) % spec.batch_size >= max(1, world))
    total = spec.epochs * steps_per_epoch
    opt = torch.optim.AdamW(student.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=spec.lr, total_steps=max(1, total), pct_start=0.15)
    out = Path(spec.out_dir) if spec.out_dir else None
    start_epoch, step, start_batch, resume_gen = 0, 0, 0, None
    logged = 0  # metrics lines written (a checkpoint records it; a resumed run keeps that many)
    kept: list[dict] = []
    log_f = tb = None
    if out is not None:
        ck = out / "checkpoint"
        spec_path = out / "spec.json"
        if (ck / "trainer_state.pt").exists() and spec_path.exists() and \
                _resume_key(json.loads(spec_path.read_text())) == _resume_key(dataclasses.asdict(spec)):
            weights, state = _load_checkpoint(ck)
            student.load_state_dict(weights)
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            if scaler is not None and "scaler" in state:
                scaler.load_state_dict(state["scaler"])
            start_epoch, step = int(state["epoch"]), int(state["step"])
            logged = int(state.get("logged", 0))
            if "order_state" in state:  # where in the epoch, and the generator's states there
                start_batch = int(state["batch"])
                gen.set_state(state["order_state"])
                resume_gen = state["gen_state"]
                torch.set_rng_state(state["torch_rng"])
            else:  # a checkpoint of an older version (epoch ends only): replay the epochs' orders
                for _ in range(start_epoch):
                    torch.randperm(len(x), generator=gen)
        if main:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(spec_path, json.dumps(dataclasses.asdict(spec), indent=2))
            atomic_write_text(out / "manifest.json", json.dumps(
                manifest(dataclasses.asdict(spec), {"seed": spec.seed}, job="distill", images=len(x),
                         device=str(device), speed=speed.describe(), processes=world), indent=2))
            kept = _keep_metrics(out, logged)
            log_f = open(out / "metrics.jsonl", "a", encoding="utf-8")
            tb = TensorBoardLog(out, purge_step=step + 1)  # steps after the checkpoint replace the old ones
    cat = None
    if main and spec.project and spec.data == "catalog":
        from prism_gui.engine.data.catalog import Catalog

        cat = Catalog(spec.project)
        cat.start_run(spec.run, "distill", dataclasses.asdict(spec))
        # the run's curves are those of metrics.jsonl as cut back to the checkpoint (or to nothing)
        cat.replace_metrics(spec.run, kept if out is not None else [])

    def log(values: dict, epoch: float):
        nonlocal logged
        logged += 1
        if log_f is not None:
            log_f.write(json.dumps({"step": step, "epoch": epoch, "time": time.time(), **values}) + "\n")
            log_f.flush()
            tb.scalars(values, step, DISTILL_TAGS)
        if cat is not None:
            cat.log_metrics(spec.run, step, values, epoch)

    position = {}

    def checkpoint():
        if main and out is not None:
            _save_checkpoint(out / "checkpoint", student, opt, sched, position, scaler)

    t0 = time.time()
    last_eval: dict = {}
    try:
        if speed.channels_last:  # the teacher is shared with the app: its layout is restored at the end
            student.to(memory_format=torch.channels_last)
            teacher.model.to(memory_format=torch.channels_last)
        trained = student
        if world > 1:
            student, trained = _ddp(student, device, ranks)
        student_fwd = _compiled(trained) if speed.compile else trained
        teacher_fwd = _compiled(teacher.model) if speed.compile else teacher.model
        warning = class_balance_warning(x.labels, teacher.class_names) if hasattr(x, "labels") else None
        yield Event("distill", step, total, f"{len(x)} images, {spec.epochs} epochs"
                    + (f", {world} processes" if world > 1 else ""),
                    {"images": len(x), "processes": world, **({"warning": warning} if warning else {})})
        for epoch in range(start_epoch, spec.epochs):
            student.train()
            order_state = gen.get_state()
            batches.order = torch.randperm(len(x), generator=gen)  # the epoch's order: the same on every rank
            batches.start = start_batch if epoch == start_epoch else 0
            if resume_gen is not None and epoch == start_epoch:
                gen.set_state(resume_gen)  # the augmentation draws continue where the checkpoint left them
            global_batches = batches.global_batches()
            seen = sum(len(b) for b in global_batches[: batches.start])
            for b, (xb, _) in enumerate(loader, start=batches.start):
                cancel.raise_if_cancelled()
                n_global = len(global_batches[b])
                offset, _ = batches.share(global_batches[b])
                seen += n_global
                if spec.augment:
                    xb = augment_batch(xb, gen, part=(offset, n_global))
                xb = teacher.preprocess(xb.to(device, non_blocking=True))
                if speed.channels_last:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                with speed.autocast(device):
                    with torch.no_grad():
                        t_logits = teacher_fwd(xb)
                    s_logits = student_fwd(xb)
                loss = kd_loss(s_logits, t_logits, spec.temperature, spec.alpha_ce)  # in float32
                # DDP averages the processes' gradients: weighting each share's mean loss by its
                # size makes that average the gradient of the whole batch's mean loss
                scaled = loss * (len(xb) * world / n_global) if world > 1 else loss
                opt.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(scaled).backward()
                    scaler.step(opt)
                    scaler.update()
                else:
                    scaled.backward()
                    opt.step()
                sched.step()
                step += 1
                lv = loss.item()
                if world > 1:  # the whole batch's mean loss
                    lv = float(ranks.all_sum([lv * len(xb)])[0]) / n_global
                if lv != lv or lv in (float("inf"), float("-inf")):  # stop before a NaN reaches a checkpoint
                    raise ValueError(f"the distillation loss is not finite at step {step} ({lv}): the teacher gives "
                                     "NaN or infinite outputs, or the learning rate is too high (lr "
                                     f"{spec.lr:g}). Check the teacher or lower lr; the last checkpoint is kept.")
                log({"loss": lv, "lr": sched.get_last_lr()[0]}, epoch + seen / len(x))
                position = {"epoch": epoch, "step": step, "batch": b + 1, "order_state": order_state,
                            "gen_state": gen.get_state(), "logged": logged}
                if spec.checkpoint_every and step % spec.checkpoint_every == 0:
                    checkpoint()
                yield Event("distill", step, total, f"epoch {epoch + 1}/{spec.epochs} loss {lv:.4f}",
                            {"loss": lv, "epoch": epoch + seen / len(x)})
            if eval_set is not None and ((epoch + 1) % spec.eval_every == 0 or epoch + 1 == spec.epochs):
                last_eval = evaluate(student, teacher, eval_set, workers=spec.workers, ranks=ranks)
                log({"test_accuracy": last_eval["test_accuracy"], "agreement": last_eval["agreement"]}, epoch + 1)
                yield Event("distill", step, total,
                            f"epoch {epoch + 1}: accuracy {100 * last_eval['test_accuracy']:.1f}%",
                            {**last_eval, "epoch": epoch + 1})
            position = {"epoch": epoch + 1, "step": step, "batch": 0, "order_state": gen.get_state(),
                        "gen_state": None, "logged": logged}  # the next epoch's order first, then its augmentation
            checkpoint()
        student.to(memory_format=torch.contiguous_format)  # the plain module in the standard layout, for export
        result = {"student": spec.student, "images": len(x), "epochs": spec.epochs,
                  "student_parameters": sum(p.numel() for p in student.parameters()),
                  "seconds": round(time.time() - t0, 2), "speed": speed.describe(), "processes": world, **last_eval}
        if world > 1:  # the module as one process trains it (no SyncBatchNorm), for export and the app
            plain = make_student(spec.student, teacher)
            plain.load_state_dict({k: v.cpu() for k, v in student.state_dict().items()})
            student = plain.to(device)
        if out is not None and main:
            spec_dict = dataclasses.asdict(spec)
            card = model_card(spec_dict, result, teacher, training_set_info(spec_dict, len(x)))
            export_student(student, teacher, out, onnx=spec.export_onnx, card=card)
            atomic_write_text(out / "result.json", json.dumps(result, indent=2))
        if cat is not None:
            cat.finish_run(spec.run)
        ranks.barrier()  # the export is on disk before any process reports the end
        yield Event("distill", total, total, "done", {"result": result, "student": student})
    except Cancelled:
        if position:  # stopped between steps: it resumes from the step it was at
            checkpoint()
        if cat is not None:
            cat.finish_run(spec.run, "interrupted")
        raise
    except BaseException:
        if cat is not None:
            cat.finish_run(spec.run, "interrupted")
        raise
    finally:
        if speed.channels_last:
            teacher.model.to(memory_format=torch.contiguous_format)
        if log_f is not None:
            log_f.close()
            tb.close()
        if cat is not None:
            cat.close()


def distill(spec: DistillSpec, **kw) -> dict:
    """Run to the end; returns the result dict."""
    last = None
    for ev in run_distillation(spec, **kw):
        last = ev
    return last.data["result"]
