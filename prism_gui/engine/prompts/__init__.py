"""Diversified Prompt Engineering (DPE).

1. *Semantic disambiguation*: each class name becomes an unambiguous phrase: from timm's
   WordNet definitions for ImageNet classes ("crane" -> "crane, large long-necked wading
   bird"), from a user description, or the name itself.
2. *Content and style diversification*: attribute banks (editable JSON files, see
   ``resources/prompt_banks/``) are expanded into N prompts per class with balanced coverage of
   attribute values, no duplicates, seeded.
3. *Precision-aware diversity*: optionally each prompt is scored by the mean teacher energy of
   a few pilot samples, and prompts whose samples fall outside the teacher's distribution are
   dropped or down-weighted; the scores stay visible on every prompt.

A :class:`PromptSet` is data: saved with the project, importable and exportable as JSON or CSV.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prism_gui.engine.registry import Registry
from prism_gui.resources import resource_path

EXPANDERS = Registry("prompt expander")


class PromptError(ValueError):
    """A prompt file or bank is malformed; the message says where and how to fix it."""


@dataclasses.dataclass
class Prompt:
    class_index: int
    text: str
    negative: str = ""
    weight: float = 1.0
    score: float | None = None  # mean pilot energy (lower = closer to the teacher's data)
    source: str = "dpe"


class PromptIssue(str):
    """One problem of a prompt set: the text a user reads, and a ``code`` that code acts on
    (``class-index``, ``empty``, ``too-long``, ``unknown-words``, ``no-active-prompt``)."""

    code: str

    def __new__(cls, code: str, text: str) -> PromptIssue:
        issue = super().__new__(cls, text)
        issue.code = code
        return issue


# what stops a generation (the others are warnings: unknown words still condition, a class without
# prompts is named by the generation's plan)
BLOCKING_ISSUES = frozenset({"empty", "too-long"})


@dataclasses.dataclass
class PromptSet:
    class_names: list[str]
    prompts: list[Prompt] = dataclasses.field(default_factory=list)
    meta: dict = dataclasses.field(default_factory=dict)
    source: str = dataclasses.field(default="", compare=False)  # the file it was loaded from (for messages)

    # ---- queries
    def for_class(self, k: int) -> list[Prompt]:
        return [p for p in self.prompts if p.class_index == k]

    def by_class(self) -> list[list[Prompt]]:
        """The prompts of every class, in one pass (1,000 classes x 40,000 prompts stays fast)."""
        out: list[list[Prompt]] = [[] for _ in self.class_names]
        for p in self.prompts:
            if 0 <= p.class_index < len(out):
                out[p.class_index].append(p)
        return out

    def count_per_class(self) -> list[int]:
        return [len(ps) for ps in self.by_class()]

    def counts(self) -> dict[str, int]:
        """Prompts per class name (names that two classes share are summed: see count_per_class)."""
        out: dict[str, int] = {}
        for name, n in zip(self.class_names, self.count_per_class(), strict=True):
            out[name] = out.get(name, 0) + n
        return out

    def active(self) -> list[Prompt]:
        return [p for p in self.prompts if p.weight > 0]

    # ---- validation
    def validate(self, tokenizer=None) -> list[PromptIssue]:
        """Problems a user must see: empty prompts, prompts longer than the tokenizer's limit
        (reported, never silently truncated), classes without prompts, unknown classes.  Each is
        a :class:`PromptIssue`: its text for the user, its ``code`` for the code that acts on it."""
        issues = []
        for i, p in enumerate(self.prompts):
            if not (0 <= p.class_index < len(self.class_names)):
                issues.append(PromptIssue("class-index", f"prompt {i + 1}: class index {p.class_index} is outside "
                                                         f"0..{len(self.class_names) - 1}"))
            if not p.text.strip():
                issues.append(PromptIssue("empty", f"prompt {i + 1} ({self._name(p)}): empty prompt"))
                continue
            if tokenizer is not None:
                ids = tokenizer(p.text).input_ids
                n = len(ids)
                if n > tokenizer.model_max_length:
                    issues.append(PromptIssue("too-long", f"prompt {i + 1} ({self._name(p)}): {n} tokens, over the "
                                                          f"generator's limit of {tokenizer.model_max_length}; "
                                                          "shorten it"))
                unk = getattr(tokenizer, "unk_token_id", None)
                if unk is not None and unk != getattr(tokenizer, "eos_token_id", None) and unk in ids:
                    issues.append(PromptIssue("unknown-words", f"prompt {i + 1} ({self._name(p)}): words unknown to "
                                                               f"the generator in '{p.text}'"))
        has_active = {p.class_index for p in self.prompts if p.weight > 0}
        for k, name in enumerate(self.class_names):
            if k not in has_active:
                issues.append(PromptIssue("no-active-prompt", f"class '{name}' has no active prompt"))
        return issues

    def _name(self, p: Prompt) -> str:
        return self.class_names[p.class_index] if 0 <= p.class_index < len(self.class_names) else "?"

    # ---- I/O
    def to_json(self) -> str:
        """One prompt per line (readable, diffable), encoded by json's C encoder: 40,000 prompts
        take tens of milliseconds, so the app can save after every edit."""
        head = json.dumps({"class_names": self.class_names, "meta": self.meta}, indent=1)
        # one C-encoder call; records are then put on lines of their own ('}, {"class_index"' cannot
        # occur inside a string, where the quote would be escaped)
        body = json.dumps([vars(p) for p in self.prompts], ensure_ascii=False)[1:-1]
        lines = body.replace('}, {"class_index"', '},\n{"class_index"')
        return head[:-2] + ',\n "prompts": [\n' + lines + "\n ]\n}"

    @classmethod
    def from_json(cls, text: str, source: str = "prompts") -> PromptSet:
        try:
            obj = json.loads(text)
            fields = {f.name for f in dataclasses.fields(Prompt)}
            prompts = [Prompt(**{k: v for k, v in p.items() if k in fields}) for p in obj["prompts"]]
            return cls(class_names=list(obj["class_names"]), prompts=prompts, meta=obj.get("meta", {}))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
            raise PromptError(f"{source}: not a PRISM prompt file ({type(e).__name__}: {e}). Expected JSON "
                              "with 'class_names' and 'prompts' [{class_index, text, ...}].") from e

    def check(self, source: str = "prompts", class_names: Sequence[str] | None = None, *, rows: bool = True) -> None:
        """Refuse what no generator can use, naming the row and the fix: prompts for other classes
        than ``class_names`` (the teacher's), and with ``rows`` every prompt that is empty, over
        :data:`MAX_PROMPT_CHARS` long, holds control characters or names an unknown class.  The
        app's own project file is read with ``rows=False`` (a prompt being edited may be empty)."""
        if not all(isinstance(n, str) for n in self.class_names):
            raise PromptError(f"{source}: 'class_names' must be a list of names.")
        if class_names is not None and list(class_names) and list(self.class_names) != list(class_names):
            theirs, ours = list(self.class_names), list(class_names)
            diff = (f"{len(theirs)} classes, the teacher has {len(ours)}" if len(theirs) != len(ours) else
                    next(f"class {k} is '{a}' in the file but '{b}' for the teacher"
                         for k, (a, b) in enumerate(zip(theirs, ours, strict=True)) if a != b))
            raise PromptError(f"{source}: the prompts were made for other classes ({diff}). Make the prompts for "
                              "this teacher (Prompts > Expand, or `prism prompts`), or load its teacher first.")
        n = len(self.class_names)
        for i, p in enumerate(self.prompts, start=1):
            if isinstance(p.class_index, bool) or not isinstance(p.class_index, int) or not 0 <= p.class_index < n:
                raise PromptError(f"{source}, prompt {i}: unknown class {p.class_index!r}; a class index must be "
                                  f"0..{n - 1} (the file's classes). Fix or delete the row.")
            if not isinstance(p.text, str) or not isinstance(p.negative, str):
                raise PromptError(f"{source}, prompt {i}: the text must be a string, not {p.text!r}.")
            if isinstance(p.weight, bool) or not isinstance(p.weight, (int, float)) or not p.weight >= 0 or \
                    p.weight == float("inf"):
                raise PromptError(f"{source}, prompt {i}: weight {p.weight!r} must be a number >= 0 (0 switches the "
                                  "prompt off).")
            if not rows:
                continue
            problem = prompt_text_problem(p.text) or (prompt_text_problem(p.negative, "negative prompt")
                                                      if p.negative else None)
            if problem:
                raise PromptError(f"{source}, prompt {i} ({self.class_names[p.class_index]}): {problem}")

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["class", "text", "negative", "weight", "score", "source"])
        for p in self.prompts:
            w.writerow([self.class_names[p.class_index], p.text, p.negative, p.weight,
                        "" if p.score is None else p.score, p.source])
        return buf.getvalue()

    @classmethod
    def from_csv(cls, text: str, class_names: Sequence[str], source: str = "prompts.csv") -> PromptSet:
        """CSV with a header; columns ``class`` (name or index) and ``text`` are required."""
        reader = csv.DictReader(io.StringIO(text))
        rows = []
        for r in reader:
            r["_line"] = reader.line_num
            rows.append(r)
        if not rows or "class" not in rows[0] or "text" not in rows[0]:
            raise PromptError(f"{source}: needs a header with at least the columns 'class' and 'text'.")
        index = {n: i for i, n in enumerate(class_names)}
        prompts = []
        for r in rows:
            line = r["_line"]
            c = (r["class"] or "").strip()
            k = index.get(c, int(c) if c.isdigit() else None)
            if k is None or not (0 <= k < len(class_names)):
                raise PromptError(f"{source}, line {line}: unknown class '{c}'; use one of the teacher's class "
                                  "names or an index.")
            try:
                score = r.get("score") or ""
                prompts.append(Prompt(k, r["text"] or "", r.get("negative") or "", float(r.get("weight") or 1.0),
                                      float(score) if score else None, r.get("source") or "user"))
            except ValueError as e:
                raise PromptError(f"{source}, line {line}: {e}; 'weight' and 'score' must be numbers.") from e
        return cls(class_names=list(class_names), prompts=prompts)

    def save(self, path: str | Path) -> None:
        from prism_gui.engine.data.files import atomic_write_text

        path = Path(path)
        atomic_write_text(path, self.to_csv() if path.suffix.lower() == ".csv" else self.to_json())

    @classmethod
    def load(cls, path: str | Path, class_names: Sequence[str] | None = None, *, check_rows: bool = True,
             match_classes: bool = False) -> PromptSet:
        """A prompt file (PRISM JSON, or CSV read with the teacher's ``class_names``), checked (see
        :meth:`check`) row by row unless ``check_rows`` is False; with ``match_classes``, a JSON file
        made for other classes than ``class_names`` is refused too."""
        from prism_gui.engine.specs import read_text_file

        path = Path(path)
        if not path.is_file():
            raise PromptError(f"Prompt file '{path}' " + ("is a folder: give a .json or .csv prompt file."
                                                           if path.is_dir() else "does not exist."))
        text = read_text_file(path, "Prompt file", PromptError)
        if not text.strip():
            raise PromptError(f"Prompt file '{path}' is empty: make prompts with Prompts > Expand or `prism prompts`, "
                              "or write a CSV with the columns class,text.")
        if path.suffix.lower() == ".csv":
            if class_names is None:
                raise PromptError(f"{path}: a CSV prompt file needs the teacher's class names to be read.")
            ps = cls.from_csv(text, class_names, str(path))
        else:
            ps = cls.from_json(text, str(path))
        ps.check(str(path), class_names if match_classes else None, rows=check_rows)
        ps.source = str(path)
        return ps


MAX_PROMPT_CHARS = 1000  # far beyond any text encoder: CLIP reads 77 tokens, about 300 characters


def prompt_text_problem(text: str, what: str = "prompt") -> str | None:
    """Why a prompt's text cannot be used, with the fix, or None."""
    import unicodedata

    if not text.strip():
        return f"the {what} is empty: write one or delete the row."
    if len(text) > MAX_PROMPT_CHARS:
        return (f"the {what} is {len(text):,} characters long, over the limit of {MAX_PROMPT_CHARS:,} (text encoders "
                "read 77 tokens, about 300 characters): shorten it.")
    bad = next((c for c in text if unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        return (f"the {what} holds a control character (U+{ord(bad):04X}) at position {text.index(bad) + 1}: remove it "
                "(a prompt is one line of plain text).")
    return None


# ----------------------------------------------------------------------------- banks
def load_bank(name_or_path: str | Path) -> dict:
    """A prompt bank by name (``digits``, ``natural``) or from a JSON file."""
    path = Path(str(name_or_path))
    if not path.suffix:
        path = resource_path("prompt_banks", f"{name_or_path}.json")
    if not path.exists():
        raise PromptError(f"Prompt bank '{name_or_path}' not found (looked for {path}). Built-in banks: "
                          + ", ".join(p.stem for p in resource_path("prompt_banks").glob("*.json")))
    try:
        bank = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise PromptError(f"Prompt bank {path} is not valid JSON: {e}") from e
    for key in ("template", "plain_template"):
        if "{class}" not in bank.get(key, ""):
            raise PromptError(f"Prompt bank {path}: '{key}' must contain '{{class}}'.")
    for kind in ("style", "content"):
        for axis, values in bank.get(kind, {}).items():
            if not values or not all(isinstance(v, str) and v.strip() for v in values):
                raise PromptError(f"Prompt bank {path}: {kind} axis '{axis}' needs a non-empty list of words.")
    return bank


# words after which a definition would stop mid-phrase
_DANGLING = {"a", "an", "the", "of", "and", "or", "with", "in", "on", "to", "for", "by", "from", "that", "which",
             "as", "at", "into", "its", "their", "his", "her", "having", "used", "especially", "usually", "than",
             "but", "nor", "like", "some", "any", "e.g.", "esp.", "etc."}
# words that start a modifier after the head noun phrase: a good place to stop a short definition
_BOUNDARY = {"that", "which", "who", "whose", "where", "having", "with", "noted", "used", "found", "native",
             "especially", "esp.", "usually", "often", "typically", "resembling", "related", "made", "sometimes",
             "formerly", "widely", "chiefly", "mostly"}


def short_definition(description: str, max_words: int = 16) -> str:
    """The head of a WordNet-style gloss ("name: definition; more"), cut at a phrase boundary:
    the first clause, stopped before a trailing modifier ("... noted for ..."), never ending on a
    preposition, article or conjunction."""
    _head, _, definition = description.partition(":")
    d = (definition or description).split(";")[0].strip()
    clause = re.split(r",|\(|\s-\s|--", d)[0].strip()
    words = clause.split()
    if len(words) > 4:  # stop before the first modifier once a head phrase is there
        for i in range(3, len(words)):
            w = words[i].lower()
            if w in _BOUNDARY:
                words = words[:i]
                while len(words) > 3 and words[-1].lower().endswith("ed"):  # "mammal covered [with ...]"
                    words.pop()
                break
    if len(words) > max_words:  # still long: cut at the last "and"/"or" boundary within the limit
        cut = max((i for i in range(3, max_words) if words[i].lower() in ("and", "or", "of")), default=max_words)
        words = words[:cut]
    while words and words[-1].lower().strip(".,") in _DANGLING:
        words.pop()
    return " ".join(words).rstrip(".,")


def class_phrases(class_names: Sequence[str], descriptions: Sequence[str] | None = None, mode: str = "name",
                  user: dict[str, str] | None = None, max_words: int = 16) -> list[str]:
    """Semantic disambiguation: one unambiguous phrase per class."""
    user = user or {}
    out = []
    for k, name in enumerate(class_names):
        if name in user and user[name].strip():
            out.append(user[name].strip())
            continue
        if mode == "definition" and descriptions is not None and descriptions[k]:
            short = short_definition(descriptions[k], max_words)
            head = name.split(",")[0].strip() or name  # the first lemma: "tench", not "tench, Tinca tinca"
            out.append(f"{head}, {short}" if short else head)
        else:
            out.append(name)
    return out


def plain_prompts(class_names: Sequence[str], bank: dict, phrases: Sequence[str] | None = None,
                  per_class: int = 1) -> PromptSet:
    """The DM-KD baseline: one class-name prompt per class (repeated ``per_class`` times as
    separate entries only if asked)."""
    phrases = list(phrases or class_names)
    ps = PromptSet(list(class_names), meta={"expander": "plain", "bank": bank.get("name")})
    for k, ph in enumerate(phrases):
        for _ in range(per_class):
            ps.prompts.append(Prompt(k, plain_text(bank, ph), source="plain"))
    return ps


@EXPANDERS.register("dpe", "content x style attribute banks with balanced coverage")
def expand(class_names: Sequence[str], bank: dict, per_class: int = 20, seed: int = 0,
           phrases: Sequence[str] | None = None, axes: Sequence[str] | None = None,
           include_plain: bool = True) -> PromptSet:
    """``per_class`` distinct prompts per class from the bank's enabled ``axes`` (all by
    default), each axis value used about equally often, seeded."""
    rng = np.random.default_rng(seed)
    phrases = list(phrases or class_names)
    all_axes = [("style", a, v) for a, v in bank.get("style", {}).items()] + \
               [("content", a, v) for a, v in bank.get("content", {}).items()]
    if axes is not None:
        unknown = set(axes) - {a for _, a, _ in all_axes}
        if unknown:
            raise PromptError(f"unknown bank axes {sorted(unknown)}; the bank has "
                              f"{[a for _, a, _ in all_axes]}")
        all_axes = [x for x in all_axes if x[1] in axes]
    p_mention = float(bank.get("mention_probability", 0.5))
    ps = PromptSet(list(class_names), meta={"expander": "dpe", "bank": bank.get("name"), "seed": seed,
                                            "per_class": per_class, "axes": [a for _, a, _ in all_axes]})
    for k, phrase in enumerate(phrases):
        usage = {a: np.zeros(len(v)) for _, a, v in all_axes}
        seen: set[str] = set()
        if include_plain:
            plain = plain_text(bank, phrase)
            ps.prompts.append(Prompt(k, plain, source="plain"))
            seen.add(plain)
        attempts = 0
        while len(seen) < per_class and attempts < per_class * 50:
            attempts += 1
            chosen = {}
            for kind, axis, _values in all_axes:
                if rng.random() < p_mention:
                    u = usage[axis]
                    least = np.flatnonzero(u == u.min())
                    chosen[axis] = (kind, int(rng.choice(least)))
            if not chosen and all_axes:
                kind, axis, values = all_axes[int(rng.integers(len(all_axes)))]
                chosen[axis] = (kind, int(rng.integers(len(values))))
            text = _compose(bank, phrase, chosen, all_axes)
            if text in seen:
                continue
            seen.add(text)
            for axis, (_, vi) in chosen.items():
                usage[axis][vi] += 1
            ps.prompts.append(Prompt(k, text, source="dpe"))
    return ps


_AN_EXCEPTIONS = ("uni", "use", "usu", "uti", "ure", "eu", "one", "once", "ouija", "ewe", "u-", "ufo")
_AN_SILENT_H = ("hour", "honest", "honor", "honour", "heir", "herb")


def article_for(word: str) -> str:
    """'a' or 'an' for the word that follows (by its sound, for the common cases)."""
    orig = word.lstrip("\"'(")
    w = orig.lower()
    if not w:
        return "a"
    if w[0].isdigit():
        digits = re.match(r"\d+", w).group(0)
        return "an" if digits[0] == "8" or digits in ("11", "18") else "a"
    head = re.split(r"[-\s]", orig)[0]
    if head.isupper() and 1 <= len(head) <= 4 and head.isalpha():  # letters and acronyms: "an F", "an MRI"
        return "an" if head[0].lower() in "aefhilmnorsx" and not head.lower().startswith("u") else "a"
    if w.startswith(_AN_SILENT_H):
        return "an"
    if w[0] in "aeiou" and not w.startswith(_AN_EXCEPTIONS):
        return "an"
    return "a"


def fix_articles(text: str) -> str:
    """Every standalone 'a'/'an' agrees with the word after it."""
    def repl(m):
        art, word = m.group(1), m.group(2)
        new = article_for(word)
        if art[0].isupper():
            new = new.capitalize()
        return f"{new} {word}"

    return re.sub(r"\b([Aa]n?) (\S+)", repl, text)


def plain_text(bank: dict, phrase: str) -> str:
    """The bank's plain (class-name) prompt for ``phrase``, articles agreeing."""
    return fix_articles(bank["plain_template"].replace("{class}", phrase))


def _compose(bank: dict, phrase: str, chosen: dict, all_axes) -> str:
    """Fill a bank template.  ``[...]`` marks an optional part, dropped when a slot in it is
    empty ("[a {style} of ]a {class}[, {content}]"); outside brackets an empty slot leaves no
    stray words or commas; articles agree with the words after them."""
    style = [values[chosen[a][1]] for kind, a, values in all_axes if kind == "style" and a in chosen]
    content = [values[chosen[a][1]] for kind, a, values in all_axes if kind == "content" and a in chosen]
    slots = {"{style}": " ".join(style), "{content}": ", ".join(content)}

    def optional(m):
        part = m.group(1)
        if any(k in part and not v for k, v in slots.items()):
            return ""
        return part

    text = re.sub(r"\[([^\]]*)\]", optional, bank["template"])
    text = text.replace("{class}", phrase)
    for k, v in slots.items():
        text = text.replace(k, v)
    text = " ".join(text.split()).replace(" ,", ",")
    while ",," in text or ", ," in text:
        text = text.replace(", ,", ",").replace(",,", ",")
    text = text.strip().strip(",").strip()
    if not style:  # an unbracketed empty style slot: "a of a tench" -> "a tench"
        text = re.sub(r"\b[Aa]n? of (an? |the )", r"\1", text)
    return fix_articles(text)


def coverage(ps: PromptSet, bank: dict) -> dict[str, dict[str, int]]:
    """How often each attribute value appears across the set (for the balance check/UI)."""
    out: dict[str, dict[str, int]] = {}
    for kind in ("style", "content"):
        for axis, values in bank.get(kind, {}).items():
            out[axis] = {v: sum(1 for p in ps.prompts if _mentions(p.text, v)) for v in values}
    return out


def _mentions(text: str, value: str) -> bool:
    import re

    return re.search(rf"(^|[\s,]){re.escape(value)}($|[\s,])", text) is not None




# the package's other parts, whose names are part of its API (their modules import the names above)
from prism_gui.engine.prompts.llm import llm_expand  # noqa: E402  (registers the "llm" expander)
from prism_gui.engine.prompts.scoring import PILOT_SEED_BASE, ScoreSpec, apply_scores, score_prompts  # noqa: E402

__all__ = ["BLOCKING_ISSUES", "EXPANDERS", "PILOT_SEED_BASE", "Prompt", "PromptError", "PromptIssue", "PromptSet",
           "ScoreSpec", "apply_scores", "expand", "llm_expand", "load_bank", "plain_prompts", "score_prompts"]
