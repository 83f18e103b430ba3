"""The surface facts of a sentence that embeddings blur: numbers, names, negation, direction.

Sentence embeddings place "X raises Y by 30%" next to "X lowers Y by 13%"; these checks catch
what changed. Each is a cheap regex pass, so a sentence costs microseconds, not a model call."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Lexicon", "lexicon", "numbers_agree"]

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'\-]*[A-Za-z0-9]|[A-Za-z]")
# Not inside a code ("IL-6", "COVID-19", "H1N1"); a unit may follow a hyphen ("5-year", "2-fold").
_NUMBER = re.compile(r"(?<![\w.\-])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?!\w|-\d)")
_SPELLED = {
    "one": 1.0, "two": 2.0, "three": 3.0, "four": 4.0, "five": 5.0, "six": 6.0, "seven": 7.0,
    "eight": 8.0, "nine": 9.0, "ten": 10.0, "twice": 2.0, "double": 2.0, "half": 0.5,
    "dozen": 12.0, "hundred": 100.0, "thousand": 1000.0, "million": 1e6, "billion": 1e9,
}  # fmt: skip
_NEGATIONS = frozenset(
    "not no never none neither nor cannot without unable fail fails failed lack lacks lacking"
    " absence absent".split()
)
_UP = ("increas", "higher", "greater", "elevat", "enhanc", "promot", "improv", "upregul",
       "up-regul", "acceler", "augment", "larger", "stimulat", "activat", "rais",
       "gain")  # fmt: skip
_DOWN = ("decreas", "lower", "reduc", "declin", "diminish", "inhibit", "suppress", "impair",
         "downregul", "down-regul", "attenuat", "smaller", "fewer", "less", "loss",
         "block")  # fmt: skip
_STOPWORDS = frozenset(
    "a an the and or but if then than that this these those there their them they it its is are"
    " was were be been being has have had do does did of in on at to for from by with as into onto"
    " about over under between through during after before among within which who whom whose what"
    " when where why how all any both each few more most other some such only own same so too very"
    " can could may might must shall should will would also not no nor our we us you your he she"
    " his her i me my one per via upon while whereas et al eg ie".split()
)
_SCOPE = 4  # words after "not" that it negates, roughly: "did not reduce the mortality"
_STEM = 5  # a prefix this long matches "increases" with "increased" and "mortality" with "mortal"


@dataclass(frozen=True)
class Lexicon:
    """What the checks compare: content stems, numbers, names, and the sentence's polarity."""

    stems: frozenset[str]
    numbers: tuple[tuple[float, int], ...]  # (value, decimals written)
    entities: frozenset[str]  # lower-cased
    negated: bool
    negated_stems: frozenset[str]  # content stems within a few words after a negation cue
    up: bool
    down: bool
    up_stems: frozenset[str]  # content stems near a word that says up: "raised blood pressure"
    down_stems: frozenset[str]


def lexicon(text: str) -> Lexicon:
    """The facts of ``text`` the mismatch checks compare."""
    words = _WORD.findall(text)
    lower = [w.lower() for w in words]
    return Lexicon(
        stems=frozenset(w[:_STEM] for w in lower if w not in _STOPWORDS and len(w) > 2),
        numbers=tuple(_numbers(text, lower)),
        entities=frozenset(w.lower() for i, w in enumerate(words) if _is_name(w, i == 0)),
        negated=any(map(_negation, lower)),
        negated_stems=_near(lower, _negation, 0),
        up=any(w.startswith(_UP) for w in lower),
        down=any(w.startswith(_DOWN) for w in lower),
        up_stems=_near(lower, lambda w: w.startswith(_UP), _SCOPE),
        down_stems=_near(lower, lambda w: w.startswith(_DOWN), _SCOPE),
    )


def numbers_agree(claimed: tuple[float, int], written: tuple[float, int]) -> bool:
    """Whether a number in a claim states one in the evidence, allowing the claim to round it
    ("35%" for "34.8%") but not to add precision."""
    value, decimals = claimed
    return abs(round(written[0], decimals) - value) < 10.0**-decimals / 2 + 1e-9


def _near(lower: list[str], cue: Callable[[str], bool], before: int) -> frozenset[str]:
    """Content stems up to ``before`` words before and ``_SCOPE`` words after each cue."""
    return frozenset(
        w[:_STEM]
        for i, word in enumerate(lower)
        if cue(word)
        for w in lower[max(0, i - before) : i] + lower[i + 1 : i + 1 + _SCOPE]
        if w not in _STOPWORDS and len(w) > 2
    )


def _negation(word: str) -> bool:
    return word in _NEGATIONS or word.endswith("n't")


def _numbers(text: str, lower: list[str]) -> list[tuple[float, int]]:
    found = [
        (float(whole.replace(",", "") + (fraction or "")), len(fraction) - 1 if fraction else 0)
        for whole, fraction in _NUMBER.findall(text)
    ]
    spelled = [part for w in lower for part in w.split("-")]  # "two-year" says two
    return found + [(_SPELLED[w], 0) for w in spelled if w in _SPELLED]


def _is_name(word: str, first: bool) -> bool:
    """Acronyms, gene and drug codes, and capitalised words inside a sentence: "TNF", "IL-6",
    "BRCA1", "Alzheimer's"."""
    has_digit = any(c.isdigit() for c in word)
    capitals = sum(c.isupper() for c in word)
    if has_digit and any(c.isalpha() for c in word):
        return True
    if capitals >= 2 or (capitals == 1 and not word[0].isupper()):
        return True
    return not first and word[0].isupper() and word.lower() not in _STOPWORDS
