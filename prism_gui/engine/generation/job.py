"""The generation job: prompts -> (guided) samples -> scores -> catalog, resumable.

A run's plan is deterministic: item ``i`` has a class, a prompt (cycled through the class's
active prompts) and the seed ``seed * 10_000_000 + i``.  A run killed at any moment and
started again with the same spec skips the items already in the catalog, so it ends with
exactly the requested count, no duplicate seeds and no orphan files.  A cancelled batch is
discarded, never stored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch

from prism_gui.engine.data.catalog import Catalog, CatalogError, describe_repair
from prism_gui.engine.data.layout import RunPaths
from prism_gui.engine.events import BatchStored, GenerationNote, GenerationStart, Payload, SamplingStep
from prism_gui.engine.generation.energies import EnergySpec
from prism_gui.engine.generation.sampler import GuidanceSpec, SamplerSettings, sample_steps, score_images
from prism_gui.engine.generation.writer import BatchWriter
from prism_gui.engine.jobs import SINGLE, CancelToken, Event, Ranks
from prism_gui.engine.prompts import BLOCKING_ISSUES, PromptSet
from prism_gui.engine.seeds import ITEM_SEED_RULE, item_seed


@dataclasses.dataclass
class GenerateSpec:
    project: str
    run: str = "run"
    generator: str = "digits"
    teacher: str | dict = "digits"  # a TeacherSpec value: a name/path, or a table with checkpoint etc.
    images_per_class: int = 20
    batch_size: int = 50
    seed: int = 0
    sampler: SamplerSettings = dataclasses.field(default_factory=SamplerSettings)
    guidance: GuidanceSpec = dataclasses.field(default_factory=GuidanceSpec)
    score_energy: EnergySpec = dataclasses.field(default_factory=lambda: EnergySpec({"class": 1.0}))
    device: str = "auto"
    half: bool = False  # older specs: True means precision "fp16"
    precision: str = "fp32"  # fp32 | fp16 | bf16 (GPU only; the CPU always samples in float32)
    auto_batch: bool = True  # on out-of-memory, halve the batch and retry it instead of failing the run
    offload: bool = False  # model CPU offload: one model on the GPU at a time (less memory, slower)
    classes: list[int] | None = None  # only these class indices (None: every class), e.g. filling holes

    def __post_init__(self):
        from prism_gui.engine.data.guard import check_run_name
        from prism_gui.engine.devices import check_device_name

        check_run_name(self.run, "run name ('run')")
        check_device_name(self.device)
        if isinstance(self.sampler, dict):
            self.sampler = SamplerSettings(**self.sampler)
        if isinstance(self.guidance, dict):
            g = dict(self.guidance)
            if "window" in g:
                g["window"] = tuple(g["window"])
            self.guidance = GuidanceSpec(**g)
        if isinstance(self.score_energy, dict):
            self.score_energy = EnergySpec(**self.score_energy)
        from prism_gui.engine.teachers.spec import TeacherSpec

        self.teacher = TeacherSpec.from_value(self.teacher, "generate spec").to_value()
        from prism_gui.engine.devices import PRECISIONS

        if self.half and self.precision == "fp32":
            self.precision = "fp16"
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")
        if self.images_per_class < 1 or self.batch_size < 1:
            raise ValueError("images_per_class and batch_size must be at least 1")
        if self.classes is not None:
            if not self.classes:
                raise ValueError("classes is empty: list the class indices to generate, or leave it out for all")
            if any(not isinstance(c, int) or c < 0 for c in self.classes):
                raise ValueError(f"classes must be class indices (integers >= 0), not {self.classes}")
            self.classes = sorted(set(self.classes))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["guidance"]["window"] = list(self.guidance.window)
        if self.guidance.window_steps is not None:
            d["guidance"]["window_steps"] = list(self.guidance.window_steps)
        return d


def load_generate_file(path) -> tuple[GenerateSpec, str, object]:
    """A ``prism generate`` spec file: (spec, the prompt file's path, the TeacherSpec)."""
    from prism_gui.engine.specs import SpecError, build, load_spec
    from prism_gui.engine.teachers.spec import TeacherSpec

    s = load_spec(path)
    if "prompts" not in s:
        raise SpecError(f"{path}: needs 'prompts', the path of a prompt file (make one with `prism prompts`)")
    prompts_path = s.pop("prompts")
    tspec = TeacherSpec.take(s, path)
    return build(GenerateSpec, {**s, "teacher": tspec.to_value()}, path), prompts_path, tspec


class PlanItem(NamedTuple):
    """One image a generation run will make."""

    item: int
    class_index: int
    prompt: str
    negative: str
    seed: int


def plan(prompts: PromptSet, images_per_class: int, seed: int, classes: list[int] | None = None
         ) -> list[PlanItem]:
    """The run's items in a fixed order, balanced per class (of ``classes`` only, when given)."""
    items = []
    i = 0
    grouped = prompts.by_class()
    if classes is not None:
        bad = [c for c in classes if not 0 <= c < len(prompts.class_names)]
        if bad:
            raise ValueError(f"classes {bad} are not class indices of this teacher (0 to "
                             f"{len(prompts.class_names) - 1})")
    for k in range(len(prompts.class_names)) if classes is None else classes:
        active = [p for p in grouped[k] if p.weight > 0]
        if not active:
            where = f"the prompt file '{prompts.source}'" if prompts.source else "the prompt set"
            raise ValueError(f"class '{prompts.class_names[k]}' has no active prompt in {where} (none, or all with "
                             "weight 0): add a prompt for it or re-enable one (weight above 0), in the Prompts tab "
                             "or the file")
        weights = np.array([p.weight for p in active], float)
        # deterministic weighted round-robin: prompt j gets about weight_j / sum(weights) of the items
        counts = np.floor(weights / weights.sum() * images_per_class).astype(int)
        order = np.argsort(-(weights / weights.sum() * images_per_class - counts), kind="stable")
        counts[order[: images_per_class - counts.sum()]] += 1
        # round-robin over prompts, so an interrupted run still covers every prompt
        rr = []
        left = list(counts)
        while len(rr) < images_per_class:
            for j in range(len(active)):
                if left[j] > 0:
                    rr.append(j)
                    left[j] -= 1
        for j in rr:
            p = active[j]
            items.append(PlanItem(i, k, p.text, p.negative, item_seed(seed, i)))
            i += 1
    return items


def run_generation(spec: GenerateSpec, prompts: PromptSet, *, teacher=None, components=None,
                   cancel: CancelToken | None = None, ranks: Ranks | None = None) -> Iterator[Event]:
    """Generate, score and store; yields ``Event("generate", images_done, total)`` per denoising
    step (``data['batch_step']``) and per stored batch (``data['new_ids']``, ``data['mean_energy']``).
    Batches are stored by a writer thread while the next one samples (:mod:`.writer`).

    On several processes (``ranks``), the items still to do are dealt out ``todo[rank::world]``;
    the main process holds the project lock, writes the catalog and merges the other ranks' row
    shards (:mod:`~prism_gui.engine.data.shards`) as they come, so its events count every
    rank's images.  Every image depends on its item's seed only, so the split changes nothing."""
    from prism_gui.engine.teachers.spec import TeacherSpec

    cancel = cancel or CancelToken()
    ranks = ranks or SINGLE
    device = ranks.device(spec.device)
    teacher = teacher or TeacherSpec.from_value(spec.teacher).load()
    teacher.to(device)
    comp = components or _load_components(spec)
    comp.disable_offload()  # a shared generator may carry a previous job's offload
    # offloaded models never all sit on the device: they stay on the CPU until enable_offload
    from prism_gui.engine.devices import pick_dtype

    comp.to("cpu" if spec.offload else device, pick_dtype(device, spec.precision))
    if prompts.class_names != teacher.class_names:
        diff = next((f"class {k} is '{a}' in the prompts but '{b}' for the teacher" for k, (a, b) in
                     enumerate(zip(prompts.class_names, teacher.class_names, strict=False)) if a != b),
                    f"{len(prompts.class_names)} classes in the prompts, {teacher.num_classes} for the teacher")
        raise ValueError(f"the prompt set's classes are not the teacher's ({diff}): regenerate the prompts for "
                         "this teacher")
    issues = [i for i in prompts.validate(comp.tokenizer) if i.code in BLOCKING_ISSUES]
    if issues:
        raise ValueError(f"{len(issues)} prompt problem(s) with generator '{spec.generator}'; fix these prompts in the "
                         "Prompts tab or the prompt file, then run again:\n" + "\n".join(issues[:10]))
    items = plan(prompts, spec.images_per_class, spec.seed, spec.classes)
    with contextlib.ExitStack() as stack:
        cat = None
        if ranks.is_main:
            try:
                cat, todo, info = _open_run(stack, spec, prompts, items)
            except BaseException as e:
                ranks.share({"error": f"{type(e).__name__}: {e}"})
                raise
            ranks.share({"todo": [it.item for it in todo], **info})
        else:
            got = ranks.share(None)
            if "error" in got:
                raise RuntimeError(f"the main process stopped the run: {got['error']}")
            info = {k: v for k, v in got.items() if k != "todo"}
            todo_ids = set(got["todo"])
            todo = [it for it in items if it.item in todo_ids]
        yield from _generate(spec, prompts, teacher, comp, device, items, todo[ranks.rank::ranks.world_size],
                             info, cat, ranks, cancel)


def _load_components(spec):
    from prism_gui.engine.generation.load import load_generator

    return load_generator(spec.generator)


def _open_run(stack: contextlib.ExitStack, spec: GenerateSpec, prompts: PromptSet, items):
    """The main process's start: the project lock, the catalog, leftover shards merged, repair,
    the run's record; returns (catalog, items to do, info shared with the other ranks)."""
    import uuid

    from prism_gui.engine.data.lock import project_lock
    from prism_gui.engine.data.shards import merge_shards
    from prism_gui.engine.versions import manifest

    stack.enter_context(project_lock(spec.project, f"prism generate (run '{spec.run}')"))
    cat = stack.enter_context(Catalog(spec.project))
    merged = len(merge_shards(cat))  # rows a stopped multi-process run left waiting
    repaired = cat.repair()
    moved = cat.missing_folders()
    if moved:
        folder, n = moved[0]
        raise CatalogError(f"the catalog of '{spec.project}' lists {n} image(s) in '{folder}', but that folder is not "
                           "there (moved to another disk, renamed or unmounted?): put it back at that path, then run "
                           "again. Nothing was deleted: the rows wait for their files"
                           + (f" ({len(moved) - 1} more folder(s) are missing)" if len(moved) > 1 else ""))
    existing = cat.run_spec(spec.run)
    if existing is not None:  # settings added since the run was made take their defaults
        existing = {**GenerateSpec(project=spec.project).to_dict(), **existing, "project": spec.project}
    if existing is not None and {k: v for k, v in existing.items() if k != "images_per_class"} != \
            {k: v for k, v in spec.to_dict().items() if k != "images_per_class"}:
        raise ValueError(f"run '{spec.run}' exists with different settings: choose a new run name "
                         "to generate with these settings")
    cat.start_run(spec.run, "generate", spec.to_dict(),
                  manifest(spec.to_dict(), {"base_seed": spec.seed, "item_seed": ITEM_SEED_RULE},
                           prompts=prompts.meta, job="generate"))
    done = cat.done_items(spec.run)
    todo = [it for it in items if it.item not in done]
    return cat, todo, {"resumed": bool(done), "repaired": repaired, "merged": merged, "token": uuid.uuid4().hex}


def _generate(spec, prompts, teacher, comp, device, items, mine, info, cat, ranks, cancel):
    """Sample this process's items (``mine``) in batches, store them as they finish (a writer
    thread), and on several processes merge the others' rows until every rank is done."""
    run = _GenerationRun(spec, prompts, teacher, comp, device, len(items), info, cat, ranks, cancel)
    try:
        yield from run.opening()
        if spec.offload:
            comp.enable_offload(device)
        with BatchWriter(run.store, depth=2) as run.writer:
            try:
                yield from run.sample_all(mine)
                yield from run.stored_events(run.writer.flush())
            except BaseException:
                run.writer.flush()  # keep what was finished: whole, scored images (a stopped batch was never submitted)
                raise
        if ranks.world_size > 1:
            yield from run.wait_for_ranks()
        run.finish()
    except BaseException:
        run.interrupted()
        raise
    finally:
        if spec.offload:
            comp.disable_offload()
        run.close()


class _GenerationRun:
    """One process's share of a generation: its counters, its sinks (the catalog, TensorBoard) and
    the steps :func:`_generate` takes, in order."""

    def __init__(self, spec, prompts, teacher, comp, device, total, info, cat, ranks, cancel):
        from prism_gui.engine.tblog import TensorBoardLog

        self.spec, self.prompts, self.teacher, self.comp, self.device = spec, prompts, teacher, comp, device
        self.total, self.info, self.cat, self.ranks, self.cancel = total, info, cat, ranks, cancel
        self.main = ranks.is_main
        self.n_done = cat.count(run=spec.run) if self.main else 0
        self.first_done = self.n_done
        # TensorBoard curves (images/s, energies) beside the run's manifest; the catalog keeps the same numbers
        self.tb = TensorBoardLog(RunPaths.of(spec.project, spec.run).dir) if self.main else None
        self.settings = {"sampler": dataclasses.asdict(spec.sampler), "guidance": spec.to_dict()["guidance"]}
        self.writer: BatchWriter | None = None
        self.guidance = None
        self.t0 = time.time()

    def _event(self, message: str, data: Payload) -> Event:
        return Event("generate", self.n_done, self.total, message, data)

    def opening(self) -> Iterator[Event]:
        """Where the run stands (resumed, repaired), then the guidance fitted to the device's memory."""
        info, world = self.info, self.ranks.world_size
        if self.main:
            repair = describe_repair(info["repaired"])
            yield self._event(f"{self.n_done}/{self.total} images" + (" (resumed)" if info["resumed"] else "")
                              + (f"; catalog check: {repair}" if repair else "")
                              + (f" on {world} processes" if world > 1 else ""),
                              GenerationStart(info["resumed"], world))
        self.guidance, note = fit_guidance(self.spec, self.comp, self.teacher, self.device)
        if note and self.main:
            yield self._event(note["message"], GenerationNote(memory=note))
        self.t0 = time.time()

    def sample_all(self, mine: list[PlanItem]) -> Iterator[Event]:
        """Every batch of ``mine``; out of memory halves the batch and goes on (each image depends on
        its own seed only, so a smaller batch gives the same images)."""
        spec, batch_size, b = self.spec, self.spec.batch_size, 0
        while b < len(mine):
            batch = mine[b : b + batch_size]
            try:
                yield from self.sample_batch(batch)
            except OUT_OF_MEMORY as e:
                if not spec.auto_batch or batch_size == 1:
                    raise MemoryError(out_of_memory_advice(spec, batch_size)) from e
                release_memory(self.device)
                batch_size = max(1, len(batch) // 2)
                yield self._event(f"out of memory at a batch of {len(batch)} images: continuing with batches of "
                                  f"{batch_size}", GenerationNote(batch_size=batch_size))
                continue
            b += len(batch)
            yield from self.stored_events(self.writer.completed())

    def sample_batch(self, batch: list[PlanItem]) -> Iterator[Event]:
        """One batch through the sampler (an event per denoising step), scored, handed to the writer."""
        from prism_gui.engine.data.imaging import to_uint8

        images = None
        for ev in sample_steps(self.comp, [it.prompt for it in batch], [it.seed for it in batch], self.spec.sampler,
                               guidance=self.guidance, teacher=self.teacher,
                               targets=[it.class_index for it in batch],
                               negative_prompts=[it.negative for it in batch], cancel=self.cancel):
            if "images" in ev.data:
                images = ev.data["images"]
            elif self.main:
                yield self._event(f"{self.n_done}/{self.total} images, step {ev.step}/{ev.total}",
                                  SamplingStep(ev.step, ev.total, ev.data.get("mean_energy")))
            yield from self.stored_events(self.writer.completed())
        self.cancel.raise_if_cancelled()
        scores = score_images(self.teacher, images.to(self.device), [it.class_index for it in batch],
                              self.spec.score_energy)
        self.writer.submit((batch, to_uint8(images), scores))

    def store(self, job) -> tuple[list[int], list[float]]:
        """Write a scored batch (in the writer thread, beside the next batch's sampling): the main
        process inserts the rows, and the rows other processes left in shards; (new ids, energies)."""
        from prism_gui.engine.data.image_files import write_image_files
        from prism_gui.engine.data.shards import merge_shards, write_shard

        spec, (batch, u8, scores) = self.spec, job
        rows = [write_image_files(spec.project, spec.run, it.item, img, class_index=it.class_index,
                                  class_name=self.prompts.class_names[it.class_index], prompt=it.prompt,
                                  seed=it.seed, generator=spec.generator, settings=self.settings, score=sc,
                                  negative_prompt=it.negative)
                for it, img, sc in zip(batch, u8, scores, strict=True)]
        energies = [sc["energy"] for sc in scores]
        if self.main:  # the one catalog writer; the other ranks' rows arrive in shards
            ids = self.cat.insert_rows(rows, skip_existing=False)
            merged = merge_shards(self.cat, spec.run)
            return ids + merged, energies + list(self.cat.column("energy", ids=merged))
        write_shard(spec.project, spec.run, self.ranks.rank, rows)
        return [], energies

    def stored_events(self, results) -> Iterator[Event]:
        """An event per stored batch ((new ids, their energies)), with the run's speed and energy curves."""
        from prism_gui.engine.tblog import GENERATE_TAGS

        for ids, energies in results:
            if not self.main or (not energies and not ids):
                continue
            mean_energy = float(np.mean(energies)) if energies else None
            self.n_done += len(ids)
            rate = (self.n_done - self.first_done) / max(time.time() - self.t0, 1e-9)
            eta = (self.total - self.n_done) / rate if rate > 0 else None  # not measured yet
            curves = {"images_per_s": rate, **({"mean_energy": mean_energy} if mean_energy is not None else {})}
            self.cat.log_metrics(self.spec.run, self.n_done, curves)
            self.tb.scalars(curves, self.n_done, GENERATE_TAGS)
            self.tb.histogram("energy/all", energies, self.n_done)
            yield self._event(f"{self.n_done}/{self.total} images, ETA " + ("—" if eta is None else f"{eta:.0f}s"),
                              BatchStored(ids, eta, mean_energy))

    def wait_for_ranks(self) -> Iterator[Event]:
        """Each process leaves a marker when done; the main one merges the others' shards until
        every marker is there."""
        from prism_gui.engine.data.files import atomic_write_text
        from prism_gui.engine.data.shards import merge_shards, shard_dir

        spec, token = self.spec, self.info["token"]
        marker = shard_dir(spec.project, spec.run) / f"done-{token}-rank{self.ranks.rank}"
        if not self.main:
            atomic_write_text(marker, "")
            return
        others = [marker.with_name(f"done-{token}-rank{r}") for r in range(1, self.ranks.world_size)]
        while True:
            finished = all(m.exists() for m in others)  # checked before the merge that follows it
            merged = merge_shards(self.cat, spec.run)
            yield from self.stored_events([(merged, list(self.cat.column("energy", ids=merged)) if merged else [])])
            if finished:
                break
            self.cancel.raise_if_cancelled()
            time.sleep(0.2)
        for m in others:
            m.unlink(missing_ok=True)

    def finish(self) -> None:
        if self.main:
            log_class_energies(self.tb, self.cat, self.spec.run, self.prompts.class_names, self.n_done)
            self.cat.finish_run(self.spec.run)

    def interrupted(self) -> None:
        from prism_gui.engine.data.shards import merge_shards

        if self.main:
            with contextlib.suppress(Exception):  # rows the other ranks finished are kept
                self.n_done += len(merge_shards(self.cat, self.spec.run))
            self.cat.finish_run(self.spec.run, "interrupted")

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def log_class_energies(tb, cat, run: str, class_names: list[str], step: int) -> None:
    """One TensorBoard histogram of the run's energies per class (``energy_by_class/<k>_<name>``)."""
    by_class: dict[int, list[float]] = {}
    for r in cat.query(run=run, columns="class_index, energy"):
        by_class.setdefault(int(r["class_index"]), []).append(r["energy"])
    width = len(str(max(len(class_names) - 1, 0)))
    for k, energies in sorted(by_class.items()):
        tb.histogram(f"energy_by_class/{k:0{width}d}_{class_names[k]}", energies, step)


OUT_OF_MEMORY = (torch.OutOfMemoryError,) if hasattr(torch, "OutOfMemoryError") else (torch.cuda.OutOfMemoryError,)


def fit_guidance(spec: GenerateSpec, comp, teacher, device) -> tuple[GuidanceSpec, dict | None]:
    """The memory estimate of the job (:mod:`.memory`), and on a GPU whose free memory it exceeds
    (with ``auto_batch``), a guidance micro-batch that fits; it does not change the images."""
    from prism_gui.engine.generation.memory import MiB, estimate

    guidance = spec.guidance
    try:
        est = estimate(comp, teacher, spec.sampler, guidance, spec.batch_size, offload=spec.offload)
    except (RuntimeError, NotImplementedError, TypeError, ValueError) as e:  # an op without a meta kernel
        return guidance, {"message": f"memory estimate unavailable ({type(e).__name__}: {e})"}
    note = {**est.to_dict(), "message": "memory: " + est.describe()}
    if device.type == "cuda" and spec.auto_batch and est.guidance_per_image:
        free, _ = torch.cuda.mem_get_info(device)
        fits = max(1, int(0.85 * free // est.guidance_per_image))
        if fits < est.micro_batch:
            guidance = dataclasses.replace(guidance, micro_batch=fits)
            note["micro_batch"] = fits
            note["message"] += (f"; {free / MiB:,.0f} MiB free on the GPU: the guidance gradient goes "
                                f"{fits} image(s) at a time")
    return guidance, note


def release_memory(device) -> None:
    import gc

    gc.collect()
    if getattr(device, "type", "") == "cuda":
        torch.cuda.empty_cache()


def out_of_memory_advice(spec: GenerateSpec, batch_size: int) -> str:
    """What to change when even a small batch does not fit (the app and the CLI show this)."""
    tips = []
    if spec.guidance.on:
        if not spec.guidance.micro_batch or spec.guidance.micro_batch > 1:
            tips.append("set the guidance micro-batch to 1")
        if not spec.guidance.checkpoint_decoder:
            tips.append("checkpoint the VAE decoder")
        if spec.guidance.mode == "exact":
            tips.append("use the 'cheap' guidance mode (no gradient through the UNet)")
    if spec.precision == "fp32":
        tips.append("sample in fp16 or bf16")
    tips.append("generate at a smaller resolution (sampler.resolution)")
    return (f"out of memory at a batch of {batch_size} image(s)"
            + ("" if spec.auto_batch else " (automatic batch back-off is off: set auto_batch = true)")
            + ": " + "; ".join(tips) + ". Finished images are kept; run again to resume.")
