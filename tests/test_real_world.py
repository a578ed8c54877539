"""Dress rehearsal of the real-world job through the CLI, with stand-ins of the real shapes.

A tiny random Stable Diffusion folder (VAE, CLIP's real BPE tokenizer with its 77-token limit),
a random 1,000-class timm teacher saved as ``.safetensors`` and as ``.pth``, ImageNet's class
names and WordNet glosses from timm, and an ImageNet-val-style folder (WordNet-id subfolders,
JPEGs of mixed sizes and modes, both "crane" classes).  The chain: prompts, generate, distill
(timm student, the val folder as evaluation set), evaluate (teacher and student), metrics, export.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

CRANE_BIRD, CRANE_MACHINE = 134, 517
VAL_CLASSES = {0: "n01440764", 1: "n01443537", CRANE_BIRD: "n02012849", CRANE_MACHINE: "n03126707"}


def _cli(root, *args, timeout=600):
    r = subprocess.run([sys.executable, "-m", "prism_gui.cli", *args], cwd=root, capture_output=True, text=True,
                       timeout=timeout, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, f"prism {' '.join(args)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    import safetensors.torch
    import timm

    from tests.tiny_sd import build_tiny_sd

    d = tmp_path_factory.mktemp("real")
    sd = build_tiny_sd(d / "sd", real_tokenizer=True)
    torch.manual_seed(0)
    teacher = timm.create_model("test_resnet", num_classes=1000).eval()
    with torch.no_grad():  # a rigged teacher: it always answers "crane, the machine" (517)
        teacher.get_classifier().weight.zero_()
        teacher.get_classifier().bias.zero_()
        teacher.get_classifier().bias[CRANE_MACHINE] = 5.0
        teacher.get_classifier().bias[CRANE_BIRD] = 4.0
    safetensors.torch.save_file(teacher.state_dict(), str(d / "teacher.safetensors"))
    torch.save({"state_dict": teacher.state_dict()}, d / "teacher.pth")
    val = d / "val"
    rng = np.random.default_rng(0)
    counts = {0: 2, 1: 1, CRANE_BIRD: 3, CRANE_MACHINE: 2}
    for k, wnid in VAL_CLASSES.items():
        (val / wnid).mkdir(parents=True)
        for j in range(counts[k]):
            size = (int(rng.integers(40, 120)), int(rng.integers(40, 120)))
            mode = ["RGB", "L", "CMYK"][j % 3]
            arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(arr).convert(mode).save(val / wnid / f"ILSVRC2012_val_{k:04d}{j}.JPEG", "JPEG")
    return {"dir": d, "sd": sd, "val": val, "counts": counts}


def _spec(path, **kv):
    path = path.with_suffix(".json")
    path.write_text(json.dumps(kv, indent=1))
    return str(path)


@pytest.mark.long  # 2 min here: the app-panel test below runs the same job in the default suite
def test_the_imagenet_shaped_job_runs_end_to_end_through_the_cli(world, root):
    d = world["dir"]
    ck = str(d / "teacher.safetensors")
    teacher = {"teacher": "test_resnet", "checkpoint": ck}
    # prompts for 1,000 classes, disambiguated by WordNet definitions
    _cli(root, "prompts", _spec(d / "prompts-spec.toml", **teacher, bank="natural", per_class=2,
                                output=str(d / "prompts.json")))
    ps = json.loads((d / "prompts.json").read_text())
    texts = [p["text"] for p in ps["prompts"]]
    assert len(ps["class_names"]) == 1000 and len(texts) == 2000
    bird = [t for p, t in zip(ps["prompts"], texts, strict=True) if p["class_index"] == CRANE_BIRD]
    machine = [t for p, t in zip(ps["prompts"], texts, strict=True) if p["class_index"] == CRANE_MACHINE]
    assert any("bird" in t for t in bird) and not any("bird" in t for t in machine)
    # generation with the checkpoint teacher (flat keys) and energy guidance
    _cli(root, "generate", _spec(d / "gen.toml", **teacher, project=str(d / "proj"), prompts=str(d / "prompts.json"),
                                 generator=str(world["sd"]), images_per_class=1, batch_size=250,
                                 sampler={"steps": 2, "cfg": 2.0, "scheduler": "euler"},
                                 guidance={"scale": 0.2, "energy": {"weights": {"class": 1.0}}}))
    from prism_gui.engine.data.catalog import Catalog

    with Catalog(d / "proj", create=False) as cat:
        assert cat.count() == 1000
        run = cat.run_spec("run")
        assert run["teacher"] == {"source": "test_resnet", "checkpoint": ck}
    # the teacher on ImageNet's val folder: labels by WordNet id, the two cranes kept apart
    out = json.loads(_cli(root, "evaluate", _spec(d / "ev.toml", **teacher, eval=str(world["val"]),
                                                  per_class=True)))
    n = sum(world["counts"].values())
    assert out["evaluated"] == "teacher" and out["eval_images"] == n
    assert out["test_accuracy"] == pytest.approx(world["counts"][CRANE_MACHINE] / n)  # not 5/8: bird cranes are 134
    per = {r["id"]: (r["class"], r["accuracy"], r["images"]) for r in out["per_class"]}
    assert per == {"n01440764": (0, 0.0, 2), "n01443537": (1, 0.0, 1), "n02012849": (CRANE_BIRD, 0.0, 3),
                   "n03126707": (CRANE_MACHINE, 1.0, 2)}
    # the same teacher from a .pth state dict (not taken for TorchScript)
    out_pth = json.loads(_cli(root, "evaluate", _spec(d / "ev2.toml", teacher="test_resnet",
                                                      checkpoint=str(d / "teacher.pth"), eval=str(world["val"]))))
    assert out_pth["test_accuracy"] == out["test_accuracy"]
    # distillation of a timm student on the catalog, evaluated on the val folder each epoch
    _cli(root, "distill", _spec(d / "di.toml", teacher={"source": "test_resnet", "checkpoint": ck},
                                project=str(d / "proj"), student="test_resnet", epochs=1, batch_size=200,
                                eval=str(world["val"]), out_dir=str(d / "student"), workers=0))
    res = json.loads((d / "student" / "result.json").read_text())
    assert res["images"] == 1000 and "test_accuracy" in res
    ev = json.loads(_cli(root, "evaluate", _spec(d / "ev3.toml", **teacher, eval=str(world["val"]),
                                                 student_dir=str(d / "student"))))
    assert ev["evaluated"] == "student" and ev["test_accuracy"] == pytest.approx(res["test_accuracy"])
    assert ev["teacher_accuracy"] == out["test_accuracy"]
    # precision/recall against the val folder, and the export
    m = json.loads(_cli(root, "metrics", _spec(d / "me.toml", **teacher, project=str(d / "proj"),
                                               reference=str(world["val"]), k=3)))
    assert set(m) == {"run"} and m["run"]["reference_images"] == n and m["run"]["images"] == 1000
    assert 0 <= m["run"]["precision"] <= 1 and 0 <= m["run"]["coverage"] <= 1
    _cli(root, "export", str(d / "proj"), str(d / "export"))
    assert len(list((d / "export").rglob("*.png"))) == 1000


def test_engine_labels_match_an_independent_reading_of_the_val_folder(world):
    """The evaluation set the engine builds: every file, its WordNet-id label, the timm transform."""
    import timm
    from timm.data import create_transform, resolve_model_data_config

    from prism_gui.engine.teachers.spec import TeacherSpec
    from prism_gui.engine.training.evaluate import eval_dataset

    t = TeacherSpec("test_resnet", checkpoint=str(world["dir"] / "teacher.safetensors")).load()
    ds = eval_dataset(str(world["val"]), t)
    wn = {v: k for k, v in VAL_CLASSES.items()}
    assert [int(y) for y in ds.labels] == [wn[f.parent.name] for f in ds.files]
    model = timm.create_model("test_resnet", num_classes=1000)
    cfg = resolve_model_data_config(model)
    tf = create_transform(**cfg, is_training=False)
    for i in (0, len(ds) - 1):
        ours = t.preprocess(ds[i][0][None])[0]
        theirs = tf(Image.open(ds.files[i]).convert("RGB"))
        torch.testing.assert_close(ours, theirs, atol=2e-6, rtol=0)


def test_the_imagenet_shaped_job_runs_through_the_apps_panels(qtbot, world, tmp_path):
    """Teacher from a checkpoint, prompts for 1,000 classes, generation with the tiny Stable
    Diffusion, curation by class, distillation evaluated on the val folder, the report."""
    from prism_gui.engine.project.project import Project
    from prism_gui.engine.training.evaluate import eval_dataset, evaluate
    from prism_gui.ui.common import make_studio
    from prism_gui.ui.curate_panel import CuratePanel
    from prism_gui.ui.distill_panel import DistillPanel
    from prism_gui.ui.gallery import RowRole
    from prism_gui.ui.generate_panel import GeneratePanel
    from prism_gui.ui.prompts_panel import PromptsPanel
    from prism_gui.ui.report_panel import ReportPanel
    from prism_gui.ui.teacher_panel import TeacherPanel

    studio = make_studio()
    studio.warm_up(wait=True)
    panels = [cls(studio) for cls in (TeacherPanel, PromptsPanel, GeneratePanel, CuratePanel, DistillPanel,
                                      ReportPanel)]
    teacher_p, prompts_p, gen_p, curate_p, distill_p, report_p = panels
    for p in panels:
        qtbot.addWidget(p)
    studio.set_project(Project.create(tmp_path / "proj"))

    def run(job, timeout=300000):
        assert job is not None
        qtbot.waitUntil(lambda: job.state in ("finished", "failed"), timeout=timeout)
        assert job.state == "finished", getattr(job, "error", None) or [p.error.text() for p in panels
                                                                         if hasattr(p, "error")]

    # the teacher: a timm architecture plus its checkpoint, dropped on the panel
    assert teacher_p.accept_file(str(world["dir"] / "teacher.safetensors"))
    teacher_p.arch.setText("test_resnet")
    run(teacher_p.load())
    assert studio.teacher.num_classes == 1000 and studio.class_names()[CRANE_MACHINE] == "crane"
    assert studio.project.teacher_value() == {"source": "test_resnet",
                                              "checkpoint": str(world["dir"] / "teacher.safetensors")}
    assert studio.project.evaluation() == ("", None)  # the Digits split was dropped with the Digits teacher
    # prompts for 1,000 classes
    prompts_p.bank_combo.setCurrentText("natural")
    prompts_p.disamb.setCurrentText("definition")
    prompts_p.per_class.setValue(1)
    run(prompts_p.expand())
    assert len(studio.prompts.prompts) == 1000
    # generation with the Stable Diffusion stand-in
    gen_p.generator.setCurrentText(str(world["sd"]))
    gen_p.scheduler.setCurrentText("euler")
    gen_p.prompt_source.setCurrentIndex(0)
    gen_p.per_class.setValue(1)
    gen_p.steps.setValue(2)
    gen_p.batch.setValue(250)
    run(gen_p.start())
    with studio.project.catalog() as cat:
        assert cat.count() == 1000
    # curation: one class of the two cranes
    curate_p.refresh()
    curate_p.klass.setCurrentIndex(CRANE_MACHINE + 1)
    curate_p.apply_filters()
    assert curate_p.model.rowCount() == 1
    assert curate_p.model.data(curate_p.model.index(0), RowRole)["class_index"] == CRANE_MACHINE
    # distillation, evaluated on the val folder
    distill_p.eval_set.set_value(str(world["val"]))
    distill_p.eval_set._changed()
    distill_p.student_name.setCurrentText("test_resnet")
    distill_p.epochs.setValue(1)
    distill_p.batch.setValue(200)
    run(distill_p.start())
    qtbot.waitUntil(lambda: distill_p.student is not None, timeout=10000)
    run_dir = next((tmp_path / "proj" / "runs").glob("distill-*"))
    res = json.loads((run_dir / "result.json").read_text())
    check = evaluate(distill_p.student, studio.teacher, eval_dataset(str(world["val"]), studio.teacher))
    assert res["test_accuracy"] == check["test_accuracy"]
    assert res["teacher_accuracy"] == pytest.approx(world["counts"][CRANE_MACHINE] / sum(world["counts"].values()))
    # the report: 1,000 classes in a table, a sample in the grid
    run(report_p.build())
    qtbot.waitUntil(lambda: report_p.report is not None, timeout=10000)
    assert any(t[0] == "Per class" and len(t[2]) == 1000 for t in report_p.report.tables)
    assert "val" in report_p.report.to_html()
