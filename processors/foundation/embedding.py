"""Text embeddings for the semantic cache: a deterministic, dependency-free lexical embedder.

This is lexical similarity, not a neural embedding: two prompts score high when they share
words, word pairs and word fragments, so it matches rephrasings that keep most of their wording
("What is the capital of France?" / "what's the capital of france") and misses paraphrases that
share none. It also scores prompts that differ in one decisive word ("... of Germany?") high,
which is why the cache's default threshold is strict.

Each text becomes a signed hashed feature vector (the hashing trick): after NFKC, lower-casing
and splitting on anything but letters and digits, its features are the words, adjacent word
pairs and each word's character 3-, 4- and 5-grams (word padded with spaces, fastText style;
pairs already carry what crosses words). Weights are sublinear in term frequency, each family is
scaled to a fixed share of the vector so a long text's many fragments cannot drown its words,
and the whole is L2-normalised. Hashes are CRC-32, so a text has the same vector in every
process, replica and Python version.

An embedding-provider backend can replace ``embed`` behind the same signature: the semantic
store only needs float vectors of one fixed dimension and compares them by ``cosine``."""

from __future__ import annotations

import math
import re
import struct
import sys
import unicodedata
from array import array
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from itertools import chain, pairwise, repeat
from operator import mul
from typing import TypeAlias
from zlib import crc32

__all__ = ["DIMENSION", "Vector", "cosine", "embed", "from_bytes", "to_bytes"]

DIMENSION = 512
Vector: TypeAlias = "array[float]"  # float32 ("f"); embed's are DIMENSION long, unit or zero

_WORD = re.compile(r"[^\W_]+")  # letters and digits: punctuation, spaces and "_" split words
_FRAGMENT_SIZES = (3, 4, 5)
_WORD_SEED, _PAIR_SEED, _FRAGMENT_SEED = 0x5EED_0001, 0x5EED_0002, 0x5EED_0003
_WORD_SHARE, _PAIR_SHARE, _FRAGMENT_SHARE = 0.35, 0.15, 0.50  # of the squared norm
_SIGN = 1 << 31  # the hash bit that picks a feature's sign, so collisions cancel on average
_BUCKET = DIMENSION - 1  # the low hash bits that pick its bucket (DIMENSION is a power of 2)
_SIMILARITY_DIGITS = 6  # float32 vectors carry about 7 significant digits


class _Sublinear(dict[int, float]):
    """1 + ln(tf), memoised: a text has few distinct term frequencies."""

    def __missing__(self, tf: int) -> float:
        weight = self[tf] = 1.0 + math.log(tf)
        return weight


_TF = _Sublinear()


def embed(text: str) -> Vector:
    """The unit-length feature vector of ``text``; all zeros when it has no letters or digits,
    which is then similar to nothing."""
    words = _WORD.findall(unicodedata.normalize("NFKC", text).lower())
    if not words:
        return array("f", bytes(4 * DIMENSION))
    word_hashes, fragment_hashes = zip(*map(_word_features, words), strict=True)
    pair_hashes = [crc32(f"{a} {b}".encode(), _PAIR_SEED) for a, b in pairwise(words)]
    vector = [0.0] * DIMENSION
    _add_family(vector, Counter(word_hashes), _WORD_SHARE)
    _add_family(vector, Counter(pair_hashes), _PAIR_SHARE)
    _add_family(vector, Counter(chain.from_iterable(fragment_hashes)), _FRAGMENT_SHARE)
    norm = math.hypot(*vector)
    return array("f", struct.pack(f"{DIMENSION}f", *map(mul, vector, repeat(1 / norm))))


@lru_cache(maxsize=16_384)
def _word_features(word: str) -> tuple[int, tuple[int, ...]]:
    """A word's hash and its fragments' hashes; memoised because prompts reuse a small
    vocabulary, which makes hashing the cheap part of ``embed``."""
    padded = f" {word} "
    fragments = (
        padded[start : start + size]
        for size in _FRAGMENT_SIZES
        for start in range(len(padded) - size + 1)
    )
    return crc32(word.encode(), _WORD_SEED), tuple(
        crc32(fragment.encode(), _FRAGMENT_SEED) for fragment in fragments
    )


def _add_family(vector: list[float], counts: Counter[int], share: float) -> None:
    """Add one family of hashed features with sublinear weights, scaled so that on its own (no
    collisions) it would have squared norm ``share``."""
    if not counts:  # a one-word text has no pairs
        return
    weights = list(map(_TF.__getitem__, counts.values()))
    scale = math.sqrt(share) / math.hypot(*weights)
    for feature, weight in zip(counts, weights, strict=True):
        if feature & _SIGN:
            vector[feature & _BUCKET] += weight * scale
        else:
            vector[feature & _BUCKET] -= weight * scale


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity in [-1, 1], rounded to float32 precision so that equal vectors score
    exactly 1.0; 0.0 when either vector is zero. Raises ``ValueError`` on a dimension
    mismatch."""
    if len(a) != len(b):
        raise ValueError(f"cannot compare vectors of dimension {len(a)} and {len(b)}")
    norms = math.hypot(*a) * math.hypot(*b)
    if not norms:
        return 0.0
    dot: float = sum(map(mul, a, b))
    return round(dot / norms, _SIMILARITY_DIGITS)


def to_bytes(vector: Sequence[float]) -> bytes:
    """Little-endian float32, 4 bytes a dimension, whatever the machine's byte order, so every
    replica reads what another wrote."""
    return struct.pack(f"<{len(vector)}f", *vector)


def from_bytes(data: bytes) -> Vector:
    """The vector ``to_bytes`` wrote. Raises ``ValueError`` when ``data`` is not whole floats."""
    vector = array("f", data)
    if sys.byteorder == "big":
        vector.byteswap()
    return vector
