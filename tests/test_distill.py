import json

import numpy as np
import pytest
import torch

from prism_gui.engine.jobs import Cancelled, CancelToken
from prism_gui.engine.training.distill import DistillSpec, distill, kd_loss, run_distillation


def test_kd_loss_is_zero_for_identical_logits_and_positive_otherwise():
    t = torch.randn(8, 10)
    assert kd_loss(t, t, 4.0).abs() < 1e-5
    assert kd_loss(torch.zeros(8, 10), t, 4.0) > 0
    assert kd_loss(torch.zeros(8, 10), t, 4.0, alpha_ce=0.5) > 0


def test_real_data_kd_learns_and_logs(tmp_path, digits_teacher):
    spec = DistillSpec(data="digits-train", epochs=3, out_dir=str(tmp_path / "d"), export_onnx=True)
    events = list(run_distillation(spec, teacher=digits_teacher))
    res = events[-1].data["result"]
    assert res["test_accuracy"] > 0.5 and 0 <= res["agreement"] <= 1
    lines = [json.loads(x) for x in (tmp_path / "d" / "metrics.jsonl").read_text().splitlines()]
    assert any("loss" in x for x in lines) and any("test_accuracy" in x for x in lines)
    for f in ("student/model.safetensors", "student/config.json", "student/README.md", "student.onnx", "manifest.json",
              "result.json"):
        assert (tmp_path / "d" / f).exists(), f
    import onnx

    onnx.checker.check_model(str(tmp_path / "d" / "student.onnx"))


def test_training_resumes_from_a_checkpoint(tmp_path, digits_teacher):
    """Stopped mid-epoch, a run resumes at the step it was at, with the data order and the
    augmentation draws of the uninterrupted run: the final student is the same, bit for bit."""
    import safetensors.torch

    def weights(d):
        return safetensors.torch.load_file(str(d / "student" / "model.safetensors"))

    whole = DistillSpec(data="digits-train", epochs=2, out_dir=str(tmp_path / "whole"), eval="")
    events = list(run_distillation(whole, teacher=digits_teacher))
    assert events[-1].step == 34  # 2 epochs of ceil(1078 / 64) steps
    spec = DistillSpec(data="digits-train", epochs=2, out_dir=str(tmp_path / "d"), eval="")
    token = CancelToken()
    with pytest.raises(Cancelled):
        for ev in run_distillation(spec, teacher=digits_teacher, cancel=token):
            if ev.data.get("epoch", 0) > 1.2:
                token.cancel()
    events = list(run_distillation(spec, teacher=digits_teacher))
    assert events[0].step == 21  # stopped at step 21, four batches into the second epoch
    assert events[-1].step == 34
    a, b = weights(tmp_path / "whole"), weights(tmp_path / "d")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_killed_run_resumes_from_its_last_step_checkpoint(tmp_path, digits_teacher):
    """Killed (no chance to save), a run resumes from the last ``checkpoint_every`` step."""
    import safetensors.torch

    whole = DistillSpec(data="digits-train", epochs=1, out_dir=str(tmp_path / "whole"), eval="", checkpoint_every=5)
    list(run_distillation(whole, teacher=digits_teacher))
    spec = DistillSpec(data="digits-train", epochs=1, out_dir=str(tmp_path / "d"), eval="", checkpoint_every=5)
    for ev in run_distillation(spec, teacher=digits_teacher):
        if ev.step == 13:
            break  # the generator is dropped, as if the process died: no checkpoint at step 13
    events = list(run_distillation(spec, teacher=digits_teacher))
    assert events[0].step == 10 and events[-1].step == 17
    a = safetensors.torch.load_file(str(tmp_path / "whole" / "student" / "model.safetensors"))
    b = safetensors.torch.load_file(str(tmp_path / "d" / "student" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_teacher_giving_nan_stops_the_run_before_a_checkpoint_holds_nan(tmp_path):
    """A degenerate teacher in memory (a file one is refused on load): the run stops at the first
    non-finite loss with the reason, and the checkpoint on disk stays finite."""
    import safetensors.torch

    from prism_gui.engine.teachers.load import load_teacher

    teacher = load_teacher("digits")
    spec = DistillSpec(data="digits-train", epochs=1, out_dir=str(tmp_path / "d"), eval="", checkpoint_every=3)
    events = run_distillation(spec, teacher=teacher)
    for ev in events:
        if ev.step == 4:
            break
    bn = next(m for m in teacher.model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with torch.no_grad():
        bn.running_var.fill_(-1.0)  # sqrt of a negative variance: NaN outputs from here on
    with pytest.raises(ValueError, match="loss is not finite at step 5"):
        list(events)
    ck = safetensors.torch.load_file(str(tmp_path / "d" / "checkpoint" / "student.safetensors"))
    assert all(torch.isfinite(v).all() for v in ck.values())


def test_catalog_training_respects_curation_and_energy_threshold(tmp_path, digits_teacher):
    from prism_gui.engine.data.catalog import Catalog

    with Catalog(tmp_path) as cat:
        for i in range(20):
            img = np.random.default_rng(i).integers(0, 255, (8, 8, 1), dtype=np.uint8)
            cat.add_image("r", i, img, class_index=i % 10, class_name=str(i % 10), prompt="p", seed=i,
                          generator="g", settings={}, score={"energy": float(i)})
        cat.set_status([1, 2], "reject")
    res = distill(DistillSpec(project=str(tmp_path), epochs=1, energy_max=9.5, eval=""), teacher=digits_teacher)
    assert res["images"] == 8
    with pytest.raises(ValueError, match="no images to distill on"):
        distill(DistillSpec(project=str(tmp_path), epochs=1, energy_max=-1), teacher=digits_teacher)


def test_imagefolder_eval_set(tmp_path, digits_teacher):
    from PIL import Image

    from prism_gui.engine.data.folders import FolderError
    from prism_gui.engine.training.evaluate import eval_dataset

    for name in ("three", "seven"):
        (tmp_path / name).mkdir()
        Image.new("L", (16, 16), 128).save(tmp_path / name / "a.png")
    ds = eval_dataset(str(tmp_path), digits_teacher)
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    assert x.shape == (2, 1, 8, 8) and sorted(ds.labels.tolist()) == [3, 7]
    (tmp_path / "eleven").mkdir()
    with pytest.raises(FolderError, match="match no class"):
        eval_dataset(str(tmp_path), digits_teacher)


# ---- speed options (issue 10): precision, channels_last, compile
def _losses(events) -> list[float]:
    return [ev.data["loss"] for ev in events if "loss" in ev.data]


def test_speed_settings_resolve_per_device_and_refuse_what_cannot_run(monkeypatch):
    from prism_gui.engine.devices import autocast_dtype
    from prism_gui.engine.training.distill import resolve_speed

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    speed = resolve_speed(DistillSpec(), cpu)  # the defaults: plain float32 training on the CPU
    assert (speed.dtype, speed.channels_last, speed.compile, speed.precision) == (None, False, False, "fp32")
    assert resolve_speed(DistillSpec(precision="bf16", channels_last=True), cpu).dtype == torch.bfloat16
    assert autocast_dtype(cpu, "fp32") is None and autocast_dtype(torch.device("mps"), "auto") is None
    with pytest.raises(ValueError, match="fp16 needs a CUDA GPU"):
        resolve_speed(DistillSpec(precision="fp16"), cpu)
    with pytest.raises(ValueError, match="precision must be one of"):
        DistillSpec(precision="half")
    with pytest.raises(ValueError, match="channels_last must be"):
        DistillSpec(channels_last="yes")
    with pytest.raises(ValueError, match="compile must be"):
        DistillSpec(compile="inductor")
    # on CUDA (the GPU's answers faked): auto is bf16 where supported, fp16 on older GPUs; channels_last on
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    speed = resolve_speed(DistillSpec(), cuda)
    assert (speed.dtype, speed.channels_last) == (torch.bfloat16, True)
    assert resolve_speed(DistillSpec(channels_last=False, precision="fp32"), cuda).describe() == \
        {"precision": "fp32", "channels_last": False, "compile": False}
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert autocast_dtype(cuda, "auto") == torch.float16 and autocast_dtype(cuda, "fp16") == torch.float16
    with pytest.raises(ValueError, match="does not support bfloat16"):
        autocast_dtype(cuda, "bf16")


def test_compile_without_a_cpp_compiler_is_refused_clearly(monkeypatch):
    from torch._inductor import cpp_builder
    from torch._inductor.exc import InvalidCxxCompiler

    from prism_gui.engine.training.distill import resolve_speed

    def missing():
        raise InvalidCxxCompiler()

    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", missing)
    with pytest.raises(ValueError, match="C\\+\\+ compiler"):
        resolve_speed(DistillSpec(compile=True), torch.device("cpu"))


def test_default_speed_settings_train_exactly_as_plain_fp32(digits_teacher):
    kw = dict(data="digits-train", epochs=1, eval="")
    default = _losses(run_distillation(DistillSpec(**kw), teacher=digits_teacher))
    plain = _losses(run_distillation(DistillSpec(**kw, precision="fp32", channels_last=False, compile=False),
                                     teacher=digits_teacher))
    assert default == plain and len(default) == 17


def test_bf16_autocast_on_the_cpu_trains_like_fp32(digits_teacher, monkeypatch):
    import prism_gui.engine.training.loop as loop_mod

    seen = []

    def spy(s, t, T, alpha_ce=0.0):  # the logits come in bf16, the loss is computed in float32
        loss = kd_loss(s, t, T, alpha_ce)
        seen.append((s.dtype, t.dtype, loss.dtype))
        return loss

    kw = dict(data="digits-train", epochs=3, augment=False)
    ref = list(run_distillation(DistillSpec(**kw), teacher=digits_teacher))
    monkeypatch.setattr(loop_mod, "kd_loss", spy)
    bf = list(run_distillation(DistillSpec(**kw, precision="bf16"), teacher=digits_teacher))
    assert set(seen) == {(torch.bfloat16, torch.bfloat16, torch.float32)}
    lb, lr = np.array(_losses(bf)), np.array(_losses(ref))
    assert np.isfinite(lb).all() and abs(lb[-5:].mean() - lr[-5:].mean()) < 0.05 * lr[-5:].mean()
    rb, rr = bf[-1].data["result"], ref[-1].data["result"]
    assert rb["speed"]["precision"] == "bf16" and rr["speed"]["precision"] == "fp32"
    assert abs(rb["test_accuracy"] - rr["test_accuracy"]) < 0.03
    for p in bf[-1].data["student"].parameters():  # the weights themselves stay float32
        assert p.dtype == torch.float32


def test_channels_last_gives_the_same_losses_and_restores_the_teacher(tmp_path, digits_teacher):
    import safetensors.torch

    kw = dict(data="digits-train", epochs=2, eval="")
    ref = _losses(run_distillation(DistillSpec(**kw), teacher=digits_teacher))
    events = list(run_distillation(DistillSpec(**kw, channels_last=True, out_dir=str(tmp_path / "d")),
                                   teacher=digits_teacher))
    np.testing.assert_allclose(_losses(events), ref, rtol=1e-4)
    conv = digits_teacher.model.stem[0].weight  # the shared teacher is back in the standard layout
    assert conv.is_contiguous() and events[-1].data["student"].stem[0].weight.is_contiguous()
    sd = safetensors.torch.load_file(str(tmp_path / "d" / "student" / "model.safetensors"))
    assert set(sd) == set(events[-1].data["student"].state_dict())
    man = json.loads((tmp_path / "d" / "manifest.json").read_text())  # the options land in the run's manifest
    assert man["spec"]["channels_last"] is True and man["spec"]["precision"] == "auto"
    assert man["speed"] == {"precision": "fp32", "channels_last": True, "compile": False} and man["device"] == "cpu"


@pytest.fixture
def compile_backend(monkeypatch):
    """inductor where a C++ compiler exists (it does here: ~30 s for the Digits student on 2 cores);
    without one, aot_eager (traced by dynamo and AOTAutograd, no code generated)."""
    import shutil

    import prism_gui.engine.training.speed as speed_mod

    if not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
        monkeypatch.setattr(speed_mod, "COMPILE_BACKEND", "aot_eager")
    return speed_mod.COMPILE_BACKEND


def test_compiled_and_eager_runs_resume_each_other_and_save_plain_keys(tmp_path, digits_teacher, compile_backend):
    import safetensors.torch

    def interrupted(spec):
        token = CancelToken()
        with pytest.raises(Cancelled):
            for ev in run_distillation(spec, teacher=digits_teacher, cancel=token):
                if ev.data.get("epoch", 0) > 1.2:
                    token.cancel()

    kw = dict(data="digits-train", epochs=2, eval="", augment=False)
    ref = _losses(run_distillation(DistillSpec(**kw), teacher=digits_teacher))
    # an eager run stopped after one epoch, resumed compiled (and exported: ONNX from the original module)
    a = tmp_path / "a"
    interrupted(DistillSpec(**kw, out_dir=str(a), export_onnx=True))
    events = list(run_distillation(DistillSpec(**kw, out_dir=str(a), export_onnx=True, compile=True),
                                   teacher=digits_teacher))
    assert events[0].step == 21 and events[-1].step == 34  # resumed at the step it stopped at
    losses = _losses(events)
    # same weights and batches as the uninterrupted run; dropout masks differ (inductor draws its own)
    np.testing.assert_allclose(losses[0], ref[21], rtol=0.05)
    assert np.isfinite(losses).all() and events[-1].data["result"]["speed"]["compile"] is True
    for f in (a / "checkpoint" / "student.safetensors", a / "student" / "model.safetensors"):
        keys = set(safetensors.torch.load_file(str(f)))
        assert keys == set(events[-1].data["student"].state_dict()) and not any("_orig_mod" in k for k in keys)
    import onnx

    onnx.checker.check_model(str(a / "student.onnx"))
    # a compiled run stopped after one epoch, resumed eager
    b = tmp_path / "b"
    interrupted(DistillSpec(**kw, out_dir=str(b), compile=True))
    keys = set(safetensors.torch.load_file(str(b / "checkpoint" / "student.safetensors")))
    assert keys and not any("_orig_mod" in k for k in keys)
    events = list(run_distillation(DistillSpec(**kw, out_dir=str(b)), teacher=digits_teacher))
    assert events[0].step == 21 and events[-1].step == 34
    np.testing.assert_allclose(_losses(events)[0], ref[21], rtol=0.05)


def test_cli_distill_refuses_fp16_on_the_cpu(tmp_path, capsys):
    from prism_gui.cli import main

    spec = tmp_path / "d.toml"
    spec.write_text('teacher = "digits"\ndata = "digits-train"\nepochs = 1\ndevice = "cpu"\nprecision = "fp16"\n')
    assert main(["distill", str(spec)]) == 1
    assert "fp16 needs a CUDA GPU" in capsys.readouterr().err


def test_a_training_set_missing_classes_is_named_before_training():
    """Issue 28: a run interrupted after a few classes was trained on without a word."""
    import numpy as np

    from prism_gui.engine.training.distill import class_balance_warning

    names = ["zero", "one", "two", "three"]
    assert class_balance_warning(np.repeat([0, 1, 2, 3], 20), names) is None
    w = class_balance_warning(np.repeat([0, 1], 20), names)
    assert "2 of 4 classes have no image (two, three)" in w and "Generate more" in w
    w = class_balance_warning(np.array([0] * 20 + [1] * 20 + [2] * 20 + [3] * 2), names)
    assert "under a quarter of the median 20 images (three (2))" in w
