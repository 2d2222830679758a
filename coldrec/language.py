"""Which script a catalogue is written in, which bundled encoder reads it, and word features
that work without spaces.

The rule (:data:`RULE`) is a character-class count, no language model. A title is *non-Latin*
when at least :data:`NON_LATIN_SHARE` of its letters (Unicode category L*; digits and punctuation
ignored) are in a CJK script (Han, kana, Hangul) or another non-Latin script (Cyrillic, Greek,
Arabic, Hebrew, Thai, Devanagari...), a Han/kana/Hangul character weighted :data:`HAN_WEIGHT`
(about one Latin word: "ARMANI 阿玛尼 时尚方形男女情侣表AR0461" is non-Latin). Over the catalogue's
titles, the share of non-Latin ones picks the encoder (BENCHMARKS.md, "Catalogues in other languages"):

- below :data:`MIXED_FROM` (5%): **MiniLM** (reads English best; the English default);
- :data:`MIXED_TO` (95%) or more: the **multilingual** encoder (Universal Sentence Encoder
  multilingual v3);
- in between, a mixed catalogue: **both**, their vectors concatenated (MiniLM weighted
  :data:`BOTH_MINILM_WEIGHT`), which beat each single model on both parts of a mixed file.

Latin-script languages other than English (German, French...) are not told apart from English by
this test and get MiniLM.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: The bundled encoders the rule chooses between.
MINILM = "minilm"
MULTILINGUAL = "multilingual"
BOTH = "both"
CHOICES = (MINILM, MULTILINGUAL, BOTH)

#: Name of the rule, shown with the choice.
RULE = "non-Latin title share"
#: A title is non-Latin when this share of its (weighted) letters is. JD titles: 99.5% are.
NON_LATIN_SHARE = 0.3
#: A Han/kana/Hangul character counts as this many letters (about one Latin word).
HAN_WEIGHT = 3.0
#: From this share of non-Latin titles the catalogue is mixed (both encoders) ...
MIXED_FROM = 0.05
#: ... and from this share it is non-Latin (the multilingual encoder alone).
MIXED_TO = 0.95
#: Weight of MiniLM's cosine in the "both" encoder (USE's is 1 minus it): 0.3 measured better
#: than 0.5 on the Chinese part of mixed files and equal on the English part.
BOTH_MINILM_WEIGHT = 0.3
#: At most this many texts are read to decide (the share of a random sample is as good).
SAMPLE = 5_000

# CJK ideographs (with extensions and compatibility forms), kana, Hangul syllables and jamo, bopomofo.
_CJK_CLASS = (
    "\u2e80-\u2fdf\u3005\u3007\u3021-\u3029\u3040-\u30ff\u3100-\u312f\u3130-\u318f\u31a0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f"
)
_CJK_RUN = re.compile(f"[{_CJK_CLASS}]+")
_CJK_CHAR = re.compile(f"[{_CJK_CLASS}]")


def is_cjk(char: str) -> bool:
    """Whether ``char`` is a Han, kana or Hangul character."""
    return bool(_CJK_CHAR.fullmatch(char))


@dataclass(frozen=True)
class ScriptMix:
    """Letter counts of a set of texts by script, how many of the texts are non-Latin, and what the
    rule makes of them."""

    latin: int
    cjk: int
    other: int
    #: Texts with at least one letter, and how many of them are non-Latin.
    titles: int = 0
    non_latin_titles: int = 0

    @property
    def non_latin_share(self) -> float:
        """Weighted share of non-Latin letters (0 when there are no letters)."""
        weighted = HAN_WEIGHT * self.cjk + self.other
        total = weighted + self.latin
        return weighted / total if total else 0.0

    @property
    def non_latin_title_share(self) -> float:
        """Share of the texts that are non-Latin (0 when there are none)."""
        return self.non_latin_titles / self.titles if self.titles else 0.0

    @property
    def choice(self) -> str:
        """:data:`MINILM`, :data:`BOTH` or :data:`MULTILINGUAL` by the non-Latin title share."""
        share = self.non_latin_title_share
        if share < MIXED_FROM:
            return MINILM
        return MULTILINGUAL if share >= MIXED_TO else BOTH

    @property
    def reason(self) -> str:
        """One line for the page: the rule, the measured share and the thresholds."""
        return (f"{RULE} {self.non_latin_title_share:.2f}: MiniLM below {MIXED_FROM:.2f}, multilingual from "
                f"{MIXED_TO:.2f}, both in between")


def _counts(text: str) -> tuple[int, int, int]:
    latin = cjk = other = 0
    for char in text:
        if char.isascii():
            if char.isalpha():
                latin += 1
            continue
        if not unicodedata.category(char).startswith("L"):
            continue
        if _CJK_CHAR.match(char):
            cjk += 1
        elif "LATIN" in unicodedata.name(char, ""):
            latin += 1
        else:
            other += 1
    return latin, cjk, other


def script_mix(texts: Iterable[str]) -> ScriptMix:
    """Count the letters of ``texts`` by script (Latin, CJK, other) and the non-Latin texts."""
    latin = cjk = other = titles = non_latin = 0
    for text in texts:
        if not isinstance(text, str):
            continue
        a, b, c = _counts(text)
        latin, cjk, other = latin + a, cjk + b, other + c
        if a + b + c:
            titles += 1
            weighted = HAN_WEIGHT * b + c
            non_latin += weighted >= NON_LATIN_SHARE * (weighted + a)
    return ScriptMix(latin=latin, cjk=cjk, other=other, titles=titles, non_latin_titles=non_latin)


def choose_encoder(texts: Sequence[str]) -> str:
    """The bundled encoder the rule picks for ``texts`` (:data:`MINILM`, :data:`BOTH` or :data:`MULTILINGUAL`)."""
    return script_mix(texts).choice


# -- word features without spaces ----------------------------------------------------------------
#: scikit-learn's default word pattern (two or more word characters).
WORD_PATTERN = r"(?u)\b\w\w+\b"


def words(text: str, pattern: str = WORD_PATTERN, lowercase: bool = True) -> list[str]:
    """Word tokens of ``text`` in order: outside CJK runs, the matches of ``pattern`` (as
    scikit-learn's vectorizers find them); each CJK run becomes its overlapping character
    bigrams (a single character stays one token), because Chinese and Japanese are written
    without spaces. Text without CJK characters gets exactly the tokens ``pattern`` gives."""
    if lowercase:
        text = text.lower()
    regex = _compiled(pattern)
    out: list[str] = []
    start = 0
    for run in _CJK_RUN.finditer(text):
        out.extend(regex.findall(text[start : run.start()]))
        chars = run.group()
        out.extend([chars] if len(chars) == 1 else [chars[i : i + 2] for i in range(len(chars) - 1)])
        start = run.end()
    out.extend(regex.findall(text[start:]))
    return out


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    if pattern not in _PATTERNS:
        _PATTERNS[pattern] = re.compile(pattern)
    return _PATTERNS[pattern]


class WordTokenizer:
    """:func:`words` as a picklable ``tokenizer=`` for scikit-learn vectorizers (which lowercase first)."""

    def __init__(self, pattern: str = WORD_PATTERN) -> None:
        self.pattern = pattern

    def __call__(self, text: str) -> list[str]:
        return words(text, self.pattern, lowercase=False)


def has_cjk(text: str) -> bool:
    """Whether ``text`` holds a Han, kana or Hangul character."""
    return bool(_CJK_CHAR.search(text or ""))


__all__ = [
    "BOTH", "BOTH_MINILM_WEIGHT", "CHOICES", "HAN_WEIGHT", "MIXED_FROM", "MIXED_TO", "MINILM", "MULTILINGUAL", "NON_LATIN_SHARE", "RULE", "SAMPLE", "ScriptMix",
    "WordTokenizer", "choose_encoder", "has_cjk", "is_cjk", "script_mix", "words",
]
