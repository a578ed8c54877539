"""The generator menu: what is usable locally (the built-in prior, added folders and checkpoints, the
Hugging Face cache), described from configs and headers only, and the Generate panel's menu."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from prism_gui.engine.generation.local_models import cached_generators, local_generators
from tests.test_single_file import signature, write_sparse_safetensors

# --------------------------------------------------------------------------------------------
# a fake Hugging Face cache: models--org--name/{blobs,refs/main,snapshots/<hash>/...}


def add_to_cache(cache: Path, repo_id: str, folder: Path, *, ref: str | None = "main", skip=()) -> Path:
    """Put ``folder`` in the cache as ``repo_id``'s snapshot, files as symlinks into blobs/, as
    huggingface_hub stores them; ``skip``: relative paths left out (an interrupted download)."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    snap = repo / "snapshots" / commit
    for f in sorted(folder.rglob("*")):
        rel = f.relative_to(folder).as_posix()
        if f.is_dir() or rel in skip or rel.startswith("_"):
            continue
        data = f.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        (snap / rel).parent.mkdir(parents=True, exist_ok=True)
        (snap / rel).symlink_to(Path("../" * (rel.count("/") + 2)) / "blobs" / blob.name)
    snap.mkdir(parents=True, exist_ok=True)
    if ref:
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return snap


def to_fp16(folder: Path, variant: bool) -> Path:
    """The UNet weights in float16, as the default file or only as the ``fp16`` variant."""
    f = folder / "unet" / "diffusion_pytorch_model.safetensors"
    state = {k: v.half() for k, v in load_file(f).items()}
    f.unlink()
    save_file(state, folder / "unet" / ("diffusion_pytorch_model.fp16.safetensors" if variant else f.name))
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tests.tiny_sd import build_tiny_lcm, build_tiny_sd, build_tiny_sdxl

    root = tmp_path_factory.mktemp("tiny_models")
    return {"sd": build_tiny_sd(root / "a"), "sdxl": build_tiny_sdxl(root / "b"), "lcm": build_tiny_lcm(root / "c")}


def copy(src: Path, dst: Path) -> Path:
    return Path(shutil.copytree(src, dst))


@pytest.fixture(scope="module")
def fake_cache(tiny, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hf")
    cache = tmp / "hub"
    add_to_cache(cache, "org/tiny-sd", tiny["sd"])
    add_to_cache(cache, "org/tiny-sdxl", tiny["sdxl"])
    add_to_cache(cache, "org/tiny-lcm", tiny["lcm"])
    add_to_cache(cache, "org/tiny-sd-fp16", to_fp16(copy(tiny["sd"], tmp / "fp16"), variant=False))
    add_to_cache(cache, "org/tiny-sd-fp16-only", to_fp16(copy(tiny["sd"], tmp / "fp16v"), variant=True))
    add_to_cache(cache, "org/tiny-sd-partial", tiny["sd"], skip={"unet/diffusion_pytorch_model.safetensors"})
    add_to_cache(cache, "org/no-main-ref", tiny["sd"], ref=None)
    # not generators: a ControlNet alone (one model, no model_index.json), a text model, an inpainting pipeline
    controlnet = tmp / "controlnet"
    copy(tiny["sd"] / "unet", controlnet)
    add_to_cache(cache, "org/controlnet", controlnet)
    llm = tmp / "llm"
    llm.mkdir()
    (llm / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    add_to_cache(cache, "org/llm", llm)
    inpaint = copy(tiny["sd"], tmp / "inpaint")
    index = json.loads((inpaint / "model_index.json").read_text())
    (inpaint / "model_index.json").write_text(json.dumps({**index, "_class_name": "StableDiffusionInpaintPipeline"}))
    add_to_cache(cache, "org/inpaint", inpaint)
    return cache


def by_label(entries):
    return {e.label: e for e in entries}


def test_the_cache_lists_its_generators_with_what_they_are(fake_cache):
    found = by_label(cached_generators(fake_cache))
    assert set(found) == {"org/tiny-sd", "org/tiny-sdxl", "org/tiny-lcm", "org/tiny-sd-fp16", "org/tiny-sd-fp16-only",
                          "org/tiny-sd-partial", "org/no-main-ref"}  # no ControlNet, LLM or inpainting pipeline
    sd, sdxl, lcm = found["org/tiny-sd"], found["org/tiny-sdxl"], found["org/tiny-lcm"]
    assert (sd.source, sd.where, sd.family, sd.lcm, sd.prediction_type) == ("org/tiny-sd", "cache", "sd", False,
                                                                             "epsilon")
    assert sd.resolution == 16  # UNet sample_size 8 x the tiny VAE's factor 2
    assert sd.precision == "fp32" and sd.problem is None and sd.usable
    assert sdxl.family == "sdxl" and not sdxl.lcm and sdxl.resolution == 16 and sdxl.usable
    assert lcm.family == "sd" and lcm.lcm and lcm.usable
    files = [f for f in (fake_cache / "models--org--tiny-sd" / "blobs").iterdir()]
    assert sd.size_bytes == sum(f.stat().st_size for f in files) > 0
    assert sd.summary() == f"org/tiny-sd (cache) · sd · epsilon · 16 px · fp32 · {sd.summary().rsplit(' · ', 1)[1]}"
    assert "sd · lcm" in lcm.summary()


def test_precision_is_read_from_the_unet_header(fake_cache):
    found = by_label(cached_generators(fake_cache))
    assert found["org/tiny-sd-fp16"].precision == "fp16" and found["org/tiny-sd-fp16"].usable
    only = found["org/tiny-sd-fp16-only"]
    assert only.precision == "fp16"
    assert "fp16 variant" in only.problem and "huggingface-cli download org/tiny-sd-fp16-only" in only.problem


def test_an_incomplete_download_is_listed_with_its_problem(fake_cache):
    partial = by_label(cached_generators(fake_cache))["org/tiny-sd-partial"]
    assert not partial.usable
    assert "incomplete download" in partial.problem and "unet weights" in partial.problem
    assert partial.family == "sd"  # described from its configs all the same


def test_a_snapshot_without_refs_main_loads_as_a_folder(fake_cache):
    e = by_label(cached_generators(fake_cache))["org/no-main-ref"]
    assert Path(e.source).is_dir() and (Path(e.source) / "model_index.json").exists() and e.usable


def test_a_damaged_cached_repo_is_listed_with_its_problem(tiny, tmp_path):
    cache = tmp_path / "hub"
    add_to_cache(cache, "org/good", tiny["sd"])
    snap = add_to_cache(cache, "org/damaged", tiny["sd"])
    (snap / "vae" / "config.json").resolve().unlink()  # a blob deleted by hand: the scan refuses the repo
    found = by_label(cached_generators(cache))
    assert found["org/good"].usable
    assert "damaged" in found["org/damaged"].problem and found["org/damaged"].family == "sd"


def test_hf_home_and_hf_hub_cache_are_read_at_call_time(fake_cache, monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(fake_cache.parent))
    entries = local_generators()
    assert entries[0].source == "digits" and entries[0].where == "built-in"
    assert "org/tiny-sd" in {e.source for e in entries}
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    assert [e.source for e in local_generators()] == ["digits"]  # a missing cache is no error


def test_the_builtin_prior(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    (digits,) = local_generators()
    assert (digits.label, digits.family, digits.prediction_type, digits.resolution, digits.precision) == (
        "Digits prior", "sd", "epsilon", 8, "fp32")
    assert digits.usable and digits.size_bytes > 1_000_000


def test_added_folders_and_checkpoint_files(tiny, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "none"))
    sd15 = write_sparse_safetensors(tmp_path / "dreamy.safetensors", signature("sd15"))
    sd2 = write_sparse_safetensors(tmp_path / "sd21.safetensors", signature("sd2"))
    xl = write_sparse_safetensors(tmp_path / "xl.safetensors", signature("sdxl"), {"modelspec.prediction_type": "v"})
    lora = write_sparse_safetensors(tmp_path / "lora.safetensors", {"lora_unet_down.alpha": (1,)})
    entries = local_generators([tiny["sdxl"], sd15, sd2, xl, lora, tmp_path / "gone", tiny["sdxl"]])
    assert [e.where for e in entries] == ["built-in", "folder", "file", "file", "file", "file", "folder"]  # no twin
    folder, f15, f2, fxl, flora, gone = entries[1:]
    assert (folder.source, folder.label, folder.family, folder.usable) == (str(tiny["sdxl"]), "sdxl", "sdxl", True)
    assert (f15.source, f15.label, f15.family, f15.prediction_type, f15.resolution, f15.precision) == (
        str(sd15), "dreamy", "sd", "epsilon", 512, "fp16")
    assert (f2.family, f2.prediction_type, f2.resolution) == ("sd", "v_prediction", 768)
    assert (fxl.family, fxl.prediction_type, fxl.resolution) == ("sdxl", "v_prediction", 1024)  # the file's hint
    assert f15.size_bytes == sd15.stat().st_size and f15.usable
    assert "LoRA" in flora.problem
    assert "no longer exists" in gone.problem


def test_a_folder_that_is_not_a_generator_says_why(tiny, tmp_path):
    no_unet = tmp_path / "empty"
    no_unet.mkdir()
    inpaint = copy(tiny["sd"], tmp_path / "inpaint")
    cfg = json.loads((inpaint / "unet" / "config.json").read_text())
    (inpaint / "unet" / "config.json").write_text(json.dumps({**cfg, "in_channels": 9}))
    no_te = copy(tiny["sd"], tmp_path / "no_te")
    shutil.rmtree(no_te / "text_encoder")
    _, empty, inp, te = local_generators([no_unet, inpaint, no_te], cache_dir=tmp_path / "none")
    assert "no unet/" in empty.problem
    assert "inpainting" in inp.problem
    assert "incomplete folder" in te.problem and "text_encoder/" in te.problem


def test_fifty_cached_repos_scan_in_well_under_a_second(tiny, tmp_path):
    cache = tmp_path / "hub"
    snap = add_to_cache(cache, "org/model-0", tiny["sd"])
    for i in range(1, 50):  # the same files under 50 ids (copying the layout keeps the symlinks)
        repo = cache / f"models--org--model-{i}"
        shutil.copytree(snap.parent.parent, repo, symlinks=True)
    cached_generators(cache)  # imports what a scan needs, as the app has at engine-ready
    t = time.perf_counter()
    entries = cached_generators(cache)
    elapsed = time.perf_counter() - t
    assert len(entries) == 50 and all(e.usable for e in entries)
    assert elapsed < 0.5, f"scanning 50 repos took {elapsed:.2f} s"


def test_listing_loads_no_model(fake_cache, monkeypatch):
    import diffusers
    import transformers

    def refuse(*_a, **_k):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(diffusers.UNet2DConditionModel, "from_pretrained", refuse)
    monkeypatch.setattr(transformers.CLIPTextModel, "from_pretrained", refuse)
    assert len(cached_generators(fake_cache)) == 7


# --------------------------------------------------------------------------------------------
# the Generate panel's menu


@pytest.fixture
def studio():
    from prism_gui.ui.common import make_studio

    s = make_studio()
    s.warm_up(wait=True)
    return s


def make_panel(qtbot, studio, settings):
    from prism_gui.ui.generate_panel import GeneratePanel

    p = GeneratePanel(studio, settings=settings)
    qtbot.addWidget(p)
    qtbot.waitUntil(lambda: p.generator.count() > 1 and not p.scanning_generators, timeout=20000)
    return p


def test_the_generate_panel_lists_the_local_generators(qtbot, studio, fake_cache, monkeypatch, tmp_path):
    from PySide6.QtCore import Qt

    from prism_gui.ui.common import Settings

    monkeypatch.setenv("HF_HUB_CACHE", str(fake_cache))
    settings = Settings(tmp_path / "settings.ini")
    panel = make_panel(qtbot, studio, settings)
    combo = panel.generator
    sources = [combo.itemData(i) for i in range(combo.count())]
    assert sources[0] == "digits" and "org/tiny-sd" in sources and "org/tiny-sdxl" in sources
    assert panel.settings()["generator"] == "digits"
    assert combo.currentText().startswith("Digits prior (built-in) · sd · epsilon · 8 px · fp32")
    i = combo.findData("org/tiny-sdxl")
    assert combo.itemText(i).startswith("org/tiny-sdxl (cache) · sdxl · epsilon · 16 px · fp32 · ")
    combo.setCurrentIndex(i)
    assert panel.settings()["generator"] == "org/tiny-sdxl"  # the source, not the label
    # a problem shows in the menu line, its tooltip and, when chosen, under the menu
    j = combo.findData("org/tiny-sd-partial")
    assert combo.itemText(j).endswith("⚠ not usable") and "not usable" not in combo.itemText(i)
    assert "incomplete download" in combo.itemData(j, Qt.ItemDataRole.ToolTipRole)
    combo.setCurrentIndex(j)
    assert "Not usable" in panel.generator_info.text()
    # typing still works: a hub id or a path goes through as typed
    combo.setEditText("someone/not-listed")
    assert panel.settings()["generator"] == "someone/not-listed"
    panel.set_generator("org/tiny-lcm")
    assert panel.settings()["generator"] == "org/tiny-lcm" and combo.currentText().startswith("org/tiny-lcm (cache)")


def test_added_folders_and_files_are_remembered(qtbot, studio, tiny, monkeypatch, tmp_path):
    from PySide6.QtWidgets import QFileDialog

    from prism_gui.ui.common import Settings
    from prism_gui.ui.generate_panel import GeneratePanel

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "no-cache"))
    ckpt = write_sparse_safetensors(tmp_path / "dreamy.safetensors", signature("sd15"))
    settings = Settings(tmp_path / "settings.ini")
    panel = GeneratePanel(studio, settings=settings)
    qtbot.addWidget(panel)
    qtbot.waitUntil(lambda: not panel.scanning_generators, timeout=20000)  # the Digits prior alone
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tiny["sd"]))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(ckpt), ""))
    panel._browse_generator()
    qtbot.waitUntil(lambda: panel.generator.findData(str(tiny["sd"])) >= 0, timeout=20000)
    assert panel.settings()["generator"] == str(tiny["sd"])
    panel._browse_checkpoint()
    qtbot.waitUntil(lambda: panel.generator.findData(str(ckpt)) >= 0, timeout=20000)
    assert panel.settings()["generator"] == str(ckpt)
    assert panel.generator.currentText().startswith("dreamy (file) · sd · epsilon · 512 px · fp16")
    assert settings.list("generators/extra") == [str(ckpt), str(tiny["sd"])]
    # next launch: listed again
    again = make_panel(qtbot, studio, Settings(tmp_path / "settings.ini"))
    assert again.generator.findData(str(ckpt)) >= 0 and again.generator.findData(str(tiny["sd"])) >= 0


def load_from_cache(python, root, cache: Path, code: str) -> str:
    """Run ``code`` in a fresh process on ``cache`` (huggingface_hub reads HF_HUB_CACHE when imported)."""
    import os
    import subprocess

    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([python, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def mark_missing_as_online_loads_do(cache: Path) -> None:
    """What a first online load leaves in the cache: ``.no_exist`` markers for the files the Hub
    does not have (here the tokenizers' config.json, which AutoTokenizer asks for)."""
    for snap in cache.glob("models--*/snapshots/*"):
        for tok in ("tokenizer", "tokenizer_2"):
            marker = snap.parent.parent / ".no_exist" / snap.name / tok / "config.json"
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()


def test_the_listed_sources_load_and_the_problems_are_real(fake_cache, python, root, tmp_path):
    """What the menu offers, load_generator loads from the cache by id, as the menu describes it;
    what it marks not usable fails to load."""
    cache = Path(shutil.copytree(fake_cache, tmp_path / "hub", symlinks=True))
    mark_missing_as_online_loads_do(cache)
    out = load_from_cache(python, root, cache, (
        "from prism_gui.engine.generation.local_models import local_generators\n"
        "from prism_gui.engine.generation.load import load_generator\n"
        "for e in local_generators():\n"
        "    if e.where != 'cache': continue\n"
        "    try:\n"
        "        comp = load_generator(e.source)\n"
        "        ok = (comp.family, comp.resolution) == (e.family, e.resolution)\n"
        "    except Exception:\n"
        "        ok = False\n"
        "    print(e.label, ok == e.usable)\n"))
    lines = dict(line.rsplit(" ", 1) for line in out.splitlines() if line.startswith("org/"))
    assert len(lines) == 7 and set(lines.values()) == {"True"}, out


def test_an_id_downloaded_with_the_cli_loads_offline(fake_cache, python, root):
    """`huggingface-cli download` stores no "not found" markers: the id loads from its snapshot folder
    (per-file offline lookups would ask for tokenizer/config.json, which it never stored)."""
    load_from_cache(python, root, fake_cache, "from prism_gui.engine.generation.load import load_generator\n"
                                              "load_generator('org/tiny-sd')\n")
