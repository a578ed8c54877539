"""Loading teachers from every source, and the errors users get when something is off."""

import json

import pytest
import safetensors.torch
import timm
import torch

from prism_gui.engine.teachers.classes import read_class_names
from prism_gui.engine.teachers.errors import TeacherLoadError
from prism_gui.engine.teachers.load import load_teacher


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("teacher")
    model = timm.create_model("test_resnet", num_classes=5)
    safetensors.torch.save_file(model.state_dict(), str(d / "tiny.safetensors"))
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, d / "tiny.pth")
    (d / "names.txt").write_text("cat\ndog\nbird\nfish\ncow\n")
    return d, model


def test_timm_architecture_plus_safetensors(tiny_ckpt):
    d, model = tiny_ckpt
    t = load_teacher("test_resnet", checkpoint=d / "tiny.safetensors", class_names=d / "names.txt")
    assert t.num_classes == 5 and t.class_names[1] == "dog"
    x = torch.rand(2, 3, 40, 40) * 2 - 1
    assert t.preprocess(x).shape[-2:] == tuple(t.input_size[1:])
    with torch.no_grad():
        torch.testing.assert_close(t.logits(x), model.eval()(t.preprocess(x)))
    assert t.features(x).shape == (2, model.num_features)


def test_pth_with_nested_state_dict_and_module_prefix(tiny_ckpt):
    d, _ = tiny_ckpt
    t = load_teacher("test_resnet", checkpoint=d / "tiny.pth")
    assert t.num_classes == 5 and t.class_names[0] == "class 0"


def test_wrong_architecture_names_the_file_and_the_fix(tiny_ckpt):
    d, _ = tiny_ckpt
    with pytest.raises(TeacherLoadError, match=r"does not match architecture 'test_efficientnet'.*Pick the"):
        load_teacher("test_efficientnet", checkpoint=d / "tiny.safetensors")


def test_truncated_checkpoint_is_a_clear_error(tiny_ckpt, tmp_path):
    d, _ = tiny_ckpt
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes((d / "tiny.safetensors").read_bytes()[:200])
    with pytest.raises(TeacherLoadError, match=r"cut.safetensors.*truncated"):
        load_teacher("test_resnet", checkpoint=bad)


def test_class_count_mismatch(tiny_ckpt, tmp_path):
    d, _ = tiny_ckpt
    names = tmp_path / "n.txt"
    names.write_text("a\nb\n")
    with pytest.raises(TeacherLoadError, match="5 outputs but 2 class names"):
        load_teacher("test_resnet", checkpoint=d / "tiny.safetensors", class_names=names)


def test_unknown_architecture_and_missing_file():
    with pytest.raises(TeacherLoadError, match="not a timm architecture"):
        load_teacher("resnet_does_not_exist")
    with pytest.raises(TeacherLoadError, match="does not exist"):
        load_teacher("/no/such/teacher.torchscript")


def test_uncached_pretrained_timm_model_is_refused_offline():
    with pytest.raises(TeacherLoadError, match="not in the local Hugging Face cache"):
        load_teacher("test_resnet.r160_in1k")


def test_torchscript_teacher_with_sidecar_card(tiny_ckpt, tmp_path):
    _, model = tiny_ckpt
    path = tmp_path / "m.torchscript"
    torch.jit.save(torch.jit.trace(model.eval(), torch.zeros(1, 3, 32, 32)), str(path))
    path.with_suffix(".json").write_text(json.dumps({"input_size": [3, 32, 32], "class_names": list("abcde")}))
    t = load_teacher(path)
    assert t.architecture == "torchscript" and t.class_names == list("abcde") and t.input_size == (3, 32, 32)
    with pytest.raises(TeacherLoadError, match="no penultimate features"):
        t.features(torch.zeros(1, 3, 32, 32))


def test_class_name_files(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"0": "crane", "1": "kite"}))
    assert read_class_names(tmp_path / "a.json")[0] == ["crane", "kite"]
    (tmp_path / "b.json").write_text(json.dumps({"class_names": ["x", "y"], "class_descriptions": ["X", "Y"]}))
    assert read_class_names(tmp_path / "b.json") == (["x", "y"], ["X", "Y"])
    (tmp_path / "c.txt").write_text("a\na\n")
    with pytest.raises(TeacherLoadError, match="repeats names: a"):
        read_class_names(tmp_path / "c.txt")
    (tmp_path / "d.json").write_text("{not json")
    with pytest.raises(TeacherLoadError, match="not valid JSON"):
        read_class_names(tmp_path / "d.json")


def test_imagenet_heads_get_wordnet_names():
    from prism_gui.engine.teachers.classes import imagenet_class_names

    names, desc = imagenet_class_names()
    assert names[134] == "crane" and "bird" in desc[134]
    assert names[517] == "crane" and "lifts" in desc[517]
