"""The bad-input catalogue of issue 13: crafted bad inputs, each through the engine, the CLI and
the app panel that takes it (by drag and drop where the panel accepts drops).

Every case in :data:`CASES` names what it is, how it is crafted (under ``tmp_path``) and the
words the user must see.  For each case:

- **engine**: the engine call raises one of the project's own errors (never a bare
  ``KeyError``/``TypeError`` or a library's message alone) that names the file (or the setting),
  the problem and the fix;
- **CLI**: ``python -m prism_gui.cli COMMAND SPEC`` exits 1 or 2 with that message on stderr and
  no traceback;
- **panel**: the panel shows the message, stays usable (a good input loads right after) and
  loses nothing (the teacher, prompts, evaluation set or project loaded before are still there).

Cases whose ``words`` are empty are images that look odd but are valid (CMYK, 16-bit, alpha,
stray files beside them): they must be read correctly, not refused.  A pickle that would run
code must never run: its payload would create a marker file, and every path asserts it is absent.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import os
import pickle
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


# ------------------------------------------------------------------------------------ inputs
@dataclasses.dataclass
class Bad:
    """A crafted input: the file or folder a user gives, and what the paths need besides."""

    path: Path | None
    extra: dict = dataclasses.field(default_factory=dict)  # other teacher keys (a class-names file)
    command: str = ""  # spec and project cases: the CLI command that reads it
    marker: Path | None = None  # a pickle payload would create this file
    images: int | None = None  # an odd but valid evaluation folder: the images it must count
    twin: tuple[str, str] | None = None  # a 16-bit image and its 8-bit twin, which must read the same


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    what: str
    kind: str  # checkpoint | teacher-file | names | prompts | spec | eval | generator | nan | project
    craft: Callable[[Path], Bad]
    words: tuple[str, ...]  # all of them in the message (case-insensitive); () = must be accepted
    panel: str = ""  # teacher | prompts | distill | generate | window
    no_panel: str = ""  # why no panel takes this input
    no_cli: str = ""  # why no command takes this input


class Payload:
    """What unpickling would call: ``os.system("touch MARKER")``. It must never run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


@functools.cache
def digits_state() -> dict:
    """The built-in Digits teacher's weights (a ``digits_cnn``), the base of the checkpoints."""
    from prism_gui.engine.teachers.load import load_teacher

    t = load_teacher("digits")
    return {k: v.detach().clone().contiguous() for k, v in t.model.state_dict().items()}


def save_safetensors(sd: dict, path: Path) -> Path:
    import safetensors.torch

    safetensors.torch.save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    return path


def good_checkpoint(d: Path) -> Path:
    return save_safetensors(digits_state(), d / "good.safetensors")


# ---- checkpoints
def ckpt_empty(d):
    (d / "teacher.safetensors").write_bytes(b"")
    return Bad(d / "teacher.safetensors")


def ckpt_truncated_safetensors(d):
    data = good_checkpoint(d).read_bytes()
    (d / "cut.safetensors").write_bytes(data[: len(data) // 2])
    return Bad(d / "cut.safetensors")


def ckpt_truncated_torch(d):
    import torch

    torch.save(digits_state(), d / "full.pth")
    data = (d / "full.pth").read_bytes()
    (d / "cut.pth").write_bytes(data[: len(data) // 2])
    return Bad(d / "cut.pth")


def ckpt_lying_header(d):
    body = b'{"__metadata__": {}}' + bytes(200)
    (d / "liar.safetensors").write_bytes((10**10).to_bytes(8, "little") + body)  # claims a 10 GB header
    return Bad(d / "liar.safetensors")


def ckpt_html(d):
    (d / "model.safetensors").write_text("<!DOCTYPE html>\n<html><body>Sign in to download</body></html>\n")
    return Bad(d / "model.safetensors")


def ckpt_random(d):
    (d / "noise.pth").write_bytes(np.random.default_rng(13).integers(1, 127, 4096, dtype=np.uint8).tobytes())
    return Bad(d / "noise.pth")


def ckpt_pickle_code(d):
    import torch

    marker = d / "payload-ran"
    torch.save({"state_dict": digits_state(), "extra": Payload(marker)}, d / "evil.pth")
    return Bad(d / "evil.pth", marker=marker)


def ckpt_pickle_code_raw(d):
    marker = d / "payload-ran"
    (d / "evil_raw.pth").write_bytes(pickle.dumps({"state_dict": Payload(marker)}, protocol=4))
    return Bad(d / "evil_raw.pth", marker=marker)


def ckpt_wrong_arch(d):
    import timm
    import torch

    torch.save(timm.create_model("digits_student").state_dict(), d / "student.pth")
    return Bad(d / "student.pth")


def ckpt_class_count(d):
    sd = dict(digits_state())
    sd["head.weight"], sd["head.bias"] = sd["head.weight"][:7].clone(), sd["head.bias"][:7].clone()
    (d / "names.txt").write_text("\n".join(f"digit {k}" for k in range(10)) + "\n")
    return Bad(save_safetensors(sd, d / "seven.safetensors"), extra={"class_names": str(d / "names.txt")})


def ckpt_not_state_dict(d):
    import torch

    torch.save([1, 2, 3], d / "list.pth")
    return Bad(d / "list.pth")


def ckpt_nan_weights(d):
    sd = dict(digits_state())
    w = sd["stem.0.weight"].clone()
    w.view(-1)[0] = float("nan")
    sd["stem.0.weight"] = w
    return Bad(save_safetensors(sd, d / "diverged.safetensors"))


def ckpt_degenerate_bn(d):
    sd = dict(digits_state())
    key = next(k for k in sd if k.endswith("running_var"))
    sd[key] = -sd[key].abs() - 1
    return Bad(save_safetensors(sd, d / "bad_bn.safetensors"))


def teacher_torchscript_garbage(d):
    (d / "model.torchscript").write_bytes(np.random.default_rng(7).integers(1, 255, 2048, dtype=np.uint8).tobytes())
    return Bad(d / "model.torchscript")


# ---- class-name files
def names_file(name: str, data: bytes):
    def craft(d):
        (d / name).write_bytes(data)
        return Bad(d / name)

    return craft


# ---- prompt files
def prompt_json(name: str, class_names=DIGITS, rows=None, raw: bytes | None = None):
    def craft(d):
        if raw is not None:
            (d / name).write_bytes(raw)
        else:
            prompts = [{"class_index": k, "text": f"the digit {n}"} for k, n in enumerate(class_names)]
            for i, row in (rows or {}).items():
                prompts[i] = {**prompts[i], **row}
            (d / name).write_text(json.dumps({"class_names": list(class_names), "prompts": prompts}))
        return Bad(d / name)

    return craft


def prompt_csv(name: str, lines: list[str]):
    def craft(d):
        (d / name).write_text("class,text\n" + "\n".join(lines) + "\n")
        return Bad(d / name)

    return craft


# ---- spec files
def spec_file(command: str, settings: dict | str, name: str = "spec.json"):
    def craft(d):
        if isinstance(settings, str):
            (d / name).write_text(settings)
        else:
            s = dict(settings)
            if command == "generate":
                s = {"project": str(d / "proj"), "prompts": str(d / "prompts.json"), **s}
            elif command == "distill":
                s = {"data": "digits-train", "eval": "", "out_dir": str(d / "out"), **s}
            elif command == "prompts":
                s = {"output": str(d / "prompts.json"), **s}
            (d / name).write_text(json.dumps(s))
        return Bad(d / name, command=command)

    return craft


# ---- evaluation folders: "zero/" and "one/" with two real digits each, plus the odd file
def digit(k: int, n: int = 0) -> np.ndarray:
    from prism_gui.ui.testing import digit_images

    return digit_images(20)[k + 10 * n]


def eval_folder(d: Path) -> Path:
    root = d / "eval"
    for k, name in enumerate(("zero", "one")):
        (root / name).mkdir(parents=True, exist_ok=True)
        for n in range(2):
            Image.fromarray(digit(k, n), "L").save(root / name / f"{n}.png")
    return root


def eval_zero_byte(d):
    root = eval_folder(d)
    (root / "one" / "scan_0042.png").write_bytes(b"")
    return Bad(root)


def eval_non_image(d):
    root = eval_folder(d)
    (root / "one" / "photo.jpg").write_text("this is a text file saved with an image suffix\n")
    return Bad(root)


def eval_cmyk(d):
    root = eval_folder(d)
    Image.fromarray(digit(1, 1), "L").convert("CMYK").save(root / "one" / "print.jpg", quality=95)
    return Bad(root, images=5)


def eval_16bit(d):
    root = eval_folder(d)
    Image.fromarray(digit(1, 1).astype(np.uint16) * 257).save(root / "one" / "deep.png")  # 16-bit grayscale
    return Bad(root, images=5, twin=("one/deep.png", "one/1.png"))


def eval_alpha(d):
    root = eval_folder(d)
    rgba = np.dstack([np.repeat(digit(1, 1)[..., None], 3, axis=2), np.full((8, 8), 200, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(root / "one" / "cutout.png")
    return Bad(root, images=5)


def eval_stray_files(d):
    root = eval_folder(d)
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "one" / "Thumbs.db").write_bytes(bytes(64))
    (root / "one" / "notes.txt").write_text("collected in 2024\n")
    (root / "one" / "._0.png").write_bytes(b"\x00\x05\x16\x07AppleDouble")  # macOS resource fork, image suffix
    (root / "README.md").write_text("evaluation digits\n")
    return Bad(root, images=4)


def eval_stray_folder(d):
    root = eval_folder(d)
    (root / "__MACOSX" / "one").mkdir(parents=True)
    (root / "__MACOSX" / "one" / "._0.png").write_bytes(b"\x00\x05\x16\x07")
    return Bad(root)


# ---- diffusers folders: copies of the built-in Digits prior, broken
def prior_copy(d: Path) -> Path:
    from prism_gui.engine.generation.load import builtin_prior_path

    return Path(shutil.copytree(builtin_prior_path(), d / "prior"))


def gen_no_unet(d):
    folder = prior_copy(d)
    shutil.rmtree(folder / "unet")
    return Bad(folder)


def gen_no_text_encoder(d):
    folder = prior_copy(d)
    shutil.rmtree(folder / "text_encoder")
    return Bad(folder)


def gen_truncated_weights(d):
    folder = prior_copy(d)
    f = folder / "unet" / "diffusion_pytorch_model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    return Bad(folder)


def gen_bad_index(d):
    folder = prior_copy(d)
    (folder / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline", ')
    return Bad(folder)


# ---- a degenerate teacher in memory (a file with one is refused on load: ckpt-nan-weights, ckpt-degenerate-bn)
def nan_teacher(d):
    return Bad(None)


def degenerate_teacher():
    import torch

    from prism_gui.engine.teachers.load import load_teacher

    t = copy.deepcopy(load_teacher("digits"))
    with torch.no_grad():
        for m in t.model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_var.fill_(-1.0)
    t.source = "degenerate digits"
    return t


# ---- projects
def project_folder(d: Path) -> Path:
    from prism_gui.engine.project.project import Project

    return Project.create(d / "project").root


def project_newer_spec(d):
    root = project_folder(d)
    spec = json.loads((root / "project.json").read_text())
    (root / "project.json").write_text(json.dumps({**spec, "version": 7, "segmentation": {"masks": True}}))
    return Bad(root, command="report")


def project_newer_catalog(d):
    from prism_gui.engine.data.catalog import Catalog

    root = project_folder(d)
    with Catalog(root) as cat:
        cat._conn.execute("PRAGMA user_version=99")
        cat._conn.commit()
    return Bad(root, command="report")


def project_wrong_type(d):
    root = project_folder(d)
    spec = json.loads((root / "project.json").read_text())
    spec["distill"]["epochs"] = "many"
    (root / "project.json").write_text(json.dumps(spec))
    return Bad(root, command="report")


NO_SPEC_PANEL = ("the app has no spec-file input: its settings are typed, range-limited fields; a hand-edited "
                 "project.json is the app's spec, see project-wrong-type")
LATIN1 = "zéro\nun\n".encode("latin-1")

CASES = [
    # ---- teacher checkpoints (teacher = "digits_cnn", checkpoint = the file)
    Case("ckpt-empty", "an empty (0-byte) .safetensors checkpoint", "checkpoint", ckpt_empty,
         ("is empty (0 bytes)", "again"), panel="teacher"),
    Case("ckpt-truncated-safetensors", "a safetensors checkpoint cut in half", "checkpoint",
         ckpt_truncated_safetensors, ("truncated", "again"), panel="teacher"),
    Case("ckpt-truncated-torch", "a torch.save checkpoint cut in half", "checkpoint", ckpt_truncated_torch,
         ("truncated", "again"), panel="teacher"),
    Case("ckpt-lying-header", "a safetensors header that claims 10 GB in a 228-byte file", "checkpoint",
         ckpt_lying_header, ("header says 10,000,000,000 bytes", "again"), panel="teacher"),
    Case("ckpt-html", "a web page saved as model.safetensors", "checkpoint", ckpt_html,
         ("text file", "web page", "download the checkpoint"), panel="teacher"),
    Case("ckpt-random-bytes", "4 kB of random bytes as a .pth", "checkpoint", ckpt_random,
         ("is not a checkpoint", "export the weights again"), panel="teacher"),
    Case("ckpt-pickle-code", "a torch.save checkpoint with a pickled os.system payload", "checkpoint",
         ckpt_pickle_code, ("posix.system", "never runs code", "save the weights alone"), panel="teacher"),
    Case("ckpt-pickle-code-raw", "a raw pickle (protocol 4) with an os.system payload", "checkpoint",
         ckpt_pickle_code_raw, ("posix.system", "never runs code", "save the weights alone"), panel="teacher"),
    Case("ckpt-wrong-arch", "a digits_student state dict given for digits_cnn", "checkpoint", ckpt_wrong_arch,
         ("does not match architecture 'digits_cnn'", "pick the architecture"), panel="teacher"),
    Case("ckpt-class-count", "a 7-class checkpoint with a 10-name class file", "checkpoint", ckpt_class_count,
         ("7 outputs but 10 class names", "exactly 7 names"), panel="teacher"),
    Case("ckpt-not-state-dict", "torch.save([1, 2, 3])", "checkpoint", ckpt_not_state_dict,
         ("does not hold a state dict of tensors", "torch.save(model.state_dict()"), panel="teacher"),
    Case("ckpt-nan-weights", "a checkpoint with a NaN weight (a diverged run)", "checkpoint", ckpt_nan_weights,
         ("degenerate", "nan", "checkpoint saved before"), panel="teacher"),
    Case("ckpt-degenerate-bn", "a checkpoint whose BatchNorm variances are negative (NaN energies)", "checkpoint",
         ckpt_degenerate_bn, ("degenerate", "negative", "export it again"), panel="teacher"),
    Case("teacher-torchscript-garbage", "random bytes named model.torchscript", "teacher-file",
         teacher_torchscript_garbage, ("neither torchscript nor a state dict", "torch.jit.save"), panel="teacher"),
    # ---- class-name files (teacher = "digits")
    Case("names-empty", "an empty class-names file", "names", names_file("names.txt", b""),
         ("holds no class names", "one name per line"), panel="teacher"),
    Case("names-duplicated", "a class-names file naming 'two' twice", "names",
         names_file("names.txt", "\n".join([*DIGITS[:9], "two"]).encode()), ("repeats names: two", "distinct"),
         panel="teacher"),
    Case("names-not-utf8", "a class-names file in Latin-1", "names", names_file("names.txt", LATIN1),
         ("not utf-8", "save it as utf-8"), panel="teacher"),
    Case("names-wrong-length", "12 class names for a 10-class teacher", "names",
         names_file("names.txt", "\n".join([*DIGITS, "ten", "eleven"]).encode()),
         ("10 outputs but 12 class names", "exactly 10 names"), panel="teacher"),
    Case("names-json-invalid", "a .json class-names file that is not JSON", "names",
         names_file("names.json", b'["zero", "one",'), ("not valid json", "one per line"), panel="teacher"),
    # ---- prompt files (for the Digits teacher)
    Case("prompts-empty-file", "an empty (0-byte) prompts.json", "prompts", prompt_json("prompts.json", raw=b""),
         ("is empty", "expand"), panel="prompts"),
    Case("prompts-empty-row", "a prompt whose text is blank", "prompts",
         prompt_json("prompts.json", rows={2: {"text": "   "}}), ("prompt 3", "empty", "delete the row"),
         panel="prompts"),
    Case("prompts-over-long", "a 5,000-character prompt", "prompts",
         prompt_json("prompts.json", rows={1: {"text": "a digit one, " * 384 + "end"}}),
         ("4,995 characters", "shorten it"), panel="prompts"),
    Case("prompts-control-char", "a prompt with a BEL control character", "prompts",
         prompt_json("prompts.json", rows={0: {"text": "the digit\x07 zero"}}),
         ("control character (u+0007)", "remove it"), panel="prompts"),
    Case("prompts-unknown-class", "a JSON prompt for class index 12 of 10", "prompts",
         prompt_json("prompts.json", rows={4: {"class_index": 12}}), ("unknown class 12", "fix or delete the row"),
         panel="prompts"),
    Case("prompts-unknown-class-csv", "a CSV row for class 'elephant'", "prompts",
         prompt_csv("prompts.csv", ["zero,the digit zero", "elephant,a big one"]),
         ("line 3: unknown class 'elephant'", "teacher's class names"), panel="prompts"),
    Case("prompts-other-teacher", "a prompt file made for a cat/dog/bird teacher", "prompts",
         prompt_json("prompts.json", class_names=["cat", "dog", "bird"]),
         ("made for other classes", "make the prompts for this teacher"), panel="prompts"),
    # ---- spec files
    Case("spec-wrong-type", "distill: epochs = \"ten\"", "spec", spec_file("distill", {"epochs": "ten"}),
         ("'epochs' is \"ten\"", "whole number"), no_panel=NO_SPEC_PANEL),
    Case("spec-nan", "distill: lr = NaN", "spec", spec_file("distill", '{"eval": "", "lr": NaN}'),
         ("'lr' is nan", "finite number"), no_panel=NO_SPEC_PANEL),
    Case("spec-negative", "generate: images_per_class = -5", "spec",
         spec_file("generate", {"images_per_class": -5}), ("'images_per_class' is -5", "at least 1"),
         no_panel=NO_SPEC_PANEL),
    Case("spec-absurd", "distill: epochs = 10^12", "spec", spec_file("distill", {"epochs": 10**12}),
         ("'epochs' is 1,000,000,000,000", "typo"), no_panel=NO_SPEC_PANEL),
    Case("spec-unknown-key", "distill: 'epoch' (a typo of epochs)", "spec", spec_file("distill", {"epoch": 3}),
         ("unknown settings ['epoch']", "valid:"), no_panel=NO_SPEC_PANEL),
    Case("spec-unknown-nested-key", "generate: sampler.stepz", "spec",
         spec_file("generate", {"sampler": {"stepz": 4}}), ("unknown settings ['stepz']", "'sampler'", "valid:"),
         no_panel=NO_SPEC_PANEL),
    Case("spec-unknown-energy", "generate: an energy term 'clas'", "spec",
         spec_file("generate", {"guidance": {"scale": 0.4, "energy": {"weights": {"clas": 1.0}}}}),
         ("unknown energy term 'clas'", "choose one of"), no_panel=NO_SPEC_PANEL),
    Case("spec-zero-divisor", "distill: eval_every = 0 (a modulo by zero)", "spec",
         spec_file("distill", {"eval_every": 0}), ("'eval_every' is 0", "at least 1"), no_panel=NO_SPEC_PANEL),
    Case("spec-prompts-wrong-type", "prompts: per_class = \"many\"", "spec",
         spec_file("prompts", {"per_class": "many"}), ("'per_class' is \"many\"", "whole number"),
         no_panel=NO_SPEC_PANEL),
    # ---- evaluation folders (class subfolders zero/ and one/, teacher = "digits")
    Case("eval-zero-byte", "a 0-byte .png among the images", "eval", eval_zero_byte,
         ("one/scan_0042.png' is empty (0 bytes)", "remove or replace"), panel="distill"),
    Case("eval-non-image", "a text file named photo.jpg", "eval", eval_non_image,
         ("one/photo.jpg' is not an image", "remove or replace"), panel="distill"),
    Case("eval-cmyk", "a CMYK JPEG (accepted: converted)", "eval", eval_cmyk, (), panel="distill"),
    Case("eval-16bit", "a 16-bit grayscale PNG (accepted: scaled, not clipped white)", "eval", eval_16bit, (),
         panel="distill"),
    Case("eval-alpha", "an RGBA PNG (accepted: alpha dropped, as timm's loader does)", "eval", eval_alpha, (),
         panel="distill"),
    Case("eval-stray-files", ".DS_Store, Thumbs.db, notes, a macOS ._0.png (accepted: ignored)", "eval",
         eval_stray_files, (), panel="distill"),
    Case("eval-stray-folder", "a __MACOSX/ folder beside the class folders", "eval", eval_stray_folder,
         ("match no class (__macosx)", "remove them"), panel="distill"),
    # ---- diffusers folders (the Digits prior, broken)
    Case("gen-no-unet", "a diffusers folder without unet/", "generator", gen_no_unet, ("no unet/ subfolder",),
         panel="generate"),
    Case("gen-missing-text-encoder", "a diffusers folder without text_encoder/", "generator", gen_no_text_encoder,
         ("missing text_encoder/", "save the whole pipeline again"), panel="generate"),
    Case("gen-truncated-weights", "a diffusers folder whose UNet weights are cut to a third", "generator",
         gen_truncated_weights, ("diffusion_pytorch_model.safetensors is truncated", "copy it again"),
         panel="generate"),
    Case("gen-bad-model-index", "a diffusers folder whose model_index.json is cut", "generator", gen_bad_index,
         ("model_index.json is not valid json", "copy it again"), panel="generate"),
    # ---- a degenerate teacher
    Case("nan-energies", "a teacher whose BatchNorm variances are negative, in memory: NaN energies", "nan",
         nan_teacher, ("non-finite energies", "degenerate", "nothing of this batch was stored"), panel="generate-nan",
         no_cli="a command loads its teacher from a file, which is refused on load (ckpt-nan-weights, "
                "ckpt-degenerate-bn)"),
    # ---- projects
    Case("project-newer-spec", "a project.json from a newer version (7)", "project", project_newer_spec,
         ("newer prism studio", "open the project with that version"), panel="window"),
    Case("project-newer-catalog", "a catalog.sqlite from a newer schema (99)", "project", project_newer_catalog,
         ("newer prism studio", "open the project with that version"), panel="window"),
    Case("project-wrong-type", "a project.json with distill.epochs = \"many\"", "project", project_wrong_type,
         ("'distill.epochs' is \"many\"", "whole number", "delete the line"), panel="window"),
]
IDS = [c.id for c in CASES]
assert len(CASES) >= 40 and len(set(IDS)) == len(IDS)


def by_id(case_id: str) -> Case:
    return next(c for c in CASES if c.id == case_id)


def has_words(message: str, case: Case, bad: Bad, name: bool = True) -> None:
    low = message.lower()
    missing = [w for w in case.words if w.lower() not in low]
    assert not missing, f"{case.id}: {missing} not in the message: {message}"
    if name and bad.path is not None:
        assert bad.path.name in message, f"{case.id}: the message does not name {bad.path.name}: {message}"


# ------------------------------------------------------------------------------------ engine
def engine_call(case: Case, bad: Bad, tmp_path: Path):
    from prism_gui.engine.teachers.spec import TeacherSpec

    if case.kind == "checkpoint":
        return TeacherSpec.from_value({"teacher": "digits_cnn", "checkpoint": str(bad.path), **bad.extra}).load()
    if case.kind == "teacher-file":
        return TeacherSpec.from_value(str(bad.path)).load()
    if case.kind == "names":
        return TeacherSpec.from_value({"teacher": "digits", "class_names": str(bad.path)}).load()
    if case.kind == "prompts":
        from prism_gui.engine.prompts import PromptSet

        return PromptSet.load(bad.path, DIGITS, match_classes=True)
    if case.kind == "spec":
        if bad.command == "distill":
            from prism_gui.engine.training.distill import load_distill_file

            return load_distill_file(str(bad.path))
        if bad.command == "generate":
            from prism_gui.engine.generation.job import load_generate_file

            return load_generate_file(str(bad.path))
        from prism_gui.cli import PROMPTS_SETTINGS
        from prism_gui.engine.specs import check_settings, load_spec

        s = load_spec(bad.path)
        TeacherSpec.take(s, str(bad.path))
        return check_settings(s, PROMPTS_SETTINGS, str(bad.path))
    if case.kind == "eval":
        from prism_gui.engine.teachers.load import load_teacher
        from prism_gui.engine.training.evaluate import eval_dataset, evaluate

        teacher = load_teacher("digits")
        data = eval_dataset(str(bad.path), teacher)
        return data, evaluate(None, teacher, data, batch_size=64, workers=0)
    if case.kind == "generator":
        from prism_gui.engine.generation.load import load_generator

        return load_generator(bad.path)
    if case.kind == "project":
        from prism_gui.engine.project.project import Project

        return Project.open(bad.path)
    raise AssertionError(case.kind)


def clear_error(e: BaseException) -> bool:
    """One of the project's own errors (or a plain ValueError/OSError it raised), not a library's."""
    return type(e).__module__.startswith("prism_gui") or type(e) in (ValueError, OSError)


@pytest.mark.parametrize("case", [c for c in CASES if c.kind != "nan"], ids=lambda c: c.id)
def test_engine(case, tmp_path):
    bad = case.craft(tmp_path)
    before = snapshot(bad.path)
    if not case.words:  # odd but valid images: read, and read right
        data, res = engine_call(case, bad, tmp_path)
        assert res["eval_images"] == bad.images, res
        if bad.twin:
            import torch

            files = [f.relative_to(bad.path).as_posix() for f in data.files]
            deep, flat = data[files.index(bad.twin[0])][0], data[files.index(bad.twin[1])][0]
            assert torch.allclose(deep, flat, atol=0.02), "the 16-bit image does not read as its 8-bit twin"
        return
    with pytest.raises(Exception) as e:
        engine_call(case, bad, tmp_path)
    assert clear_error(e.value), f"{case.id}: {type(e.value).__module__}.{type(e.value).__name__}: {e.value}"
    has_words(str(e.value), case, bad)
    if bad.marker is not None:
        assert not bad.marker.exists(), "the pickled payload ran"
    assert snapshot(bad.path) == before, "the bad input was changed"


def snapshot(path: Path | None) -> dict:
    if path is None:
        return {}
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(f): f.read_bytes() for f in files if not f.name.endswith(("-wal", "-shm"))}


def test_the_payload_is_real(tmp_path):
    """The control: unpickled the unsafe way, the payload runs (so its absence above means something)."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


def test_a_degenerate_teacher_stops_the_generation_and_stores_nothing(tmp_path, digits_prior):
    """NaN energies are never stored (SQLite would keep NaN as NULL, which sorts first: 'best')."""
    from prism_gui.engine.data.catalog import Catalog
    from prism_gui.engine.generation.job import GenerateSpec, run_generation
    from prism_gui.engine.prompts import load_bank, plain_prompts
    from prism_gui.engine.teachers.errors import TeacherLoadError

    case = by_id("nan-energies")
    spec = GenerateSpec(project=str(tmp_path / "p"), run="nan", images_per_class=1, batch_size=10,
                        sampler={"steps": 2})
    prompts = plain_prompts(DIGITS, load_bank("digits"))
    with pytest.raises(TeacherLoadError) as e:
        for _ev in run_generation(spec, prompts, teacher=degenerate_teacher(), components=digits_prior):
            pass
    has_words(str(e.value), case, Bad(None))
    with Catalog(tmp_path / "p") as cat:
        assert cat.count() == 0 and not list((tmp_path / "p").rglob("*.png"))


# ------------------------------------------------------------------------------------ CLI
def cli_args(case: Case, bad: Bad, d: Path) -> list:
    def spec(settings: dict) -> Path:
        (d / "cli.json").write_text(json.dumps(settings))
        return d / "cli.json"

    prompts = {"bank": "digits", "per_class": 1, "output": str(d / "made.json")}
    if case.kind == "checkpoint":
        return ["prompts", spec({"teacher": "digits_cnn", "checkpoint": str(bad.path), **bad.extra, **prompts})]
    if case.kind == "teacher-file":
        return ["prompts", spec({"teacher": str(bad.path), **prompts})]
    if case.kind == "names":
        return ["prompts", spec({"teacher": "digits", "class_names": str(bad.path), **prompts})]
    if case.kind == "prompts":
        return ["generate", spec({"project": str(d / "proj"), "run": "r", "prompts": str(bad.path),
                                  "images_per_class": 1, "sampler": {"steps": 1}})]
    if case.kind == "spec":
        return [bad.command, bad.path]
    if case.kind == "eval":
        return ["evaluate", spec({"eval": str(bad.path), "batch_size": 64})]
    if case.kind == "generator":
        return ["generate", spec({"project": str(d / "proj"), "prompts": str(d / "unused.json"),
                                  "generator": str(bad.path)}), "--estimate"]
    if case.kind == "project":
        return ["report", bad.path, "--out", d / "report.html"]
    raise AssertionError(case.kind)


CLI_CASES = [c for c in CASES if not c.no_cli]

# Every CLI case goes through ``prism_gui.cli.main`` as ``prism`` runs it (argument parsing, the
# error handling, the exit code, stdout and stderr), all in one process: 49 processes would spend
# three minutes starting Python and torch.  A case that escaped main's error handling would print
# its traceback here, which the test looks for.  (Separate processes: test_no_code_runs, test_io_faults.)
RUNNER = """
import contextlib, io, json, sys, traceback
from prism_gui.cli import main
results = []
for args in json.load(open(sys.argv[1])):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(args)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
        except BaseException:
            traceback.print_exc()
            rc = 99
    results.append({"returncode": rc, "stdout": out.getvalue(), "stderr": err.getvalue()})
json.dump(results, open(sys.argv[2], "w"))
"""


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """Every CLI case crafted, then run through ``prism``'s entry point in one process."""
    from types import SimpleNamespace

    d0 = tmp_path_factory.mktemp("cli")
    crafted = {}
    for case in CLI_CASES:
        d = tmp_path_factory.mktemp(case.id)
        bad = case.craft(d)
        crafted[case.id] = (bad, [str(a) for a in cli_args(case, bad, d)])
    (d0 / "args.json").write_text(json.dumps([args for _, args in crafted.values()]))
    r = subprocess.run([sys.executable, "-c", RUNNER, str(d0 / "args.json"), str(d0 / "out.json")],
                       capture_output=True, text=True, timeout=900, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads((d0 / "out.json").read_text())
    return {cid: (bad, args, SimpleNamespace(**res))
            for (cid, (bad, args)), res in zip(crafted.items(), results, strict=True)}


@pytest.mark.parametrize("case", CLI_CASES, ids=lambda c: c.id)
def test_cli(case, cli_runs):
    bad, args, r = cli_runs[case.id]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    if not case.words:
        assert r.returncode == 0, r.stderr[-3000:]
        assert json.loads(r.stdout[r.stdout.index("{"):])["eval_images"] == bad.images
        return
    assert r.returncode in (1, 2), (r.returncode, r.stdout[-1000:], r.stderr[-3000:])
    has_words(r.stderr, case, bad)
    assert f"prism {args[0]}: error:" in r.stderr
    if bad.marker is not None:
        assert not bad.marker.exists(), "the pickled payload ran"


# ------------------------------------------------------------------------------------ panels
@pytest.fixture(scope="module")
def window(qapp, tmp_path_factory):
    """One main window on a Digits project for every panel case, as a user would have it open."""
    old_home = os.environ.get("PRISM_STUDIO_HOME")
    os.environ["PRISM_STUDIO_HOME"] = str(tmp_path_factory.mktemp("studio-home"))
    from PySide6.QtCore import QCoreApplication, QDeadlineTimer, QEventLoop

    from prism_gui.engine.project.project import Project
    from prism_gui.ui.main_window import MainWindow

    root = Project.create(tmp_path_factory.mktemp("panels") / "project").root
    win = MainWindow(project=root, warm_up=False)
    win.show()
    deadline = QDeadlineTimer(10000)
    while win.studio.project is None and not deadline.hasExpired():
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
    assert win.studio.project is not None
    win.studio.warm_up(wait=True)
    win.base_project = root
    yield win
    for job in win.jobs.jobs:
        if job.state in ("queued", "running", "paused"):
            job.cancel()
    win.hide()
    win.deleteLater()
    if old_home is None:
        os.environ.pop("PRISM_STUDIO_HOME", None)
    else:
        os.environ["PRISM_STUDIO_HOME"] = old_home


def drop(widget, path: Path) -> None:
    """Drag ``path`` from a file manager and drop it on ``widget`` (the events Qt delivers)."""
    from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent
    from PySide6.QtWidgets import QApplication

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    enter = QDragEnterEvent(QPoint(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted(), f"{type(widget).__name__} refuses drops"
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


def wait_job(qtbot, job, timeout=60000) -> str:
    qtbot.waitUntil(lambda: job.state in ("finished", "failed", "cancelled"), timeout=timeout)
    qtbot.wait(20)  # the job's ended/failed slots run
    return job.state


def close_dialogs(win) -> None:
    from PySide6.QtWidgets import QMessageBox

    for box in win.findChildren(QMessageBox, "job_error_dialog"):
        box.close()
        box.deleteLater()


def use_digits_teacher(win, qtbot):
    """The Digits teacher loaded, as the Teacher panel loads it (a job)."""
    if win.studio.teacher is None or win.studio.teacher.class_names != DIGITS or \
            getattr(win.studio.teacher, "source", "") != "digits":
        panel = win.teacher
        panel.set_kind("digits")
        panel.names.setPlainText("")
        assert wait_job(qtbot, panel.load()) == "finished"
    return win.studio.teacher


def shown(label) -> str:
    assert not label.isHidden(), "the error is not shown"
    return label.text()


def panel_teacher(win, qtbot, case: Case, bad: Bad, d: Path):
    panel, studio = win.teacher, win.studio
    before = use_digits_teacher(win, qtbot)
    section = copy.deepcopy(studio.project.spec["teacher"])
    names_before = panel.names.toPlainText()
    panel.set_kind("digits")
    panel.arch.setText("digits_cnn")
    if "class_names" in bad.extra:  # the user's names go in first
        drop(panel, Path(bad.extra["class_names"]))
    drop(panel, bad.path)
    parse_error = case.kind == "names" and panel.error.text() != ""
    if not parse_error:  # the file is in place: load it, as the user does next
        assert wait_job(qtbot, panel.load()) == "failed"
    else:
        assert panel.names.toPlainText() == names_before, "the names in the box were replaced"
    # the message names the file it read; names imported into the box are the box's, not a file's
    has_words(shown(panel.error), case, bad, name=parse_error or (case.kind != "names" and not bad.extra))
    assert studio.teacher is before, "the loaded teacher was dropped"
    assert studio.project.spec["teacher"] == section, "the project's teacher changed"
    if bad.marker is not None:
        assert not bad.marker.exists(), "the pickled payload ran"
    # still usable: a good checkpoint dropped and loaded right after
    panel.names.setPlainText("")
    drop(panel, good_checkpoint(d))
    assert panel.kind() == "checkpoint"
    assert wait_job(qtbot, panel.load()) == "finished"
    assert studio.teacher is not before and studio.teacher.num_classes == 10 and panel.error.isHidden()


def panel_prompts(win, qtbot, case: Case, bad: Bad, d: Path):
    from prism_gui.engine.project.app_jobs import teacher_info
    from prism_gui.engine.prompts import PromptSet, load_bank, plain_prompts

    panel, studio = win.prompts, win.studio
    teacher = use_digits_teacher(win, qtbot)
    studio.set_teacher(teacher, teacher_info(teacher))
    before = plain_prompts(DIGITS, load_bank("digits"))
    studio.set_prompts(before)
    rows = panel.model.rowCount()
    assert not panel.accept_file(str(d / "notes.docx"))  # a wrong kind of file is refused by its suffix
    drop(panel, bad.path)
    has_words(shown(panel.error), case, bad)
    assert studio.prompts is before and panel.model.rowCount() == rows, "the prompts were replaced"
    assert PromptSet.load(studio.project.prompts_path).prompts == before.prompts, "the saved prompts changed"
    good = copy.deepcopy(before)
    good.prompts.append(copy.deepcopy(good.prompts[0]))
    good.save(d / "good.json")
    drop(panel, d / "good.json")
    assert panel.model.rowCount() == rows + 1 and panel.error.isHidden()


def panel_distill(win, qtbot, case: Case, bad: Bad, d: Path):
    panel, studio = win.distill, win.studio
    use_digits_teacher(win, qtbot)
    panel.eval_set.set_value("digits-test")
    panel.eval_set._changed()
    before = panel.eval_set.value()
    job = drop_folder(panel, bad.path)
    if not case.words:
        assert wait_job(qtbot, job) == "finished", panel.error.text()
        assert panel.eval_set.value() == (str(bad.path), None)
        assert studio.project.evaluation() == (str(bad.path), None)
        assert f"{bad.images} images" in panel.result.text()
        return
    assert wait_job(qtbot, job) == "failed"
    has_words(shown(panel.error), case, bad)
    assert panel.eval_set.value() == before and studio.project.evaluation() == before, "the evaluation set changed"
    good = eval_folder(d / "good")
    assert wait_job(qtbot, drop_folder(panel, good)) == "finished"
    assert panel.eval_set.value() == (str(good), None) and panel.error.isHidden()


def drop_folder(panel, path: Path):
    drop(panel, path)
    return panel.folder_job


def panel_generate(win, qtbot, case: Case, bad: Bad, d: Path):
    panel = win.generate
    panel.add_generator(str(bad.path))  # what Add: Folder… does with the chosen folder
    qtbot.waitUntil(lambda: not panel.scanning_generators, timeout=60000)
    assert panel.generator_source() == str(bad.path)
    text = panel.generator_info.text()
    assert "Not usable" in text and not panel.generator_info.isHidden(), text
    has_words(text, case, bad, name=False)
    assert panel.generator.findData("digits") >= 0, "the other generators left the menu"
    panel.set_generator("digits")
    assert panel.generator_source() == "digits" and "Not usable" not in panel.generator_info.text()


def panel_generate_nan(win, qtbot, case: Case, bad: Bad, d: Path):
    from prism_gui.engine.project.app_jobs import teacher_info

    panel, studio = win.generate, win.studio
    good = use_digits_teacher(win, qtbot)
    panel.set_generator("digits")
    panel.prompt_source.setCurrentIndex(1)  # plain class names
    panel.per_class.setValue(1)
    panel.steps.setValue(2)
    panel.batch.setValue(10)
    degenerate = degenerate_teacher()
    studio.set_teacher(degenerate, teacher_info(degenerate))
    stored = studio.catalog.count()
    assert wait_job(qtbot, panel.start(), timeout=120000) == "failed"
    has_words(shown(panel.error), case, bad, name=False)
    assert studio.catalog.count() == stored, "images of NaN energy were stored"
    studio.set_teacher(good, teacher_info(good))  # still usable: the same job with a sound teacher
    assert wait_job(qtbot, panel.start(), timeout=120000) == "finished", panel.error.text()
    assert studio.catalog.count() == stored + 10


def panel_window(win, qtbot, case: Case, bad: Bad, d: Path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    shown_messages = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _parent, title, text, *a, **k: shown_messages.append(text))
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: pytest.fail("asked to rebuild a sound catalog"))
    current = win.studio.project
    files = snapshot(bad.path)
    assert win.open_project(bad.path) is None
    assert len(shown_messages) == 1
    has_words(shown_messages[0], case, bad, name=False)
    assert win.studio.project is current, "the open project was closed"
    assert snapshot(bad.path) == files, "the project's files were changed"
    from prism_gui.engine.project.project import Project

    other = Project.create(d / "other").root
    assert win.open_project(other) is not None and win.studio.project.root == other
    assert win.open_project(win.base_project) is not None


PANELS = {"teacher": panel_teacher, "prompts": panel_prompts, "distill": panel_distill, "generate": panel_generate,
          "generate-nan": panel_generate_nan}


@pytest.mark.parametrize("case", [c for c in CASES if c.panel], ids=lambda c: c.id)
def test_panel(case, window, qtbot, tmp_path, monkeypatch):
    bad = case.craft(tmp_path)
    try:
        if case.panel == "window":
            panel_window(window, qtbot, case, bad, tmp_path, monkeypatch)
        else:
            PANELS[case.panel](window, qtbot, case, bad, tmp_path)
        assert window.jobs.current is None or window.jobs.current.state in ("finished", "failed")
    finally:
        close_dialogs(window)


def test_every_case_reaches_a_panel_or_says_why():
    for c in CASES:
        assert c.panel or c.no_panel, c.id
        assert c.panel in ("", *PANELS, "window"), c.id


def catalogue() -> str:
    """The table of cases as docs/RELIABILITY.md shows it (``python -m tests.reliability.test_bad_inputs``)."""
    rows = ["| id | input | engine | CLI | panel | the user sees |", "|---|---|---|---|---|---|"]
    for c in CASES:
        rows.append(f"| `{c.id}` | {c.what} | yes | {'no: ' + c.no_cli if c.no_cli else 'yes'} | "
                    f"{c.panel or 'no: ' + c.no_panel} | {' … '.join(c.words) if c.words else 'accepted'} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(catalogue())
