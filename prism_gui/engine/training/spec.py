"""A distillation's settings: the one definition of each (its type, default and check), read by
``prism distill`` spec files, the Distill panel and a project's ``distill`` section alike.  No
torch here: the app reads the defaults before it loads torch."""

from __future__ import annotations

import dataclasses

# the settings a project keeps (its ``distill`` section, the Distill panel's fields); the others
# (data, runs, out_dir, run ...) are chosen per run
PROJECT_FIELDS = ("student", "epochs", "batch_size", "lr", "weight_decay", "temperature", "alpha_ce", "augment",
                  "seed", "precision", "channels_last", "compile")


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


def project_defaults(**overrides) -> dict:
    """A project's ``distill`` section: DistillSpec's defaults of :data:`PROJECT_FIELDS`, then
    ``overrides`` (a new project takes the quick demo's epochs)."""
    fields = {f.name: f for f in dataclasses.fields(DistillSpec)}
    out = {k: fields[k].default for k in PROJECT_FIELDS}
    unknown = set(overrides) - set(out)
    if unknown:
        raise KeyError(f"not a project distillation setting: {sorted(unknown)}")
    return {**out, **overrides}
