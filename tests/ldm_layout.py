"""Diffusers models -> the original (LDM / A1111 single-file) key layout, for tests only.

The inverse of what diffusers' ``from_single_file`` converts (``convert_ldm_unet_checkpoint``,
``convert_ldm_vae_checkpoint``, ``convert_ldm_clip_checkpoint``, ``convert_open_clip_checkpoint``),
written for any block count and layers per block, after diffusers' own
``scripts/convert_diffusers_to_original_stable_diffusion.py`` (not installed with the package).
A saved result is what a user's one-file checkpoint looks like: ``model.diffusion_model.*``,
``first_stage_model.*`` and the text encoder(s) under ``cond_stage_model.*``/``conditioner.*``.
"""

from __future__ import annotations

import torch

RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
          ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]


def _rename(key: str, table: list[tuple[str, str]]) -> str:
    for old, new in table:
        if key.startswith(old):
            return new + key[len(old):]
    raise KeyError(key)


def unet_to_ldm(unet) -> dict[str, torch.Tensor]:
    cfg = unet.config
    per = cfg.layers_per_block + 1  # LDM numbers resnets, then the down/upsampler, in one list per level
    table = [("time_embedding.linear_1.", "time_embed.0."), ("time_embedding.linear_2.", "time_embed.2."),
             ("add_embedding.linear_1.", "label_emb.0.0."), ("add_embedding.linear_2.", "label_emb.0.2."),
             ("conv_in.", "input_blocks.0.0."), ("conv_norm_out.", "out.0."), ("conv_out.", "out.2."),
             ("mid_block.attentions.0.", "middle_block.1.")]
    resnets = [(f"mid_block.resnets.{j}.", f"middle_block.{2 * j}.") for j in range(2)]
    for i in range(len(cfg.block_out_channels)):
        for j in range(cfg.layers_per_block):
            resnets.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{1 + i * per + j}.0."))
            table.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{1 + i * per + j}.1."))
        table.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{(i + 1) * per}.0.op."))
        for j in range(per):
            resnets.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{i * per + j}.0."))
            table.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{i * per + j}.1."))
        has_attn = "CrossAttn" in cfg.up_block_types[i]
        table.append((f"up_blocks.{i}.upsamplers.0.", f"output_blocks.{i * per + per - 1}.{2 if has_attn else 1}."))
    out = {}
    for key, value in unet.state_dict().items():
        prefix = next((old for old, _ in resnets if key.startswith(old)), None)
        if prefix is not None:
            new = _rename(key, resnets)
            new = new[: len(dict(resnets)[prefix])] + _rename(key[len(prefix):], [(a + ".", b + ".")
                                                                                   for a, b in RESNET])
        else:
            new = _rename(key, table)
        out["model.diffusion_model." + new] = value
    return out


def vae_to_ldm(vae) -> dict[str, torch.Tensor]:
    n = len(vae.config.block_out_channels)
    table = [("conv_in.", "conv_in."), ("conv_out.", "conv_out."), ("conv_norm_out.", "norm_out."),
             ("mid_block.attentions.0.", "mid.attn_1.")]
    table += [(f"mid_block.resnets.{j}.", f"mid.block_{j + 1}.") for j in range(2)]
    for i in range(n):
        table += [(f"down_blocks.{i}.resnets.", f"down.{i}.block."),
                  (f"down_blocks.{i}.downsamplers.0.", f"down.{i}.downsample."),
                  (f"up_blocks.{i}.resnets.", f"up.{n - 1 - i}.block."),
                  (f"up_blocks.{i}.upsamplers.0.", f"up.{n - 1 - i}.upsample.")]
    attn = [("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."), ("to_out.0.", "proj_out.")]
    out = {}
    for key, value in vae.state_dict().items():
        part, rest = key.split(".", 1)
        if part in ("encoder", "decoder"):
            rest = _rename(rest, table).replace(".conv_shortcut.", ".nin_shortcut.")
            if rest.startswith("mid.attn_1."):
                rest = "mid.attn_1." + _rename(rest[len("mid.attn_1."):], attn)
                if value.ndim == 2:  # LDM's attention projections are 1x1 convolutions
                    value = value[:, :, None, None]
            key = f"{part}.{rest}"
        out["first_stage_model." + key] = value  # quant_conv / post_quant_conv keep their names
    return out


def _text_state(text_encoder) -> dict[str, torch.Tensor]:
    """``text_model.*`` keys whether or not this transformers version wraps CLIPTextModel's body."""
    out = {}
    for k, v in text_encoder.state_dict().items():
        if k == "text_projection.weight":
            out[k] = v
        else:
            out["text_model." + k.removeprefix("text_model.")] = v
    return out


def clip_to_ldm(text_encoder, prefix: str = "cond_stage_model.transformer.") -> dict[str, torch.Tensor]:
    """OpenAI CLIP (SD 1.x, SDXL's first encoder): the transformers keys under a prefix."""
    return {prefix + k: v for k, v in _text_state(text_encoder).items() if k != "text_projection.weight"}


def open_clip_to_ldm(text_encoder, prefix: str = "cond_stage_model.model.") -> dict[str, torch.Tensor]:
    """OpenCLIP (SD 2.x, SDXL's second encoder): fused q/k/v projections, open_clip's names, and the
    text projection as a (width, dim) matrix (an identity for a model without one, as SD 2.x's
    files carry a projection that the diffusers text encoder does not use)."""
    state = _text_state(text_encoder)
    out = {prefix + "token_embedding.weight": state.pop("text_model.embeddings.token_embedding.weight"),
           prefix + "positional_embedding": state.pop("text_model.embeddings.position_embedding.weight"),
           prefix + "ln_final.weight": state.pop("text_model.final_layer_norm.weight"),
           prefix + "ln_final.bias": state.pop("text_model.final_layer_norm.bias")}
    proj = state.pop("text_projection.weight", None)
    width = out[prefix + "token_embedding.weight"].shape[1]
    out[prefix + "text_projection"] = proj.T.contiguous() if proj is not None else torch.eye(width)
    names = [("self_attn.out_proj.", "attn.out_proj."), ("layer_norm1.", "ln_1."), ("layer_norm2.", "ln_2."),
             ("mlp.fc1.", "mlp.c_fc."), ("mlp.fc2.", "mlp.c_proj.")]
    layers = sorted({int(k.split(".")[3]) for k in state if k.startswith("text_model.encoder.layers.")})
    for i in layers:
        src = f"text_model.encoder.layers.{i}."
        dst = f"{prefix}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            out[dst + f"attn.in_proj_{kind}"] = torch.cat(
                [state.pop(src + f"self_attn.{p}_proj.{kind}") for p in ("q", "k", "v")])
        for k in [k for k in state if k.startswith(src)]:
            out[dst + _rename(k[len(src):], names)] = state.pop(k)
    assert not state, f"unmapped text-encoder tensors: {sorted(state)}"
    return out
