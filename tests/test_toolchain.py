"""Issue 18: every door of a project speaks its neighbours' formats, checked with their own
libraries (timm, TensorBoard's event reader, sd-parsers, Hugging Face datasets), offline."""

import json

import numpy as np
import pytest
import torch

from prism_gui.engine.training.distill import DistillSpec, run_distillation


# --------------------------------------------------------------------------- students out as timm models
def test_a_distilled_student_rebuilds_with_timm_local_dir_with_its_logits_and_labels(tmp_path, digits_teacher):
    import timm

    from prism_gui.engine.training.export import load_student

    spec = DistillSpec(data="digits-train", epochs=1, out_dir=str(tmp_path / "d"), seed=3)
    events = list(run_distillation(spec, teacher=digits_teacher))
    student = events[-1].data["student"].eval()
    folder = tmp_path / "d" / "student"
    rebuilt = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    x = torch.randn(16, *digits_teacher.input_size)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), student(x), rtol=1e-5, atol=1e-5)
    assert rebuilt.pretrained_cfg["label_names"] == digits_teacher.class_names
    cfg = timm.data.resolve_data_config({}, model=rebuilt)
    assert tuple(cfg["input_size"]) == tuple(digits_teacher.input_size)
    assert tuple(cfg["mean"]) == pytest.approx(digits_teacher.mean) and cfg["crop_pct"] == digits_teacher.crop_pct
    # the model card: teacher, student, set, spec, accuracy, the command that reproduces it
    card = (folder / "README.md").read_text()
    res = events[-1].data["result"]
    assert card.startswith("---\nlibrary_name: timm")
    assert f"{100 * res['test_accuracy']:.2f}%" in card and f"{100 * res['agreement']:.2f}%" in card
    assert "digits-train" in card and "prism distill spec.json" in card and '"temperature": 4.0' in card
    assert json.loads((tmp_path / "d" / "spec.json").read_text())["seed"] == 3  # the file the card names
    # PRISM's own loader reads the same folder (a run folder or the timm folder itself)
    for where in (tmp_path / "d", folder):
        with torch.no_grad():
            torch.testing.assert_close(load_student(where, digits_teacher)(x), student(x))


def test_a_timm_architecture_exports_without_its_imagenet_provenance(tmp_path, digits_teacher):
    """A random-init timm student is saved with the teacher's preprocessing and labels, not with
    the ImageNet checkpoint's source, tag or test-time size."""
    import timm

    from prism_gui.engine.training.distill import make_student
    from prism_gui.engine.training.export import export_student

    student = make_student("resnet10t", digits_teacher).eval()
    export_student(student, digits_teacher, tmp_path, onnx=False)
    cfg = json.loads((tmp_path / "student" / "config.json").read_text())
    assert cfg["architecture"] == "resnet10t" and cfg["num_classes"] == 10
    assert not {"hf_hub_id", "url", "tag", "test_input_size"} & set(cfg["pretrained_cfg"])
    rebuilt = timm.create_model(f"local-dir:{tmp_path / 'student'}", pretrained=True).eval()
    x = torch.randn(4, *digits_teacher.input_size)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), student(x))
    assert student.pretrained_cfg.get("tag")  # the live model's own config is left as it was


def test_a_student_folder_for_another_teacher_is_refused(tmp_path, digits_teacher):
    from prism_gui.engine.training.distill import make_student
    from prism_gui.engine.training.export import export_student, load_student

    export_student(make_student("digits_student", digits_teacher), digits_teacher, tmp_path, onnx=False)
    cfg = json.loads((tmp_path / "student" / "config.json").read_text())
    cfg["num_classes"] = 7
    (tmp_path / "student" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="has 7 classes but the teacher has 10"):
        load_student(tmp_path, digits_teacher)
    with pytest.raises(ValueError, match="holds no exported student"):
        load_student(tmp_path / "nothing", digits_teacher)


# --------------------------------------------------------------------------- teachers in by every name timm knows
def _timm_folder(folder, labels=None, descriptions=None, arch="resnet10t", classes=5):
    import timm
    from timm.models import save_for_hf

    model = timm.create_model(arch, pretrained=False, num_classes=classes).eval()
    config = {"label_names": labels or [f"thing {i}" for i in range(classes)]}
    if descriptions:
        config["label_descriptions"] = descriptions
    save_for_hf(model, str(folder), model_config=config, safe_serialization=True,
                data_config={"input_size": (3, 32, 32), "interpolation": "bicubic", "crop_pct": 0.9})
    return model


@pytest.fixture
def timm_cache(tmp_path, monkeypatch):
    """A Hugging Face cache holding a timm classifier, a transformers model (not a timm one), and
    a timm repo whose weights never arrived."""
    from tests.test_local_models import add_to_cache

    cache = tmp_path / "hub"
    model = _timm_folder(tmp_path / "m")
    add_to_cache(cache, "org/tiny-classifier", tmp_path / "m")
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    add_to_cache(cache, "org/a-text-model", tmp_path / "bert")
    add_to_cache(cache, "org/half-downloaded", tmp_path / "m", skip={"model.safetensors"})
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache, model


def test_the_cached_timm_models_are_listed_with_what_they_are(timm_cache):
    from prism_gui.engine.teachers.cache import cached_teachers

    entries = {e.source: e for e in cached_teachers()}
    assert set(entries) == {"hf-hub:org/tiny-classifier", "hf-hub:org/half-downloaded"}
    ok = entries["hf-hub:org/tiny-classifier"]
    assert ok.usable and ok.architecture == "resnet10t" and ok.num_classes == 5
    assert "huggingface-cli download org/half-downloaded" in entries["hf-hub:org/half-downloaded"].problem


def test_hf_hub_and_local_dir_teachers_load_from_this_computer_only(timm_cache, tmp_path):
    from prism_gui.engine.teachers.errors import TeacherLoadError
    from prism_gui.engine.teachers.spec import TeacherSpec

    _cache, model = timm_cache
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    for source in ("hf-hub:org/tiny-classifier", f"local-dir:{tmp_path / 'm'}"):
        t = TeacherSpec.from_value({"source": source}).load()
        assert t.class_names == [f"thing {i}" for i in range(5)] and t.input_size == (3, 32, 32)
        assert t.interpolation == "bicubic" and t.crop_pct == pytest.approx(0.9) and t.architecture == "resnet10t"
        with torch.no_grad():
            torch.testing.assert_close(t.logits(x), model(t.preprocess(x)))
    # a spec's own class names still win
    names = tmp_path / "names.txt"
    names.write_text("\n".join("abcde"))
    assert TeacherSpec.from_value({"source": "hf-hub:org/tiny-classifier", "class_names": str(names)}).load() \
        .class_names == list("abcde")
    for source, problem in (("hf-hub:org/not-here", "huggingface-cli download org/not-here"),
                            ("hf-hub:org/half-downloaded", "no weights"),
                            ("hf-hub:tiny-classifier", "hf-hub:org/name"),
                            (f"local-dir:{tmp_path / 'nowhere'}", "does not exist"),
                            (f"local-dir:{tmp_path / 'bert'}", "holds no timm config.json")):
        with pytest.raises(TeacherLoadError, match=problem):
            TeacherSpec.from_value(source).load()
    with pytest.raises(TeacherLoadError, match="leave 'checkpoint' out"):
        TeacherSpec.from_value({"source": "hf-hub:org/tiny-classifier", "checkpoint": str(names)}).load()


def test_wordnet_label_names_give_imagenet_style_names_and_ids(tmp_path):
    from prism_gui.engine.teachers.load import load_teacher

    ids = ["n01440764", "n02012849", "n03126707"]
    desc = {"n01440764": "tench, Tinca tinca", "n02012849": "crane", "n03126707": "crane, a lifting machine"}
    _timm_folder(tmp_path / "w", labels=ids, descriptions=desc, classes=3)
    t = load_teacher(f"local-dir:{tmp_path / 'w'}")
    assert t.class_ids == ids and t.class_names == ["tench", "crane", "crane"]
    assert t.class_descriptions[2] == "crane, a lifting machine"


def test_the_teacher_picker_lists_the_cache_and_loads_a_choice(qtbot, tmp_path, timm_cache):
    from tests.test_ui_teacher import make_panel

    studio, panel = make_panel(qtbot, tmp_path)
    panel.scan_cache()
    qtbot.waitUntil(lambda: not panel.scanning, timeout=10000)
    i = panel.cached.findData("hf-hub:org/tiny-classifier")
    assert i > 0 and "resnet10t, 5 classes" in panel.cached.itemText(i)
    bad = panel.cached.findData("hf-hub:org/half-downloaded")
    assert "not usable" in panel.cached.itemText(bad)
    panel._on_cached_chosen(bad)
    assert "no weights" in panel.error.text()
    panel._on_cached_chosen(i)
    assert panel.kind() == "timm" and panel.timm_name.text() == "hf-hub:org/tiny-classifier"
    job = panel.load()
    qtbot.waitUntil(lambda: job.state in ("finished", "failed"), timeout=60000)
    assert job.state == "finished" and studio.teacher.class_names[0] == "thing 0"
    assert studio.project.teacher_value() == "hf-hub:org/tiny-classifier"


# --------------------------------------------------------------------------- curves out to TensorBoard and CSV
def _tb_scalars(folder):
    """Every scalar of the event files under ``folder``, read by TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    return acc, {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_distillation_curves_read_back_in_tensorboard_and_csv(tmp_path, digits_teacher):
    import csv

    from prism_gui.engine.data.catalog import Catalog

    d = tmp_path / "runs" / "kd"
    spec = DistillSpec(data="digits-train", epochs=2, out_dir=str(d))
    list(run_distillation(spec, teacher=digits_teacher))
    _acc, scalars = _tb_scalars(d)
    lines = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    losses = [(x["step"], x["loss"]) for x in lines if "loss" in x]
    assert [s for s, _ in scalars["train/loss"]] == [s for s, _ in losses]
    np.testing.assert_allclose([v for _, v in scalars["train/loss"]], [v for _, v in losses], rtol=1e-6)
    assert len(scalars["train/learning_rate"]) == len(losses)
    evals = [x for x in lines if "test_accuracy" in x]
    np.testing.assert_allclose([v for _, v in scalars["eval/accuracy"]], [x["test_accuracy"] for x in evals],
                               rtol=1e-6)  # TensorBoard keeps float32
    assert len(scalars["eval/agreement"]) == 2
    # the same run through a project's catalog, out as CSV
    proj = tmp_path / "proj"
    with Catalog(proj) as cat:
        cat.start_run("kd", "distill", {})
        cat.replace_metrics("kd", lines)
        # one row per (step, epoch): an epoch's last step and its evaluation share a row
        assert cat.export_metrics_csv("kd", tmp_path / "kd.csv") == len({(x["step"], x["epoch"]) for x in lines})
        with pytest.raises(Exception, match="no run 'nope'"):
            cat.export_metrics_csv("nope", tmp_path / "x.csv")
    rows = list(csv.DictReader(open(tmp_path / "kd.csv")))
    assert rows[0].keys() >= {"step", "epoch", "loss", "lr", "test_accuracy", "agreement"}
    assert float(rows[0]["loss"]) == pytest.approx(lines[0]["loss"]) and rows[0]["test_accuracy"] == ""


def test_a_resumed_distillation_shows_each_step_once_in_tensorboard(tmp_path, digits_teacher):
    from prism_gui.engine.jobs import Cancelled, CancelToken

    spec = DistillSpec(data="digits-train", epochs=2, out_dir=str(tmp_path / "d"), eval="", checkpoint_every=5)
    token = CancelToken()
    with pytest.raises(Cancelled):
        for ev in run_distillation(spec, teacher=digits_teacher, cancel=token):
            if ev.step == 23:
                token.cancel()
    list(run_distillation(spec, teacher=digits_teacher))
    _acc, scalars = _tb_scalars(tmp_path / "d")
    steps = [s for s, _ in scalars["train/loss"]]
    assert steps == list(range(1, 35))


def test_generation_logs_images_per_second_and_energy_histograms_per_class(tmp_path, digits_teacher, digits_prior):
    from prism_gui.engine.generation.job import GenerateSpec, run_generation
    from prism_gui.engine.prompts import expand, load_bank
    from tests.test_generate import DIGITS

    ps = expand(DIGITS, load_bank("digits"), per_class=2, seed=0)
    spec = GenerateSpec(project=str(tmp_path), run="g", images_per_class=2, batch_size=10,
                        sampler={"steps": 3, "cfg": 2.0})
    list(run_generation(spec, ps, teacher=digits_teacher, components=digits_prior))
    acc, scalars = _tb_scalars(tmp_path / "runs" / "g")
    assert [s for s, _ in scalars["generate/images_per_second"]] == [10, 20]
    assert all(v > 0 for _, v in scalars["generate/images_per_second"])
    hists = acc.Tags()["histograms"]
    assert "energy/all" in hists and len([h for h in hists if h.startswith("energy_by_class/")]) == 10
    assert acc.Histograms("energy_by_class/0_zero")[-1].histogram_value.num == 2
    from prism_gui.engine.data.catalog import Catalog

    with Catalog(tmp_path) as cat:
        header, rows = cat.metrics_table("g")
    assert header == ["step", "epoch", "time", "images_per_s", "mean_energy"] and len(rows) == 2


# --------------------------------------------------------------------------- sets out as datasets
@pytest.fixture
def curated_project(tmp_path):
    from prism_gui.engine.data.catalog import Catalog
    from tests.test_catalog import add

    root = tmp_path / "proj"
    with Catalog(root) as cat:
        cat.start_run("r", "generate", {"sampler": {"steps": 4, "cfg": 3.0}, "guidance": {"scale": 2.0}})
        for i in range(9):
            add(cat, "r", i, k=i % 3, energy=float(i))
        cat.set_status([1], "reject")
    (root / "runs" / "r").mkdir(parents=True, exist_ok=True)
    (root / "runs" / "r" / "prdc.json").write_text(json.dumps({"precision": 0.9, "recall": 0.5, "density": 1.1,
                                                               "coverage": 0.7}))
    return root


def test_the_exported_set_loads_with_hf_datasets_with_labels_and_metadata(curated_project, tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    from prism_gui.engine.data.export import export_dataset_job

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    names = ["cat", "dog", "crane (bird)"]
    out = tmp_path / "set"
    events = list(export_dataset_job(curated_project, out, class_names=names))
    assert events[-1].data["images"] == 8
    ds = datasets.load_dataset("imagefolder", data_dir=str(out), split="train")
    assert len(ds) == 8 and {"image", "label", "class_name", "prompt", "seed", "energy", "status", "run"} <= \
        set(ds.column_names)
    ds = ds.cast_column("label", datasets.ClassLabel(names=json.loads((out / "classes.json").read_text())))
    row = next(r for r in ds if r["seed"] == 1002)
    assert row["label"] == 2 and ds.features["label"].int2str(row["label"]) == "crane (bird)"
    assert row["energy"] == 2.0 and row["image"].size == (8, 8)
    card = (out / "README.md").read_text()
    assert "image-classification" in card and "| 2 | crane (bird) | 3 |" in card and "| 0.900 |" in card
    # a second export after more curation updates the folder: the rejected image leaves it
    from prism_gui.engine.data.catalog import Catalog

    with Catalog(curated_project) as cat:
        cat.set_status([3], "reject")
    list(export_dataset_job(curated_project, out, class_names=names))
    assert len(list(out.rglob("*.png"))) == 7 and len((out / "metadata.jsonl").read_text().splitlines()) == 7


def test_export_refuses_a_folder_of_other_files(curated_project, tmp_path):
    from prism_gui.engine.data.export import ExportError, export_dataset_job

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="did not export"):
        list(export_dataset_job(curated_project, tmp_path / "mine"))
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"
    with pytest.raises(ExportError, match="inside the project"):
        list(export_dataset_job(curated_project, curated_project / "out"))


# --------------------------------------------------------------------------- images in
def _png(path, size=(8, 8), color=128, parameters=None, comfy=None, mode="L"):
    from PIL import Image, PngImagePlugin

    path.parent.mkdir(parents=True, exist_ok=True)
    info = PngImagePlugin.PngInfo()
    if parameters:
        info.add_text("parameters", parameters)
    for k, v in (comfy or {}).items():
        info.add_text(k, json.dumps(v))
    rng = np.random.default_rng(color)
    arr = rng.integers(0, 255, (*size[::-1], 3 if mode == "RGB" else 1), dtype=np.uint8)
    Image.fromarray(arr[..., 0] if mode == "L" else arr, mode).save(path, pnginfo=info)


def _comfy(seed, text):
    prompt = {"3": {"class_type": "KSampler", "inputs": {"seed": seed, "steps": 25, "cfg": 6.5, "sampler_name": "euler",
                                                         "scheduler": "normal", "denoise": 1.0, "model": ["4", 0],
                                                         "positive": ["6", 0], "negative": ["7", 0]}},
              "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5.safetensors"}},
              "6": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["4", 1]}},
              "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "lowres", "clip": ["4", 1]}}}
    workflow = {"links": [[1, 4, 0, 3, 0, "MODEL"], [2, 6, 0, 3, 1, "CONDITIONING"], [3, 7, 0, 3, 2, "CONDITIONING"],
                          [4, 4, 1, 6, 0, "CLIP"], [5, 4, 1, 7, 0, "CLIP"]]}
    return {"prompt": prompt, "workflow": workflow}


def test_import_of_a1111_and_comfyui_pngs_in_class_folders_is_idempotent(tmp_path, digits_teacher):
    from prism_gui.engine.data.catalog import Catalog
    from prism_gui.engine.project.importer import import_job

    src = tmp_path / "made-elsewhere"
    for i in range(3):
        _png(src / "seven" / f"{i}.png", color=i, parameters=(
            f"a handwritten seven, pencil\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, "
            f"Seed: {100 + i}, Size: 8x8, Model: sd15"))
    _png(src / "two" / "c.png", color=9, comfy=_comfy(4242, "the digit two in ink"))
    _png(src / "two" / "same-seed.png", color=10, parameters=(
        "a two\nSteps: 5, Sampler: Euler, CFG scale: 5, Seed: 100, Size: 8x8"))  # seed 100 again
    (src / "two" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    (src / "two" / "notes.txt").write_text("not an image")
    proj = tmp_path / "proj"
    events = list(import_job(proj, src, digits_teacher))
    res = events[-1].data["result"]
    assert res["added"] == 5 and res["duplicates"] == 0 and res["classes_from"] == "folders"
    assert [r[0] for r in res["unreadable"]] == ["two/broken.png"]
    with Catalog(proj) as cat:
        rows = {cat.get(r["id"])["settings"]["import"]["file"]: cat.get(r["id"]) for r in cat.query(run=res["run"])}
        assert [r["kind"] for r in cat.runs()] == ["import"]
    r = rows["seven/1.png"]
    assert (r["class_name"], r["prompt"], r["negative_prompt"], r["seed"]) == ("seven", "a handwritten seven, pencil",
                                                                                "blurry", 101)
    assert r["settings"]["sampler"] == {"steps": 20, "cfg": 7.0, "scheduler": "Euler a"}
    assert r["generator"] == "imported: sd15" and set(r["energies"]) == {"class", "free", "bn"}
    assert len(r["top5"]) == 5 and r["correct"] in (0, 1) and r["settings"]["import"]["class_from"] == "folders"
    c = rows["two/c.png"]
    assert (c["class_name"], c["prompt"], c["negative_prompt"], c["seed"]) == ("two", "the digit two in ink",
                                                                                "lowres", 4242)
    assert c["settings"]["sampler"]["steps"] == 25 and c["settings"]["import"]["tool"] == "ComfyUI"
    dup = rows["two/same-seed.png"]  # the run's seed column is unique: the file's own seed stays in settings
    assert dup["seed"] < 0 and dup["settings"]["import"]["seed"] == 100
    # again: nothing twice; a new file is added to the same run
    _png(src / "seven" / "new.png", color=77)
    res2 = list(import_job(proj, src, digits_teacher))[-1].data["result"]
    assert (res2["run"], res2["added"], res2["duplicates"]) == (res["run"], 1, 5)
    with Catalog(proj) as cat:
        assert cat.count() == 6


def test_import_of_jpegs_in_wordnet_id_folders_and_of_a_flat_folder(tmp_path):
    from PIL import Image

    from prism_gui.engine.data.catalog import Catalog
    from prism_gui.engine.data.folders import FolderError
    from prism_gui.engine.project.importer import import_job
    from prism_gui.engine.teachers.load import load_teacher

    ids = ["n01440764", "n02012849", "n03126707"]
    _timm_folder(tmp_path / "t", labels=ids, descriptions={"n01440764": "tench", "n02012849": "crane",
                                                           "n03126707": "crane"}, classes=3)
    teacher = load_teacher(f"local-dir:{tmp_path / 't'}")
    src = tmp_path / "val"
    for k, wnid in enumerate(ids):
        for i in range(2):
            (src / wnid).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.random.default_rng(10 * k + i).integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(
                src / wnid / f"ILSVRC_{k}_{i}.JPEG")
    res = list(import_job(tmp_path / "p", src, teacher))[-1].data["result"]
    assert res["added"] == 6 and res["classes_from"] == "folders"
    with Catalog(tmp_path / "p") as cat:
        got = sorted((cat.get(r["id"])["settings"]["import"]["file"].split("/")[0], r["class_index"], r["width"])
                     for r in cat.query())
    assert got == [(w, k, 48) for k, w in enumerate(ids) for _ in range(2)]  # the original size is kept
    # a flat folder: the teacher labels each image, and says so
    flat = tmp_path / "flat"
    for i in range(3):
        _png(flat / f"{i}.png", size=(32, 32), color=50 + i, mode="RGB")
    res = list(import_job(tmp_path / "p", flat, teacher))[-1].data["result"]
    assert res["classes_from"] == "teacher" and res["teacher_labelled"] == 3
    with Catalog(tmp_path / "p") as cat:
        rows = [cat.get(r["id"]) for r in cat.query(run=res["run"])]
    assert all(r["correct"] is None and r["settings"]["import"]["class_from"] == "teacher" for r in rows)
    assert all(r["class_index"] == r["top5"][0][0] for r in rows)
    # folders of which some name classes and some do not: refused with the fix
    (src / "holiday-photos").mkdir()
    Image.new("RGB", (8, 8)).save(src / "holiday-photos" / "x.jpg")
    with pytest.raises(FolderError, match="holiday-photos"):
        list(import_job(tmp_path / "p", src, teacher))


def test_cli_import_lists_skipped_files_and_exports_metrics(tmp_path, capsys):
    from prism_gui.cli import main

    src = tmp_path / "in"
    _png(src / "a.png", color=1)
    (src / "b.png").write_text("<html>not an image</html>")
    assert main(["import", str(tmp_path / "p"), str(src), "--teacher", "digits"]) == 0
    out = capsys.readouterr().out
    assert "imported 1 of 2 image files into run 'import-in'" in out and "skipped b.png: is not an image" in out
    assert main(["import", str(tmp_path / "p"), str(tmp_path / "nowhere")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["export-metrics", str(tmp_path / "p"), "import-in"]) == 1
    assert "logged no metrics" in capsys.readouterr().err


def test_the_app_imports_a_folder_and_exports_the_dataset_and_a_runs_metrics(qtbot, tmp_path, monkeypatch):
    import csv

    from PySide6.QtWidgets import QMessageBox

    from prism_gui.engine.data.catalog import Catalog
    from prism_gui.engine.project.project import Project
    from tests.test_app import make_window

    monkeypatch.setenv("PRISM_STUDIO_HOME", str(tmp_path / "home"))
    shown = []
    for kind in ("information", "warning"):
        monkeypatch.setattr(QMessageBox, kind, lambda *a, k=kind, **_: shown.append((k, a[1:])))
    src = tmp_path / "in"
    for i in range(3):
        _png(src / "four" / f"{i}.png", color=20 + i, parameters=(
            f"a four\nSteps: 8, Sampler: DDIM, CFG scale: 3, Seed: {i}, Size: 8x8, Model: m"))
    (src / "four" / "bad.png").write_bytes(b"")
    Project.create(tmp_path / "proj")
    win = make_window(qtbot, tmp_path, project=tmp_path / "proj")
    dialog = win.import_images(str(src))
    job = dialog.start()
    qtbot.waitUntil(lambda: job.state in ("finished", "failed"), timeout=60000)
    assert job.state == "finished", shown
    assert "3 of 4 image files imported into run 'import-in'" in dialog.summary
    assert "four/bad.png: is empty" in dialog.summary
    with Catalog(tmp_path / "proj") as cat:
        assert cat.count(run="import-in") == 3 and {r["class_name"] for r in cat.query()} == {"four"}
    ejob = win.export_dataset_job(str(tmp_path / "set"))
    qtbot.waitUntil(lambda: ejob.state in ("finished", "failed"), timeout=60000)
    assert ejob.state == "finished" and not any(k == "warning" for k, _ in shown), shown
    assert len((tmp_path / "set" / "metadata.jsonl").read_text().splitlines()) == 3
    with Catalog(tmp_path / "proj") as cat:  # a run with curves, as a distillation logs them
        cat.start_run("kd", "distill", {})
        cat.log_metrics("kd", 1, {"loss": 2.0, "lr": 0.01}, 0.1)
    out = win.export_metrics("kd", str(tmp_path / "kd.csv"))
    assert list(csv.reader(open(out)))[:2] == [["step", "epoch", "time", "loss", "lr"],
                                               ["1", "0.1", list(csv.reader(open(out)))[1][2], "2.0", "0.01"]]
