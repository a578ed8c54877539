"""The Digits world's generative prior: a small text-conditioned pixel-space diffusion model.

It is built only from diffusers and transformers parts (``UNet2DConditionModel``,
``CLIPTextModel``, a word-level ``PreTrainedTokenizerFast``, ``DDPMScheduler``) and saved
with ``save_pretrained`` into a diffusers-style folder (``unet/``, ``text_encoder/``,
``tokenizer/``, ``scheduler/``, ``model_index.json``), so the loader that reads a Stable
Diffusion folder reads it too.  It is trained on *printed* digits only
(:mod:`prism_gui.engine.digits.render`); it has never seen a handwritten digit.

Pixels: 8x8, one channel, values 0..16 mapped to [-1, 1] (``x / 8 - 1``), the same range a
VAE decodes to, so the rest of the engine treats both worlds alike.

Reproduce the shipped weights with ``python -m prism_gui.engine.digits.train_prior``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from prism_gui.engine.digits import render
from prism_gui.engine.jobs import CancelToken, Event

MAX_TOKENS = 24
SPECIAL = ("[PAD]", "[UNK]", "[SOS]", "[EOS]")


def build_tokenizer(words: list[str] | None = None, max_length: int = MAX_TOKENS):
    """Word-level tokenizer over the caption vocabulary; unknown words map to ``[UNK]``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = words if words is not None else render.vocabulary()
    vocab = {tok: i for i, tok in enumerate(SPECIAL)}
    for w in words:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[SOS] $A [EOS]", special_tokens=[("[SOS]", vocab["[SOS]"]), ("[EOS]", vocab["[EOS]"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", bos_token="[SOS]",
        eos_token="[EOS]", model_max_length=max_length,
    )


def build_text_encoder(vocab_size: int, width: int = 64):
    from transformers import CLIPTextConfig, CLIPTextModel

    cfg = CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=width, intermediate_size=2 * width,
        projection_dim=width, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=MAX_TOKENS, pad_token_id=0, bos_token_id=2, eos_token_id=3,
    )
    return CLIPTextModel(cfg)


def build_unet(cross_attention_dim: int = 64):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=8, in_channels=1, out_channels=1,
        block_out_channels=(32, 64, 96), layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross_attention_dim, attention_head_dim=8, norm_num_groups=16,
    )


def build_scheduler():
    from diffusers import DDPMScheduler

    # no x0 clipping: with classifier-free guidance and DDIM, clipping the early (very noisy)
    # x0 predictions saturates them and ruins the samples; training never uses it
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                         prediction_type="epsilon", clip_sample=False)


def to_model_range(images_0_16: np.ndarray | torch.Tensor):
    return images_0_16 / 8.0 - 1.0


def from_model_range(x):
    return ((x + 1.0) * 8.0).clip(0, 16)


@dataclasses.dataclass
class PriorTrainSpec:
    out_dir: str = "resources/digits_prior"
    steps: int = 8000
    max_minutes: float = 55.0  # stop early (and still save) if the budget runs out
    batch_size: int = 128
    lr: float = 7e-4
    warmup: int = 200
    ema_decay: float = 0.9995
    snr_gamma: float = 5.0
    caption_dropout: float = 0.12
    p_mention: float = 0.6
    p_default: float = 0.15
    corpus_size: int = 40000
    seed: int = 0
    threads: int = 0  # 0: torch's default
    save_every: int = 1500


def _render_chunk(args):
    n, seed = args
    return render.render_corpus(n, seed)


def render_corpus_parallel(n: int, seed: int, workers: int = 2):
    """Render ``n`` printed digits in ``workers`` processes (deterministic for a seed)."""
    chunks = [(n // workers + (i < n % workers), seed * 1000 + i) for i in range(workers)]
    if workers == 1:
        results = [_render_chunk(chunks[0])]
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            results = pool.map(_render_chunk, chunks)
    images = np.concatenate([r[0] for r in results])
    attrs = [a for r in results for a in r[1]]
    return images, attrs


def save_prior(out_dir: Path, unet, text_encoder, tokenizer, scheduler, card: dict | None = None):
    out_dir.mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(out_dir / "unet")
    text_encoder.save_pretrained(out_dir / "text_encoder")
    tokenizer.save_pretrained(out_dir / "tokenizer")
    scheduler.save_pretrained(out_dir / "scheduler")
    index = {
        "_class_name": "PrismPixelDiffusion",
        "_diffusers_version": __import__("diffusers").__version__,
        "unet": ["diffusers", "UNet2DConditionModel"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "PreTrainedTokenizerFast"],
        "scheduler": ["diffusers", type(scheduler).__name__],
        "vae": [None, None],
        "prism": {"world": "digits", "pixel_range": [-1.0, 1.0], "resolution": 8, "channels": 1},
    }
    (out_dir / "model_index.json").write_text(json.dumps(index, indent=2))
    if card is not None:
        (out_dir / "card.json").write_text(json.dumps(card, indent=2))


def train_prior(spec: PriorTrainSpec, cancel: CancelToken | None = None) -> Iterator[Event]:
    """Train the prior; yields an event per 25 steps and saves EMA weights to ``spec.out_dir``."""
    from diffusers.training_utils import EMAModel, compute_snr

    cancel = cancel or CancelToken()
    if spec.threads:
        torch.set_num_threads(spec.threads)
    t_start = time.time()
    torch.manual_seed(spec.seed)
    rng = np.random.default_rng(spec.seed)

    yield Event("render corpus", 0, 1, f"{spec.corpus_size} printed digits")
    images, attrs = render_corpus_parallel(spec.corpus_size, spec.seed)
    data = torch.from_numpy(to_model_range(images)).float().unsqueeze(1)
    t_render = time.time() - t_start
    yield Event("render corpus", 1, 1, f"{t_render:.0f}s")

    tokenizer = build_tokenizer()
    text_encoder = build_text_encoder(len(tokenizer))
    unet = build_unet(text_encoder.config.hidden_size)
    scheduler = build_scheduler()
    params = list(unet.parameters()) + list(text_encoder.parameters())
    ema = EMAModel(params, decay=spec.ema_decay, use_ema_warmup=True, power=0.75)
    opt = torch.optim.AdamW(params, lr=spec.lr, weight_decay=1e-2)

    def lr_at(step):
        if step < spec.warmup:
            return spec.lr * (step + 1) / spec.warmup
        frac = (step - spec.warmup) / max(1, spec.steps - spec.warmup)
        return spec.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))

    def ema_snapshot():
        unet_e, te_e = build_unet(text_encoder.config.hidden_size), build_text_encoder(len(tokenizer))
        ema.copy_to(list(unet_e.parameters()) + list(te_e.parameters()))
        return unet_e, te_e

    n_params = sum(p.numel() for p in unet.parameters())
    n_text = sum(p.numel() for p in text_encoder.parameters())
    losses: list[float] = []
    t_train = time.time()
    step = 0
    for step in range(spec.steps):
        cancel.raise_if_cancelled()
        if (time.time() - t_start) / 60 > spec.max_minutes:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        idx = rng.integers(0, len(data), spec.batch_size)
        x0 = data[idx]
        caps = [
            "" if rng.random() < spec.caption_dropout
            else render.caption(attrs[i], rng, spec.p_mention, spec.p_default)
            for i in idx
        ]
        ids = tokenizer(caps, padding="max_length", max_length=MAX_TOKENS, truncation=True,
                        return_tensors="pt").input_ids
        noise = torch.randn_like(x0)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (len(x0),))
        xt = scheduler.add_noise(x0, noise, t)
        cond = text_encoder(ids).last_hidden_state
        pred = unet(xt, t, cond).sample
        mse = ((pred - noise) ** 2).mean(dim=(1, 2, 3))
        snr = compute_snr(scheduler, t)
        weight = torch.clamp(snr, max=spec.snr_gamma) / snr
        loss = (mse * weight).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema.step(params)
        losses.append(loss.item())
        if (step + 1) % 25 == 0:
            el = time.time() - t_train
            yield Event("train prior", step + 1, spec.steps,
                        f"loss {np.mean(losses[-100:]):.4f}  {el / (step + 1):.3f}s/step",
                        {"loss": float(np.mean(losses[-25:])), "lr": lr_at(step)})
        if spec.save_every and (step + 1) % spec.save_every == 0:
            u, te = ema_snapshot()
            save_prior(Path(spec.out_dir), u, te, tokenizer, scheduler)
    steps_done = step + 1
    train_seconds = time.time() - t_train
    u, te = ema_snapshot()
    card = {
        "name": "PRISM Digits prior",
        "description": "Text-conditioned pixel-space diffusion model (8x8, 1 channel) trained "
                       "only on procedurally rendered printed digits (matplotlib fonts).",
        "unet_parameters": n_params,
        "text_encoder_parameters": n_text,
        "vocabulary_size": len(tokenizer),
        "training": {
            "spec": dataclasses.asdict(spec),
            "steps_done": steps_done,
            "final_loss": float(np.mean(losses[-200:])) if losses else None,
            "render_seconds": round(t_render, 1),
            "train_seconds": round(train_seconds, 1),
            "seconds_per_step": round(train_seconds / max(1, steps_done), 4),
            "total_minutes": round((time.time() - t_start) / 60, 2),
            "torch_threads": torch.get_num_threads(),
            "command": "python -m prism_gui.engine.digits.train_prior",
        },
    }
    from prism_gui.engine.versions import package_versions

    card["training"]["versions"] = package_versions()
    save_prior(Path(spec.out_dir), u, te, tokenizer, scheduler, card)
    yield Event("train prior", steps_done, spec.steps, "saved", {"card": card})
