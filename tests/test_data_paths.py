"""Real-world data paths: teacher descriptions, files by content, labelled folders by WordNet id,
streaming datasets with the teacher's own eval transform, and chunked P/R/D/C."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from prism_gui.engine.analysis.prdc import prdc
from prism_gui.engine.data.datasets import CatalogImages, EpochBatches, FolderImages, eval_transform, make_loader
from prism_gui.engine.data.folders import FolderError, folder_items, label_folders
from prism_gui.engine.teachers.errors import TeacherLoadError
from prism_gui.engine.teachers.load import load_teacher
from prism_gui.engine.teachers.spec import TeacherSpec, TeacherSpecError
from prism_gui.engine.weights import sniff_model_file


# ----------------------------------------------------------------------------- teacher description
def test_teacher_spec_flat_keys_table_and_plain_string():
    s = {"teacher": "resnet18", "checkpoint": "m.pth", "mean": [0.5, 0.5, 0.5], "images_per_class": 3}
    t = TeacherSpec.take(s, "gen.toml")
    assert t.source == "resnet18" and t.checkpoint == "m.pth" and t.mean == (0.5, 0.5, 0.5)
    assert s == {"images_per_class": 3}  # the teacher's keys were taken out
    assert TeacherSpec.from_value(t.to_value()) == t
    assert TeacherSpec.take({"teacher": {"source": "resnet18", "checkpoint": "m.pth"}}).checkpoint == "m.pth"
    assert TeacherSpec.from_value("digits").to_value() == "digits"  # older specs compare equal
    with pytest.raises(TeacherSpecError, match="given both"):
        TeacherSpec.take({"teacher": {"source": "x", "checkpoint": "a"}, "checkpoint": "b"})
    with pytest.raises(TeacherSpecError, match="unknown teacher settings"):
        TeacherSpec.from_value({"source": "x", "chekpoint": "a"})
    with pytest.raises(TeacherSpecError, match="crop_pct"):
        TeacherSpec("resnet18", crop_pct=1.5)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    import safetensors.torch
    import timm

    d = tmp_path_factory.mktemp("ck")
    torch.manual_seed(0)
    m = timm.create_model("test_resnet", num_classes=7).eval()
    safetensors.torch.save_file(m.state_dict(), str(d / "w.safetensors"))
    torch.save(m.state_dict(), d / "w.pth")
    torch.save(m.state_dict(), d / "w.pt")
    torch.jit.save(torch.jit.trace(m, torch.zeros(1, 3, 32, 32)), str(d / "ts.pth"))
    (d / "junk.pth").write_bytes(b"not a model at all")
    return d


def test_file_kind_is_decided_by_content_not_suffix(ckpts):
    assert sniff_model_file(ckpts / "w.safetensors") == "safetensors"
    assert sniff_model_file(ckpts / "w.pth") == "state_dict"
    assert sniff_model_file(ckpts / "ts.pth") == "torchscript"
    assert sniff_model_file(ckpts / "junk.pth") == "unknown"
    t = load_teacher(str(ckpts / "ts.pth"), input_size=(3, 32, 32))  # a TorchScript archive named .pth
    assert t.architecture == "torchscript" and t.num_classes == 7
    for f in ("w.pth", "w.pt", "w.safetensors"):
        assert load_teacher("test_resnet", checkpoint=ckpts / f).num_classes == 7


def test_state_dict_given_as_the_teacher_names_the_fix(ckpts):
    with pytest.raises(TeacherLoadError, match=r"state-dict checkpoint.*architecture"):
        load_teacher(str(ckpts / "w.safetensors"))
    with pytest.raises(TeacherLoadError, match="TorchScript archive, not a state dict"):
        load_teacher("test_resnet", checkpoint=ckpts / "ts.pth")
    with pytest.raises(TeacherLoadError, match="neither TorchScript nor a state dict"):
        load_teacher(str(ckpts / "junk.pth"))
    with pytest.raises(TeacherLoadError, match="does not exist"):
        load_teacher(str(ckpts / "missing.safetensors"))


def test_thousand_class_teacher_gets_wordnet_ids_and_overrides(ckpts, tmp_path):
    import safetensors.torch
    import timm

    m = timm.create_model("test_resnet", num_classes=1000)
    safetensors.torch.save_file(m.state_dict(), str(tmp_path / "in1k.safetensors"))
    t = TeacherSpec("test_resnet", checkpoint=str(tmp_path / "in1k.safetensors"), crop_pct=0.9,
                    interpolation="bicubic").load()
    assert t.class_ids[0] == "n01440764" and t.class_names[134] == t.class_names[517] == "crane"
    assert t.class_ids[134] == "n02012849" and t.class_ids[517] == "n03126707"
    assert t.crop_pct == 0.9 and t.interpolation == "bicubic"


# ----------------------------------------------------------------------------- labelled folders
NAMES = ["tench", "crane", "crane", "goldfish"]
IDS = ["n01440764", "n02012849", "n03126707", "n01443537"]


def _img(path, size=(40, 30), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, 90 if mode == "L" else (200, 30, 30)).save(path)


def test_folders_by_wordnet_id_keep_the_two_cranes_apart(tmp_path):
    for wnid in ("n02012849", "n03126707", "n01440764"):
        _img(tmp_path / wnid / "a.jpg")
    assert label_folders(tmp_path, NAMES, IDS) == {"n01440764": 0, "n02012849": 1, "n03126707": 2}


def test_ambiguous_or_unknown_folder_names_are_refused_with_the_fix(tmp_path):
    _img(tmp_path / "crane" / "a.jpg")
    _img(tmp_path / "tench" / "a.jpg")
    with pytest.raises(FolderError, match=r"'crane' is a name that classes \[1, 2\] share.*n02012849, n03126707"):
        label_folders(tmp_path, NAMES, IDS)
    (tmp_path / "map.json").write_text(json.dumps({"crane": 2, "tench": "tench"}))
    assert label_folders(tmp_path, NAMES, IDS, tmp_path / "map.json") == {"crane": 2, "tench": 0}
    (tmp_path / "map.csv").write_text("folder,class\ncrane,1\ntench,0\n")
    assert label_folders(tmp_path, NAMES, IDS, tmp_path / "map.csv") == {"crane": 1, "tench": 0}
    (tmp_path / "bad.json").write_text(json.dumps({"crane": "crane", "tench": 0}))
    with pytest.raises(FolderError, match="names classes"):
        label_folders(tmp_path, NAMES, IDS, tmp_path / "bad.json")
    _img(tmp_path / "zebra" / "a.jpg")
    (tmp_path / "crane").rename(tmp_path / "n02012849")
    with pytest.raises(FolderError, match=r"match no class.*zebra"):
        label_folders(tmp_path, NAMES, IDS)


def test_folder_images_use_the_teachers_eval_transform_on_mixed_sizes_and_modes(tmp_path):
    from types import SimpleNamespace

    _img(tmp_path / "n01440764" / "wide.jpg", (90, 30))
    _img(tmp_path / "n01440764" / "gray.png", (20, 50), "L")
    _img(tmp_path / "n01443537" / "rgba.png", (33, 33), "RGBA")
    Image.new("CMYK", (40, 40)).save(tmp_path / "n01443537" / "cmyk.jpg")
    (tmp_path / "n01443537" / "notes.txt").write_text("not an image")
    t = SimpleNamespace(input_size=(3, 24, 24), crop_pct=0.875, interpolation="bicubic", class_names=NAMES,
                        class_ids=IDS)
    ds = FolderImages(folder_items(tmp_path, NAMES, IDS), eval_transform(t), 3)
    assert len(ds) == 4 and sorted(ds.labels.tolist()) == [0, 0, 3, 3]
    for i in range(len(ds)):
        x, _ = ds[i]
        assert x.shape == (3, 24, 24) and x.min() >= -1 and x.max() <= 1
    # the timm eval transform: short side to 24 / 0.875 = 27, then a center crop (not a squash)
    x, _ = ds[[f.name for f in ds.files].index("wide.jpg")]
    assert torch.allclose(x[0], torch.full((24, 24), 200 / 127.5 - 1), atol=0.03)


def test_catalog_images_stream_resize_and_cache_within_a_cap(tmp_path):
    rows = []
    for i in range(6):
        Image.fromarray(np.full((16, 16, 3), 20 * i, np.uint8)).save(tmp_path / f"{i}.png")
        rows.append({"id": i, "path": f"{i}.png", "class_index": i % 2})
    small = CatalogImages(tmp_path, rows, size=(8, 8))
    assert small._cache is not None
    streamed = CatalogImages(tmp_path, rows, size=(8, 8), cache_mb=0.001)  # over the cap: read per item
    assert streamed._cache is None
    for i in range(6):
        a, b = small[i], streamed[i]
        assert a[0].shape == (3, 8, 8) and torch.equal(a[0], b[0]) and a[1] == b[1] == i % 2
        assert a[0].mean().item() == pytest.approx(20 * i / 127.5 - 1, abs=1e-5)


def test_epoch_batches_follow_the_generator_whatever_the_workers():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    b = EpochBatches(10, 4, g1)
    first, second = list(b), list(b)
    assert [len(x) for x in first] == [4, 4, 2] and sorted(i for b in first for i in b) == list(range(10))
    assert first != second  # a new order each epoch
    assert torch.randperm(10, generator=g2).tolist() == [i for b in first for i in b]
    from prism_gui.engine.data.datasets import TensorImages

    ds = TensorImages(torch.arange(10.0).view(10, 1, 1, 1), list(range(10)))
    got = [yb.tolist() for _, yb in make_loader(ds, 4, generator=torch.Generator().manual_seed(3), shuffle=True,
                                                workers=2)]
    assert got == first


# ----------------------------------------------------------------------------- chunked P/R/D/C
def _dense_prdc(real, fake, k):
    """The pre-chunking implementation: full float64 distance matrices."""
    real, fake = torch.as_tensor(real, dtype=torch.float64), torch.as_tensor(fake, dtype=torch.float64)
    r_real = torch.cdist(real, real).kthvalue(k + 1, dim=1).values
    r_fake = torch.cdist(fake, fake).kthvalue(k + 1, dim=1).values
    d = torch.cdist(real, fake)
    inside = d <= r_real[:, None]
    return {"precision": float(inside.any(0).double().mean()),
            "recall": float((d <= r_fake[None, :]).any(1).double().mean()),
            "density": float(inside.double().sum(0).mean() / k), "coverage": float(inside.any(1).double().mean())}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chunked_prdc_equals_the_dense_one_and_the_prdc_package(seed):
    import prdc as prdc_pkg

    rng = np.random.default_rng(seed)
    real = rng.normal(size=(300, 16))
    fake = rng.normal(size=(240, 16)) * 1.2 + 0.3
    dense = _dense_prdc(real, fake, 5)
    tiny_chunks = prdc(real, fake, 5, chunk_mb=0.01, dtype=torch.float64)  # a few rows per block
    assert tiny_chunks == pytest.approx(dense, abs=1e-12)
    f32 = prdc(real, fake, 5)  # the default: float32 blocks
    for key in dense:  # float32 may flip a boundary point: at most one point's worth
        assert abs(f32[key] - dense[key]) <= 1.0 / 240 + 1e-9
    ref = prdc_pkg.compute_prdc(real.astype(np.float32), fake.astype(np.float32), 5)
    for key in dense:
        assert f32[key] == pytest.approx(float(ref[key]), abs=1.0 / 240 + 1e-9)


def test_prdc_subsamples_a_large_reference_with_a_stated_seed():
    rng = np.random.default_rng(4)
    real, fake = rng.normal(size=(500, 8)), rng.normal(size=(100, 8))
    a = prdc(real, fake, 5, max_real=200, seed=7)
    b = prdc(real, fake, 5, max_real=200, seed=7)
    assert a == b and a["real_subsample"] == {"used": 200, "of": 500, "seed": 7}
