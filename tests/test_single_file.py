"""Single-file Stable Diffusion checkpoints (A1111/Civitai layout) load offline with the shipped configs."""

from __future__ import annotations

import ast
import json
import shutil
import socket
import struct
from pathlib import Path

import pytest
import torch

from prism_gui.engine.generation.load import GeneratorLoadError
from prism_gui.engine.generation.single_file import (
    FAMILIES,
    _complete_config,
    check_architecture,
    configs_root,
    detect_family,
    load_single_file,
    read_header,
    shipped_config,
)
from tests import ldm_layout

UNET, VAE = "model.diffusion_model.", "first_stage_model."

# published parameter counts (unet, vae, text_encoder[, text_encoder_2])
PARAMS = {
    "sd15": (859_520_964, 83_653_863, 123_060_480),
    "sd2": (865_910_724, 83_653_863, 340_387_840),
    "sd2-base": (865_910_724, 83_653_863, 340_387_840),
    "sdxl": (2_567_463_684, 83_653_863, 123_060_480, 694_659_840),
}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No network at all: HF_HUB_OFFLINE, and any socket connection fails the test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# --------------------------------------------------------------------------------------------
# the shipped configs


@pytest.mark.parametrize("family", list(FAMILIES))
def test_shipped_configs_build_the_published_architectures(family):
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cfg = shipped_config(family)
    assert not list(cfg.rglob("*.safetensors")) and not list(cfg.rglob("*.bin")), "configs only, no weights"
    with init_empty_weights():
        models = [UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(cfg / "unet")),
                  AutoencoderKL.from_config(AutoencoderKL.load_config(cfg / "vae")),
                  CLIPTextModel(CLIPTextConfig.from_pretrained(cfg / "text_encoder"))]
        if family == "sdxl":
            models.append(CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(cfg / "text_encoder_2")))
    assert all(next(m.parameters()).device.type == "meta" for m in models)
    assert tuple(sum(p.numel() for p in m.parameters()) for m in models) == PARAMS[family]


@pytest.mark.parametrize(("family", "resolution", "prediction", "scheduler"), [
    ("sd15", 512, "epsilon", "PNDMScheduler"),
    ("sd2", 768, "v_prediction", "DDIMScheduler"),
    ("sd2-base", 512, "epsilon", "PNDMScheduler"),
    ("sdxl", 1024, "epsilon", "EulerDiscreteScheduler"),
])
def test_shipped_configs_say_resolution_and_prediction(family, resolution, prediction, scheduler):
    cfg = shipped_config(family)
    unet = json.loads((cfg / "unet" / "config.json").read_text())
    vae = json.loads((cfg / "vae" / "config.json").read_text())
    sched = json.loads((cfg / "scheduler" / "scheduler_config.json").read_text())
    assert unet["sample_size"] * 2 ** (len(vae["block_out_channels"]) - 1) == resolution
    assert (sched["prediction_type"], sched["_class_name"]) == (prediction, scheduler)
    index = json.loads((cfg / "model_index.json").read_text())
    assert index["_class_name"] == FAMILIES[family].pipeline
    if family == "sdxl":
        assert vae["force_upcast"] and unet["addition_embed_type"] == "text_time"
        assert index["text_encoder_2"] == ["transformers", "CLIPTextModelWithProjection"]
    if family.startswith("sd2"):
        te = json.loads((cfg / "text_encoder" / "config.json").read_text())
        assert (te["hidden_size"], te["num_hidden_layers"], te["hidden_act"]) == (1024, 23, "gelu")
        assert unet["attention_head_dim"] == [5, 10, 20, 20] and unet["use_linear_projection"]
        assert unet["cross_attention_dim"] == 1024


def test_one_shared_vocabulary_is_shipped():
    root = configs_root()
    assert sorted(p.name for p in root.rglob("vocab.json")) == ["vocab.json"]
    assert sorted(p.name for p in root.rglob("merges.txt")) == ["merges.txt"]


@pytest.mark.parametrize(("family", "tokenizer", "pad"), [
    ("sd15", "tokenizer", "<|endoftext|>"), ("sd2", "tokenizer", "!"), ("sd2-base", "tokenizer", "!"),
    ("sdxl", "tokenizer", "<|endoftext|>"), ("sdxl", "tokenizer_2", "!"),
])
def test_shipped_tokenizers_tokenize_like_clip(family, tokenizer, pad):
    from transformers import CLIPTokenizer

    cfg = shipped_config(family)
    with _complete_config(cfg, json.loads((cfg / "model_index.json").read_text())) as full:
        assert full != cfg  # the vocabulary is added to a temporary copy
        tok = CLIPTokenizer.from_pretrained(full / tokenizer, local_files_only=True)
    assert not (cfg / tokenizer / "vocab.json").exists()
    assert (len(tok), tok.model_max_length, tok.pad_token) == (49408, 77, pad)
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    ids = tok("a photo of a cat", padding="max_length", max_length=tok.model_max_length).input_ids
    assert len(ids) == 77 and ids[7:] == [tok.pad_token_id] * 70
    assert len(tok("word " * 200, truncation=True, max_length=tok.model_max_length).input_ids) == 77

    open_clip = pytest.importorskip("open_clip")
    reference = open_clip.tokenizer.SimpleTokenizer()
    for text in ("A photograph of an astronaut riding a horse, 4k", "tench, Tinca tinca; oil painting",
                 "naïve café, 1990s street photo (blurry)"):
        assert tok(text).input_ids == [49406, *reference.encode(text), 49407], text


# --------------------------------------------------------------------------------------------
# end to end: a one-file checkpoint in the original layout loads with no network


def _text_config(act: str, hidden: int = 16, layers: int = 2):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(vocab_size=49408, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                          num_attention_heads=2, max_position_embeddings=77, projection_dim=hidden, hidden_act=act,
                          bos_token_id=0, eos_token_id=2, pad_token_id=1)


def build_tiny(family: str, folder: Path) -> tuple[Path, Path, dict]:
    """A tiny random model of ``family``'s layout: its single-file checkpoint (original keys), a
    config folder for it (the shipped one with tiny unet/vae/text-encoder configs; the tokenizers
    without vocabulary, as shipped) and the diffusers models whose weights the file holds."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    cfg = folder / f"tiny-{family}-config"
    shutil.copytree(shipped_config(family), cfg)
    vae = AutoencoderKL(block_out_channels=(8, 16), down_block_types=["DownEncoderBlock2D"] * 2,
                        up_block_types=["UpDecoderBlock2D"] * 2, latent_channels=4, norm_num_groups=4,
                        sample_size=16)
    if family == "sdxl":
        # two text encoders of different widths (as SDXL's 768 and 1280): diffusers tells them apart by width
        unet = UNet2DConditionModel(
            block_out_channels=(8, 16), layers_per_block=1, sample_size=8, norm_num_groups=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4), use_linear_projection=True,
            transformer_layers_per_block=(1, 2), addition_embed_type="text_time", addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=6 * 8 + 24, cross_attention_dim=16 + 24)
        text = {"text_encoder": CLIPTextModel(_text_config("quick_gelu")),
                "text_encoder_2": CLIPTextModelWithProjection(_text_config("gelu", hidden=24))}
        ldm = {**ldm_layout.clip_to_ldm(text["text_encoder"], "conditioner.embedders.0.transformer."),
               **ldm_layout.open_clip_to_ldm(text["text_encoder_2"], "conditioner.embedders.1.model.")}
    else:
        sd2 = family.startswith("sd2")
        unet = UNet2DConditionModel(
            block_out_channels=(8, 16), layers_per_block=2, sample_size=8, norm_num_groups=4,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), attention_head_dim=(2, 4) if sd2 else 4,
            use_linear_projection=sd2, cross_attention_dim=16)
        if sd2:
            # SD 2.x files hold all 24 OpenCLIP layers; the diffusers text encoder keeps 23 (the penultimate
            # output): here the file holds 3 layers, the model 2
            full = CLIPTextModel(_text_config("gelu", layers=3))
            ldm = ldm_layout.open_clip_to_ldm(full)
            te = CLIPTextModel(_text_config("gelu"))
            te.load_state_dict(full.state_dict(), strict=False)
        else:
            te = CLIPTextModel(_text_config("quick_gelu"))
            ldm = ldm_layout.clip_to_ldm(te)
        text = {"text_encoder": te}
    unet.save_config(cfg / "unet")
    vae.save_config(cfg / "vae")
    for name, model in text.items():
        model.config.save_pretrained(cfg / name)
    ldm.update(ldm_layout.unet_to_ldm(unet))
    ldm.update(ldm_layout.vae_to_ldm(vae))
    path = folder / f"tiny-{family}.safetensors"
    save_file({k: v.contiguous() for k, v in ldm.items()}, str(path))
    return path, cfg, {"unet": unet, "vae": vae, **text}


def assert_same_weights(expected: dict, components: dict) -> None:
    for name, model in expected.items():
        want, got = model.state_dict(), components[name].state_dict()
        assert want.keys() == got.keys(), name
        different = [k for k in want if not torch.equal(want[k].to(got[k].dtype), got[k])]
        assert not different, f"{name}: {different[:5]}"
        assert not components[name].training and not any(p.requires_grad for p in components[name].parameters())


@pytest.mark.parametrize("family", ["sd15", "sd2", "sdxl"])
def test_tiny_single_file_loads_offline_with_the_same_weights(tmp_path, family):
    path, cfg, expected = build_tiny(family, tmp_path)
    components = load_single_file(path, family=family, config=cfg)
    assert_same_weights(expected, components)
    sdxl = family == "sdxl"
    assert sorted(components) == sorted(["unet", "vae", "text_encoder", "tokenizer", "scheduler"]
                                        + (["text_encoder_2", "tokenizer_2"] if sdxl else []))
    assert components["tokenizer"]("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert components["tokenizer"].pad_token == ("!" if family == "sd2" else "<|endoftext|>")
    if sdxl:
        assert components["tokenizer_2"].pad_token == "!"
    sched = components["scheduler"]
    assert (type(sched).__name__, sched.config.prediction_type) == {
        "sd15": ("PNDMScheduler", "epsilon"), "sd2": ("DDIMScheduler", "v_prediction"),
        "sdxl": ("EulerDiscreteScheduler", "epsilon")}[family]
    assert not list(cfg.rglob("vocab.json")), "the caller's config folder is left as it was"
    if sdxl:  # the family is told from the key names alone
        assert detect_family(path) == "sdxl"
        assert_same_weights(expected, load_single_file(path, config=cfg))


def test_ckpt_prediction_override_and_dtype(tmp_path):
    from safetensors.torch import load_file

    path, cfg, expected = build_tiny("sd15", tmp_path)
    ckpt = tmp_path / "tiny.ckpt"
    torch.save({"state_dict": load_file(str(path)), "global_step": 1234}, ckpt)  # the LDM training layout
    components = load_single_file(ckpt, family="sd15", config=cfg, prediction_type="v", dtype="float16")
    assert components["scheduler"].config.prediction_type == "v_prediction"
    assert components["unet"].dtype == torch.float16
    assert_same_weights(expected, components)
    # A1111's sidecar original config says the prediction type
    path.with_suffix(".yaml").write_text('model:\n  params:\n    parameterization: "v"\n')
    assert load_single_file(path, family="sd15", config=cfg)["scheduler"].config.prediction_type == "v_prediction"


@pytest.mark.slow
def test_real_sd15_architecture_single_file_roundtrip(tmp_path):
    """A random-weight checkpoint of the real SD 1.5 architecture, in the original single-file layout
    (as A1111/Civitai files are), loads with the shipped configs only, offline, weight for weight."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel

    cfg = shipped_config("sd15")
    with init_empty_weights():
        models = {"unet": UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(cfg / "unet")),
                  "vae": AutoencoderKL.from_config(AutoencoderKL.load_config(cfg / "vae")),
                  "text_encoder": CLIPTextModel(CLIPTextConfig.from_pretrained(cfg / "text_encoder"))}
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for model in models.values():
            model.half().to_empty(device="cpu")
            for p in model.parameters():
                p.uniform_(-0.05, 0.05, generator=generator)
    path = tmp_path / "sd15-random.safetensors"
    save_file({k: v.contiguous() for k, v in {**ldm_layout.unet_to_ldm(models["unet"]),
                                               **ldm_layout.vae_to_ldm(models["vae"]),
                                               **ldm_layout.clip_to_ldm(models["text_encoder"])}.items()}, str(path))
    assert detect_family(path) == "sd15"
    components = load_single_file(path, dtype=torch.float16)
    assert_same_weights(models, components)
    assert components["unet"].config.sample_size == 64 and components["scheduler"].config.prediction_type == "epsilon"
    del components
    # the generator a user names in a spec or the app: the file's path
    from prism_gui.engine.generation.families import describe
    from prism_gui.engine.generation.load import load_generator
    from prism_gui.engine.generation.sampler import SamplerSettings, sample_steps

    comp = load_generator(path, dtype=torch.float32)
    assert comp.family == "sd" and comp.resolution == 512 and describe(comp).endswith("epsilon, 512 px")
    *_, last = sample_steps(comp, ["a photo of a cat"], [0], SamplerSettings(steps=1, cfg=2.0, resolution=64))
    assert last.data["images"].shape == (1, 3, 64, 64) and torch.isfinite(last.data["images"]).all()


# --------------------------------------------------------------------------------------------
# detection from tensor names and shapes


def write_sparse_safetensors(path: Path, shapes: dict[str, tuple[int, ...]], metadata: dict | None = None) -> Path:
    """A valid .safetensors of all-zero float16 tensors, written sparse: the real shapes at no cost."""
    header: dict = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, shape in shapes.items():
        size = 2 * int(torch.tensor(shape).prod()) if shape else 2
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)
    return path


def signature(family: str) -> dict[str, tuple[int, ...]]:
    """The tensors (real names and shapes) that tell the families apart and that are checked."""
    s = {VAE + "encoder.conv_in.weight": (128, 3, 3, 3), VAE + "decoder.conv_out.weight": (3, 128, 3, 3),
         UNET + "input_blocks.0.0.weight": (320, 4, 3, 3), UNET + "out.2.weight": (4, 320, 3, 3)}
    if family == "sd15":
        s[UNET + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"] = (320, 768)
        s["cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"] = (49408, 768)
        s.update({f"cond_stage_model.transformer.text_model.encoder.layers.{i}.layer_norm1.weight": (768,)
                  for i in range(12)})
    elif family.startswith("sd2"):
        s[UNET + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"] = (320, 1024)
        s["cond_stage_model.model.token_embedding.weight"] = (49408, 1024)
        s.update({f"cond_stage_model.model.transformer.resblocks.{i}.ln_1.weight": (1024,) for i in range(24)})
    else:
        s[UNET + "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight"] = (640, 2048)
        s[UNET + "label_emb.0.0.weight"] = (1280, 2816)
        s["conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight"] = (49408, 768)
        s.update({f"conditioner.embedders.0.transformer.text_model.encoder.layers.{i}.layer_norm1.weight": (768,)
                  for i in range(12)})
        s["conditioner.embedders.1.model.token_embedding.weight"] = (49408, 1280)
        s.update({f"conditioner.embedders.1.model.transformer.resblocks.{i}.ln_1.weight": (1280,) for i in range(32)})
    return s


@pytest.mark.parametrize("family", ["sd15", "sd2", "sdxl"])
def test_family_detected_from_names_and_shapes_and_checked(tmp_path, family):
    path = write_sparse_safetensors(tmp_path / "model.safetensors", signature(family))
    assert detect_family(path) == family
    check_architecture(read_header(path), family)  # the real shapes fit the shipped configs
    if family == "sd2":
        check_architecture(read_header(path), "sd2-base")


def test_sd2_prediction_type_hints(tmp_path):
    shapes = signature("sd2")
    plain = write_sparse_safetensors(tmp_path / "plain.safetensors", shapes)
    assert detect_family(plain) == "sd2"  # diffusers' default for SD 2.x: 2.1, 768 px, v-prediction
    assert detect_family(plain, prediction_type="epsilon") == "sd2-base"
    assert detect_family(plain, prediction_type="v_prediction") == "sd2"
    spec = write_sparse_safetensors(tmp_path / "spec.safetensors", shapes,
                                    {"modelspec.architecture": "stable-diffusion-v2-512"})
    assert detect_family(spec) == "sd2-base"
    spec_v = write_sparse_safetensors(tmp_path / "spec_v.safetensors", shapes, {"modelspec.prediction_type": "v"})
    assert detect_family(spec_v) == "sd2"
    yaml_eps = write_sparse_safetensors(tmp_path / "eps.safetensors", shapes)
    yaml_eps.with_suffix(".yaml").write_text("model:\n  target: ldm.models.diffusion.ddpm.LatentDiffusion\n")
    assert detect_family(yaml_eps) == "sd2-base"
    yaml_v = write_sparse_safetensors(tmp_path / "v.safetensors", shapes)
    yaml_v.with_suffix(".yaml").write_text("model:\n  params:\n    parameterization: \"v\"\n")
    assert detect_family(yaml_v) == "sd2"
    # a .ckpt of SD 2.0-base carries its training step (diffusers' heuristic)
    small = {k: torch.zeros(v, dtype=torch.float16) for k, v in shapes.items() if "token_embedding" not in k}
    torch.save({"state_dict": small, "global_step": 875000}, tmp_path / "base.ckpt")
    assert detect_family(tmp_path / "base.ckpt") == "sd2-base"
    torch.save({"state_dict": small, "global_step": 100}, tmp_path / "v.ckpt")
    assert detect_family(tmp_path / "v.ckpt") == "sd2"


# --------------------------------------------------------------------------------------------
# clear errors


def test_errors_name_the_problem_and_the_fix(tmp_path):
    with pytest.raises(GeneratorLoadError, match="not found"):
        load_single_file(tmp_path / "missing.safetensors")
    with pytest.raises(GeneratorLoadError, match="is a folder"):
        load_single_file(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(GeneratorLoadError, match=r"not a single-file checkpoint.*\.safetensors"):
        load_single_file(tmp_path / "notes.txt")
    (tmp_path / "garbage.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(GeneratorLoadError, match=r"not a readable \.safetensors"):
        load_single_file(tmp_path / "garbage.safetensors")
    (tmp_path / "garbage.ckpt").write_bytes(b"not a pickle at all")
    with pytest.raises(GeneratorLoadError, match="not a readable PyTorch checkpoint"):
        load_single_file(tmp_path / "garbage.ckpt")

    unrelated = write_sparse_safetensors(tmp_path / "resnet.safetensors", {"fc.weight": (10, 512), "fc.bias": (10,)})
    with pytest.raises(GeneratorLoadError, match=r"not a full Stable Diffusion checkpoint: its 2 tensors \(e\.g\. 'fc"):
        load_single_file(unrelated)
    lora = write_sparse_safetensors(tmp_path / "lora.safetensors", {"lora_unet_down_blocks_0.alpha": ()})
    with pytest.raises(GeneratorLoadError, match="LoRA"):
        detect_family(lora)

    sd15 = write_sparse_safetensors(tmp_path / "sd15.safetensors", signature("sd15"))
    with pytest.raises(GeneratorLoadError, match=r"Unknown generator family 'sd3'.*'sd15'.*'sdxl'.*family="):
        load_single_file(sd15, family="sd3")
    with pytest.raises(GeneratorLoadError,
                       match=r"does not match the sdxl architecture: .*cross-attends.*look like 'sd15'"):
        load_single_file(sd15, family="sdxl")
    with pytest.raises(GeneratorLoadError, match="prediction type 'x0'"):
        load_single_file(sd15, prediction_type="x0")

    inpaint = dict(signature("sd15"), **{UNET + "input_blocks.0.0.weight": (320, 9, 3, 3)})
    with pytest.raises(GeneratorLoadError, match="inpainting"):
        detect_family(write_sparse_safetensors(tmp_path / "inpaint.safetensors", inpaint))
    refiner = {UNET + "input_blocks.0.0.weight": (384, 4, 3, 3),
               "conditioner.embedders.0.model.text_projection": (1280, 1280)}
    with pytest.raises(GeneratorLoadError, match="SDXL refiner"):
        detect_family(write_sparse_safetensors(tmp_path / "refiner.safetensors", refiner))

    import argparse

    torch.save({"state_dict": {UNET + "out.2.weight": torch.zeros(1)}, "hparams": argparse.Namespace(lr=1)},
               tmp_path / "training.ckpt")
    with pytest.raises(GeneratorLoadError, match=r"pickled Python objects.*argparse\.Namespace.*safetensors"):
        detect_family(tmp_path / "training.ckpt")


def test_a_file_that_does_not_fit_its_family_is_refused(tmp_path):
    path, cfg, _ = build_tiny("sd15", tmp_path)
    with pytest.raises(GeneratorLoadError, match=r"does not match the sd15 architecture: .*UNet input convolution"):
        load_single_file(path, family="sd15")  # tiny tensors against the real SD 1.5 configs
    with pytest.raises(GeneratorLoadError, match="does not match the sd2 architecture"):
        load_single_file(path, family="sd2", config=cfg)  # SD 1.x text-encoder keys, SD 2.x expected
    from safetensors.torch import load_file, save_file

    state = load_file(str(path))
    for name, kept in [("unet", lambda k: "attn1.to_q" not in k), ("text_encoder", lambda k: "layers.1.mlp" not in k)]:
        save_file({k: v for k, v in state.items() if kept(k)}, str(tmp_path / f"partial-{name}.safetensors"))
    with pytest.raises(GeneratorLoadError, match="lacks weights that the sd15 UNet or VAE needs"):
        load_single_file(tmp_path / "partial-unet.safetensors", family="sd15", config=cfg)
    with pytest.raises(GeneratorLoadError, match=r"lacks 4 text_encoder weights \(e\.g\. encoder\.layers\.1\.mlp"):
        load_single_file(tmp_path / "partial-text_encoder.safetensors", family="sd15", config=cfg)


def test_module_is_qt_free_and_does_not_know_the_digits_world(root):
    src = root / "prism_gui" / "engine" / "generation" / "single_file.py"
    imported = set()
    for node in ast.walk(ast.parse(src.read_text())):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert not {m for m in imported if m.split(".")[0] in ("PySide6", "pyqtgraph", "superqt")}
    assert not {m for m in imported if m.startswith("prism_gui.engine.digits")}
