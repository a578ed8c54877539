"""The figures the docs quote against the committed results they come from (docs/figures.toml):
a doc whose number drifts from its source, or a source re-run without the doc, fails here."""

from __future__ import annotations

import json
import re
import tomllib

import pytest

from tests.conftest import ROOT

FIGURES = tomllib.loads((ROOT / "docs" / "figures.toml").read_text())["figure"]


def value_at(doc, path: str):
    """The value at ``path`` (dots between keys; a number indexes a list); "pct:" gives a percent."""
    scale = 100.0 if path.startswith("pct:") else 1.0
    for part in path.removeprefix("pct:").split("."):
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc * scale if scale != 1.0 else doc


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def quoted(figure: dict) -> str:
    source = json.loads((ROOT / figure["source"]).read_text())
    return figure["text"].format(**{k: value_at(source, p) for k, p in figure["values"].items()})


@pytest.mark.parametrize("figure", FIGURES, ids=lambda f: f"{f['doc']}: {f['text'][:40]}")
def test_the_doc_quotes_its_source(figure):
    doc = flat((ROOT / figure["doc"]).read_text())
    assert flat(quoted(figure)) in doc, f"{figure['doc']} does not say: {quoted(figure)}"


def test_a_changed_source_value_fails_the_check():
    """The check itself: one value of a source changed by a rounding step no longer matches."""
    figure = next(f for f in FIGURES if "PRISM closes" in f["text"])
    source = json.loads((ROOT / figure["source"]).read_text())
    source["headline"]["summary"]["gap_share"]["mean"] += 0.01
    changed = figure["text"].format(**{k: value_at(source, p) for k, p in figure["values"].items()})
    assert flat(changed) not in flat((ROOT / figure["doc"]).read_text())
