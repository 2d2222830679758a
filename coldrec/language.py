"""Which script a catalogue is written in, which bundled encoder reads it, and word features
that work without spaces.

The rule (:data:`RULE`) is a character-class count, no language model: over the letters of the
texts (Unicode category L*, digits and punctuation ignored), the share written in a CJK script
(Han, kana, Hangul) or in another non-Latin script (Cyrillic, Greek, Arabic, Hebrew, Thai,
Devanagari...). When that share is at least :data:`NON_LATIN_SHARE` the catalogue is read by the
bundled multilingual encoder (Universal Sentence Encoder multilingual v3); otherwise by the bundled
all-MiniLM-L6-v2, which reads English best (BENCHMARKS.md, "Catalogues in other languages").

A Chinese title with a Latin brand ("ARMANI 阿玛尼 时尚方形男女情侣表AR0461") still counts as
Chinese: each Han character is a word-sized unit while a Latin word takes five or so letters, so
Han letters are weighted :data:`HAN_WEIGHT` when counted. Latin-script languages other than English
(German, French...) are not told apart from English by this test and get MiniLM.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: The two bundled encoders the rule chooses between.
MINILM = "minilm"
MULTILINGUAL = "multilingual"
CHOICES = (MINILM, MULTILINGUAL)

#: Name of the rule, shown with the choice.
RULE = "non-Latin letter share"
#: Catalogues whose (weighted) share of non-Latin letters is at least this get the multilingual
#: encoder. Chinese titles score 0.8-1.0 (JD: 0.93), English ones 0.0; a mixed English/Chinese
#: shop switches once about a third of its titles are Chinese.
NON_LATIN_SHARE = 0.3
#: A Han/kana/Hangul character counts as this many letters (about one Latin word).
HAN_WEIGHT = 3.0
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
    """Letter counts of a set of texts by script, and what the rule makes of them."""

    latin: int
    cjk: int
    other: int

    @property
    def non_latin_share(self) -> float:
        """Weighted share of non-Latin letters (0 when there are no letters)."""
        weighted = HAN_WEIGHT * self.cjk + self.other
        total = weighted + self.latin
        return weighted / total if total else 0.0

    @property
    def choice(self) -> str:
        """:data:`MULTILINGUAL` when the share reaches :data:`NON_LATIN_SHARE`, else :data:`MINILM`."""
        return MULTILINGUAL if self.non_latin_share >= NON_LATIN_SHARE else MINILM

    @property
    def reason(self) -> str:
        """One line for the page: the rule, the measured share and the threshold."""
        return (f"{RULE} {self.non_latin_share:.2f} (Han/kana/Hangul counted ×{HAN_WEIGHT:g}; "
                f"multilingual from {NON_LATIN_SHARE:.2f})")


def script_mix(texts: Iterable[str]) -> ScriptMix:
    """Count the letters of ``texts`` by script: Latin, CJK, other."""
    latin = cjk = other = 0
    for text in texts:
        if not isinstance(text, str):
            continue
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
    return ScriptMix(latin=latin, cjk=cjk, other=other)


def choose_encoder(texts: Sequence[str]) -> str:
    """The bundled encoder the rule picks for ``texts`` (:data:`MINILM` or :data:`MULTILINGUAL`)."""
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
    "CHOICES", "HAN_WEIGHT", "MINILM", "MULTILINGUAL", "NON_LATIN_SHARE", "RULE", "SAMPLE", "ScriptMix",
    "WordTokenizer", "choose_encoder", "has_cjk", "is_cjk", "script_mix", "words",
]
