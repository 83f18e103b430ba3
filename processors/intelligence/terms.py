"""Text into the terms BM25 counts (pure): NFKC, lower case, words of letters and digits,
English stop words out, Snowball (Porter 2) stems, as Lucene's English analyzer does, which
the published SciFact BM25 baselines use. Documents and queries go through the same function."""

from __future__ import annotations

import re
import unicodedata
from functools import cache

import Stemmer  # type: ignore[import-not-found]  # PyStemmer ships no type hints

__all__ = ["terms"]

_WORD = re.compile(r"[^\W_]+")
# Lucene's English stop words (EnglishAnalyzer.ENGLISH_STOP_WORDS_SET).
_STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their "
    "then there these they this to was will with".split()
)


@cache
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def terms(text: str) -> list[str]:
    """Each word's stem, in order, repeated as often as it occurs."""
    words = _WORD.findall(unicodedata.normalize("NFKC", text).lower())
    return list(_stemmer().stemWords([w for w in words if w not in _STOP_WORDS]))
