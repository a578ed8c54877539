"""Prompt expansion by a local language model (transformers), never downloaded; its weights go
through the same byte-level checks as a teacher's."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from prism_gui.engine.prompts import EXPANDERS, Prompt, PromptError, PromptSet


@EXPANDERS.register("llm", "a local language model (transformers) writes the prompts")
def llm_expand(model_dir: str | Path, class_names: Sequence[str], phrases: Sequence[str] | None = None,
               per_class: int = 5, seed: int = 0, max_new_tokens: int = 24,
               instruction: str = "A short caption of a picture of {class}:") -> PromptSet:
    """Sample prompts from a causal language model in a local folder (never downloaded)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise PromptError(f"Language-model folder '{model_dir}' does not exist: give a local transformers folder.")
    from prism_gui.engine.weights import weight_file_problem

    for f in sorted(model_dir.iterdir()):
        if f.is_file() and f.suffix in (".bin", ".pt", ".pth", ".safetensors", ".ckpt"):
            problem = weight_file_problem(f)
            if problem:
                raise PromptError(f"The language model's weights '{f}' {problem}: give a folder saved with "
                                  "save_pretrained(safe_serialization=True) (model.safetensors), or copy it again.")
    try:
        tok = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        lm = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True).eval()
    except Exception as e:  # transformers raises OSError, ValueError, and the loaders' own errors
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise PromptError(f"Could not load a causal language model from '{model_dir}' ({type(e).__name__}: {first}): "
                          "give a local transformers folder with config.json, the tokenizer files and the "
                          "weights") from None
    phrases = list(phrases or class_names)
    ps = PromptSet(list(class_names), meta={"expander": "llm", "model": str(model_dir), "seed": seed})
    torch.manual_seed(seed)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    for k, phrase in enumerate(phrases):
        query = instruction.replace("{class}", phrase)
        ids = tok(query, return_tensors="pt").input_ids
        seen: set[str] = set()
        for _ in range(per_class * 4):
            if len(seen) >= per_class:
                break
            with torch.no_grad():
                out = lm.generate(ids, do_sample=True, max_new_tokens=max_new_tokens, top_k=50,
                                  pad_token_id=pad)
            text = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip().split("\n")[0].strip()
            text = f"{phrase}, {text}" if text else phrase
            text = " ".join(text.split())
            if text not in seen:
                seen.add(text)
                ps.prompts.append(Prompt(k, text, source="llm"))
    return ps
