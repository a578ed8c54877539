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
    for f in ("student.safetensors", "student.onnx", "student.json", "manifest.json", "result.json"):
        assert (tmp_path / "d" / f).exists(), f
    import onnx

    onnx.checker.check_model(str(tmp_path / "d" / "student.onnx"))


def test_training_resumes_from_a_checkpoint(tmp_path, digits_teacher):
    spec = DistillSpec(data="digits-train", epochs=2, out_dir=str(tmp_path / "d"), eval="")
    token = CancelToken()
    with pytest.raises(Cancelled):
        for ev in run_distillation(spec, teacher=digits_teacher, cancel=token):
            if ev.data.get("epoch", 0) > 1.2:
                token.cancel()
    events = list(run_distillation(spec, teacher=digits_teacher))
    assert events[0].step == 17  # one epoch of 1078/64 steps done before the cancel
    assert events[-1].step == 34


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
