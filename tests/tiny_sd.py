"""Tiny random-weight Stable Diffusion components, built locally (no downloads)."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def write_tiny_clip_tokenizer(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789,.")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars:
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return folder


def write_real_clip_tokenizer(folder: Path) -> Path:
    """CLIP's real BPE vocabulary (49,408 tokens, the 77-token limit), built from the copy that
    open_clip ships: a stand-in tokenizer that counts tokens exactly as Stable Diffusion's does."""
    import gzip
    import importlib.resources

    from open_clip.tokenizer import bytes_to_unicode

    folder.mkdir(parents=True, exist_ok=True)
    bpe = importlib.resources.files("open_clip") / "bpe_simple_vocab_16e6.txt.gz"
    merges = gzip.decompress(bpe.read_bytes()).decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    merges = [tuple(m.split()) for m in merges]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({v: i for i, v in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    return folder


def real_clip_tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    d = write_real_clip_tokenizer(folder)
    return CLIPTokenizer(str(d / "vocab.json"), str(d / "merges.txt"), model_max_length=77)


def build_tiny_sd(folder: Path, scheduler: str = "DDIMScheduler", real_tokenizer: bool = False) -> Path:
    import diffusers
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16,
                                attention_head_dim=4, norm_num_groups=4)
    vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3,
                        down_block_types=["DownEncoderBlock2D"] * 2,
                        up_block_types=["UpDecoderBlock2D"] * 2, latent_channels=4, norm_num_groups=4,
                        sample_size=16)
    if real_tokenizer:
        tokenizer = real_clip_tokenizer(folder / "_tok")
        ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
               "pad_token_id": tokenizer.pad_token_id}
    else:
        tok_dir = write_tiny_clip_tokenizer(folder / "_tok")
        tokenizer = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=16)
        ids = {"bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1}
    te = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                                      num_hidden_layers=1, num_attention_heads=2,
                                      max_position_embeddings=tokenizer.model_max_length, projection_dim=16, **ids))
    sched = getattr(diffusers, scheduler)(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                          clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=te, tokenizer=tokenizer, scheduler=sched,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder / "sd")
    return folder / "sd"


def _tiny_tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    tok_dir = write_tiny_clip_tokenizer(folder)
    return CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=16)


def build_tiny_sdxl(folder: Path, scheduler: str = "EulerDiscreteScheduler", time_cond_proj_dim: int | None = None,
                    force_zeros_for_empty_prompt: bool = True) -> Path:
    """Tiny random SDXL: two text encoders (the second with projection), a UNet with text-and-size
    conditioning (``addition_embed_type="text_time"``), saved by ``StableDiffusionXLPipeline``."""
    import diffusers
    from diffusers import AutoencoderKL, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4),
                                use_linear_projection=True, addition_embed_type="text_time",
                                addition_time_embed_dim=8, transformer_layers_per_block=(1, 2),
                                projection_class_embeddings_input_dim=6 * 8 + 16, cross_attention_dim=32,
                                norm_num_groups=4, time_cond_proj_dim=time_cond_proj_dim)
    vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        latent_channels=4, norm_num_groups=4, sample_size=16, scaling_factor=0.13025,
                        force_upcast=True)
    tokenizer = _tiny_tokenizer(folder / "_tok")
    cfg = dict(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
               num_attention_heads=2, max_position_embeddings=16, projection_dim=16, bos_token_id=0,
               eos_token_id=1, pad_token_id=1, hidden_act="gelu")
    te = CLIPTextModel(CLIPTextConfig(**cfg))
    te2 = CLIPTextModelWithProjection(CLIPTextConfig(**cfg))
    sched = getattr(diffusers, scheduler)(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                          steps_offset=1, timestep_spacing="leading")
    pipe = StableDiffusionXLPipeline(unet=unet, vae=vae, text_encoder=te, text_encoder_2=te2, tokenizer=tokenizer,
                                     tokenizer_2=tokenizer, scheduler=sched,
                                     force_zeros_for_empty_prompt=force_zeros_for_empty_prompt)
    pipe.save_pretrained(folder / "sdxl")
    return folder / "sdxl"


def build_tiny_lcm(folder: Path) -> Path:
    """Tiny random latent consistency model: an SD-shaped UNet with a guidance embedding
    (``time_cond_proj_dim``) and the LCM scheduler, saved by ``LatentConsistencyModelPipeline``."""
    from diffusers import AutoencoderKL, LatentConsistencyModelPipeline, LCMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16,
                                attention_head_dim=4, norm_num_groups=4, time_cond_proj_dim=8)
    vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        latent_channels=4, norm_num_groups=4, sample_size=16)
    tokenizer = _tiny_tokenizer(folder / "_tok")
    te = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                                      num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=16,
                                      projection_dim=16, bos_token_id=0, eos_token_id=1, pad_token_id=1))
    sched = LCMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                         set_alpha_to_one=True, timestep_spacing="leading")
    pipe = LatentConsistencyModelPipeline(vae=vae, text_encoder=te, tokenizer=tokenizer, unet=unet, scheduler=sched,
                                          safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder / "lcm")
    return folder / "lcm"


def build_tiny_turbo(folder: Path) -> Path:
    """Tiny random SD-Turbo-shaped generator: SD components with Euler ancestral on "trailing"
    timesteps, the scheduler SD-Turbo ships for 1-4 steps without classifier-free guidance."""
    import diffusers

    src = build_tiny_sd(folder / "base")
    cfg = json.loads((src / "scheduler" / "scheduler_config.json").read_text())
    sched = diffusers.EulerAncestralDiscreteScheduler.from_config(cfg, timestep_spacing="trailing")
    sched.save_pretrained(src / "scheduler")
    index = json.loads((src / "model_index.json").read_text())
    index["scheduler"] = ["diffusers", "EulerAncestralDiscreteScheduler"]
    (src / "model_index.json").write_text(json.dumps(index))
    return src
