import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from prism_gui.engine.digits import render
from prism_gui.engine.digits.prior import build_tokenizer


def test_render_is_deterministic_and_in_digits_range():
    a, attrs = render.render_corpus(30, seed=5)
    b, _ = render.render_corpus(30, seed=5)
    assert a.shape == (30, 8, 8)
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0 and a.max() <= 16
    assert np.allclose(a, np.round(a)), "optdigits values are integer block counts"
    assert [x.digit for x in attrs] == [i % 10 for i in range(30)]


attr_values = {k: st.sampled_from(v) for k, (v, _) in render.ATTRIBUTES.items()}


@settings(max_examples=40, deadline=None)
@given(digit=st.integers(0, 9), seed=st.integers(0, 2**31 - 1), font_index=st.integers(0, 5), **attr_values)
def test_any_attribute_combination_renders_ink(digit, seed, font_index, **values):
    img = render.render(render.DigitAttributes(digit=digit, seed=seed, font_index=font_index, **values))
    assert img.shape == (8, 8)
    assert 0 <= img.min() and img.max() <= 16
    assert img.sum() > 10, "every render must contain a visible digit"


def test_attributes_change_the_image_the_way_their_words_say():
    rng = np.random.default_rng(0)
    base = [render.sample_attributes(rng, d % 10) for d in range(200)]

    def ink(**kw):
        return np.mean([render.render(render.DigitAttributes(**{**a.__dict__, **kw})).sum() for a in base])

    assert ink(weight="bold", stroke="normal") > ink(weight="regular", stroke="normal")
    assert ink(stroke="thick") > ink(stroke="normal") > ink(stroke="thin")
    assert ink(size="large") > ink(size="small")

    def centroid_x(**kw):
        imgs = [render.render(render.DigitAttributes(**{**a.__dict__, **kw})) for a in base]
        xs = np.arange(8)
        return np.mean([(im.sum(0) * xs).sum() / im.sum() for im in imgs])

    assert centroid_x(position="shifted left") < centroid_x(position="centered") < centroid_x(position="shifted right")


def test_captions_name_attributes_and_every_word_is_in_the_vocabulary():
    attrs = render.DigitAttributes(digit=7, family="serif", weight="bold", slant="italic", size="small",
                                   position="shifted left")
    assert render.caption(attrs) == "a bold italic serif seven, small, shifted left"
    tok = build_tokenizer()
    rng = np.random.default_rng(1)
    for _ in range(300):
        a = render.sample_attributes(rng)
        cap = render.caption(a, rng, p_mention=0.6, p_default=0.3)
        ids = tok(cap).input_ids
        assert tok.unk_token_id not in ids, cap
        assert len(ids) <= tok.model_max_length


def test_tokenizer_maps_unknown_words_to_unk():
    tok = build_tokenizer()
    ids = tok("a fluorescent seven").input_ids
    assert ids.count(tok.unk_token_id) == 1
    assert tok.convert_ids_to_tokens(ids)[1:-1] == ["a", "[UNK]", "seven"]
