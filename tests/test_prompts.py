import json

import pytest

from prism_gui.engine.prompts import (
    PromptError,
    PromptSet,
    apply_scores,
    class_phrases,
    coverage,
    expand,
    llm_expand,
    load_bank,
    plain_prompts,
)

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def test_disambiguation_uses_wordnet_definitions_for_imagenet():
    from prism_gui.engine.teachers.classes import imagenet_class_names

    names, desc = imagenet_class_names()
    ph = class_phrases(names, desc, mode="definition")
    assert ph[134].startswith("crane, ") and "bird" in ph[134]
    assert "lifts" in ph[517] and ph[134] != ph[517]
    assert class_phrases(["crane"], ["crane: a bird"], mode="definition", user={"crane": "a whooping crane"}) == \
        ["a whooping crane"]
    assert class_phrases(DIGITS, mode="name") == DIGITS


def test_expansion_is_seeded_distinct_balanced_and_known_to_the_prior(digits_prior):
    bank = load_bank("digits")
    a = expand(DIGITS, bank, per_class=24, seed=3)
    b = expand(DIGITS, bank, per_class=24, seed=3)
    assert [p.text for p in a.prompts] == [p.text for p in b.prompts]
    assert [p.text for p in expand(DIGITS, bank, per_class=24, seed=4).prompts] != [p.text for p in a.prompts]
    assert set(a.counts().values()) == {24}
    for k in range(10):
        texts = [p.text for p in a.for_class(k)]
        assert len(set(texts)) == len(texts)
        assert all(DIGITS[k] in t for t in texts)
    cov = coverage(a, bank)
    for axis, counts in cov.items():
        vals = list(counts.values())
        assert min(vals) > 0, (axis, counts)
        assert max(vals) - min(vals) <= 0.35 * max(vals) + 3, (axis, counts)
    assert a.validate(digits_prior.tokenizer) == []


def test_axes_can_be_switched_off():
    bank = load_bank("digits")
    ps = expand(DIGITS, bank, per_class=10, seed=0, axes=["weight", "size"], include_plain=False)
    words = {w for p in ps.prompts for w in p.text.replace(",", " ").split()}
    assert not words & {"italic", "serif", "tilted", "wavy"}
    with pytest.raises(PromptError, match="unknown bank axes"):
        expand(DIGITS, bank, per_class=5, axes=["colour"])


def test_validation_reports_empty_and_over_long_prompts_without_truncating(digits_prior):
    ps = PromptSet(DIGITS[:2], [])
    ps.prompts = [ps_prompt(0, ""), ps_prompt(1, "a " + "bold " * 40 + "one")]
    issues = ps.validate(digits_prior.tokenizer)
    assert any("empty prompt" in i for i in issues)
    assert any("over the generator's limit" in i for i in issues)
    assert {i.code for i in issues} >= {"empty", "too-long"}  # the codes the generation acts on
    assert ps.prompts[1].text.count("bold") == 40


def ps_prompt(k, text):
    from prism_gui.engine.prompts import Prompt

    return Prompt(k, text)


def test_json_and_csv_round_trip(tmp_path):
    ps = expand(DIGITS, load_bank("digits"), per_class=4, seed=1)
    ps.prompts[0].score = 1.5
    ps.save(tmp_path / "p.json")
    ps.save(tmp_path / "p.csv")
    a = PromptSet.load(tmp_path / "p.json")
    b = PromptSet.load(tmp_path / "p.csv", DIGITS)
    assert [p.text for p in a.prompts] == [p.text for p in ps.prompts] == [p.text for p in b.prompts]
    assert a.prompts[0].score == b.prompts[0].score == 1.5
    (tmp_path / "bad.csv").write_text("class,text\nelevenish,a thing\n")
    with pytest.raises(PromptError, match="line 2: unknown class 'elevenish'"):
        PromptSet.load(tmp_path / "bad.csv", DIGITS)
    (tmp_path / "bad.json").write_text(json.dumps({"prompts": []}))
    with pytest.raises(PromptError, match="not a PRISM prompt file"):
        PromptSet.load(tmp_path / "bad.json")


def test_precision_aware_scores_drop_the_worst_prompts_per_class():
    ps = expand(DIGITS[:2], load_bank("digits"), per_class=10, seed=0)
    scores = {i: float(i % 10) for i in range(len(ps.prompts))}
    apply_scores(ps, scores, keep_fraction=0.7)
    for k in range(2):
        kept = [p for p in ps.for_class(k) if p.weight > 0]
        dropped = [p for p in ps.for_class(k) if p.weight == 0]
        assert len(kept) == 7 and len(dropped) == 3
        assert max(p.score for p in kept) <= min(p.score for p in dropped)
    assert all(p.score is not None for p in ps.prompts)


def test_plain_prompts_and_banks():
    ps = plain_prompts(DIGITS, load_bank("digits"))
    assert ps.prompts[7].text == "the digit seven"
    nat = load_bank("natural")
    assert plain_prompts(["crane, a bird"], nat).prompts[0].text == "a photo of a crane, a bird"
    with pytest.raises(PromptError, match="not found"):
        load_bank("no-such-bank")


def test_llm_expansion_with_a_tiny_local_model(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = ["[UNK]", "<eos>", "a", "short", "caption", "of", "picture", "crane", "bird", "in", "the", "sky", ":"]
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", eos_token="<eos>")
    GPT2LMHeadModel(GPT2Config(vocab_size=len(words), n_positions=64, n_embd=16, n_layer=1, n_head=2,
                               eos_token_id=1, bos_token_id=1)).save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    ps = llm_expand(tmp_path / "lm", ["crane"], per_class=3, seed=0, max_new_tokens=5)
    assert 1 <= len(ps.prompts) <= 3 and all(p.text.startswith("crane") and p.source == "llm" for p in ps.prompts)
    with pytest.raises(PromptError, match="does not exist"):
        llm_expand(tmp_path / "nope", ["crane"])


def _grammar_problems(text: str) -> list[str]:
    import re

    from prism_gui.engine.prompts import _DANGLING, article_for

    bad = []
    if any(c in text for c in "{}[]"):
        bad.append("unfilled template")
    if "  " in text or " ," in text or ",," in text or text != text.strip() or text.endswith(","):
        bad.append("stray space or comma")
    for m in re.finditer(r"\b([Aa]n?) (\S+)", text):
        art, word = m.group(1).lower(), m.group(2)
        if word.strip(",").lower() in ("of", "and", "a", "an", "the", ","):
            bad.append(f"'{art} {word}': an article before no noun")
        elif art != article_for(word):
            bad.append(f"'{art} {word}'")
    for part in text.split(","):
        words = part.split()
        if words and words[-1].lower() in _DANGLING - {"a", "an"} | {"a", "an"}:
            bad.append(f"clause ends on '{words[-1]}'")
    return bad


@pytest.mark.parametrize("bank_name", ["natural", "digits"])
def test_every_template_of_every_bank_is_grammatical_for_every_imagenet_class(bank_name):
    import itertools

    from prism_gui.engine.prompts import _compose, class_phrases, load_bank, plain_text
    from prism_gui.engine.teachers.classes import imagenet_class_names

    names, desc = imagenet_class_names()
    bank = load_bank(bank_name)
    phrases = class_phrases(names, desc, mode="definition") + names
    all_axes = [("style", a, v) for a, v in bank["style"].items()] + \
               [("content", a, v) for a, v in bank["content"].items()]
    style_axes = [a for k, a, _ in all_axes if k == "style"]
    content_axes = [a for k, a, _ in all_axes if k == "content"]
    problems = []
    for phrase in phrases:
        texts = [plain_text(bank, phrase)]
        for n_style, n_content in itertools.product((0, 1, len(style_axes)), (0, 1, 2)):
            chosen = {a: ("style", 0) for a in style_axes[:n_style]}
            chosen.update({a: ("content", 1) for a in content_axes[:n_content]})
            texts.append(_compose(bank, phrase, chosen, all_axes))
        for t in texts:
            problems += [f"{t!r}: {p}" for p in _grammar_problems(t)]
    assert not problems, f"{len(problems)} problems, e.g.\n" + "\n".join(problems[:15])


def test_definitions_stop_at_a_phrase_boundary():
    from prism_gui.engine.prompts import short_definition

    gloss = ("tench: freshwater dace-like game fish of Europe and western Asia noted for ability to survive "
             "outside water")
    assert short_definition(gloss) == "freshwater dace-like game fish of Europe and western Asia"
    assert short_definition("x: a mechanical device that is curved or bent to suspend or hold") == "a mechanical device"
    long = "x: " + " ".join(["big"] * 10) + " bird of the marshes and of the plains of many parts of the world"
    assert short_definition(long).split()[-1] not in ("of", "the", "and")


def test_imagenet_prompts_fit_the_clip_token_limit_and_read_well(tmp_path):
    from prism_gui.engine.prompts import class_phrases, expand, load_bank
    from prism_gui.engine.teachers.classes import imagenet_class_names
    from tests.tiny_sd import real_clip_tokenizer

    names, desc = imagenet_class_names()
    ps = expand(names, load_bank("natural"), per_class=3, seed=0, phrases=class_phrases(names, desc, "definition"))
    assert len(ps.prompts) == 3000
    bad = [p.text for p in ps.prompts if _grammar_problems(p.text)]
    assert not bad, bad[:5]
    assert not any(p.text.startswith("an of") or " a of " in p.text for p in ps.prompts)
    tok = real_clip_tokenizer(tmp_path / "tok")  # CLIP's own BPE: counts as Stable Diffusion does
    assert tok("a photo of a tench").input_ids == [49406, 320, 1125, 539, 320, 1149, 634, 49407]
    assert not [i for i in ps.validate(tok) if i.code == "too-long"]
