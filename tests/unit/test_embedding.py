"""The lexical embedder: rephrasings that keep their wording score high, unrelated prompts low,
and a text has the same vector in every process (the semantic cache shares them via Redis)."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest

from processors.foundation.embedding import DIMENSION, cosine, embed, from_bytes, to_bytes

REPHRASINGS = [
    ("What is the capital of France?", "what's the capital of france"),
    ("How do I reverse a list in Python?", "How can I reverse a list in Python?"),
    ("Translate 'good morning' into Spanish", "translate good morning to Spanish"),
    ("Write a haiku about autumn leaves", "write a haiku about the autumn leaves"),
]
UNRELATED = [
    ("What is the capital of France?", "How do I reverse a list in Python?"),
    ("Explain the difference between TCP and UDP.", "What is the best recipe for banana bread?"),
    ("The quick brown fox jumps over the lazy dog", "Please list the prime numbers below 100"),
    ("Summarize this article about climate change.", "Write a haiku about autumn leaves"),
]
SAMPLES = [text for pair in REPHRASINGS + UNRELATED for text in pair]


def similarity(a: str, b: str) -> float:
    return cosine(embed(a), embed(b))


@pytest.mark.parametrize(("a", "b"), REPHRASINGS)
def test_rephrasings_sharing_their_wording_score_high(a: str, b: str) -> None:
    assert similarity(a, b) > 0.8


@pytest.mark.parametrize(("a", "b"), UNRELATED)
def test_unrelated_prompts_score_low(a: str, b: str) -> None:
    assert similarity(a, b) < 0.4


@pytest.mark.parametrize("text", SAMPLES)
def test_a_text_is_identical_to_itself(text: str) -> None:
    assert similarity(text, text) == 1.0


def test_case_width_and_punctuation_do_not_matter() -> None:
    fullwidth_capital = "\uff23\uff21\uff30\uff29\uff34\uff21\uff2c"
    assert similarity(f"{fullwidth_capital} of France?!", "capital of france") == 1.0


def test_vectors_are_unit_length_of_the_fixed_dimension() -> None:
    vector = embed(SAMPLES[0])
    assert len(vector) == DIMENSION
    assert math.hypot(*vector) == pytest.approx(1.0, abs=1e-6)


def test_text_without_words_is_the_zero_vector_and_similar_to_nothing() -> None:
    assert not any(embed("?! ..."))
    assert similarity("?! ...", "?! ...") == 0.0
    assert similarity("?! ...", SAMPLES[0]) == 0.0


def test_vectors_are_the_same_in_another_process() -> None:
    """Another interpreter with another string-hash seed computes byte-identical vectors."""
    script = (
        "import sys; from processors.foundation.embedding import embed, to_bytes; "
        "sys.stdout.write(b''.join(to_bytes(embed(t)) for t in sys.argv[1:]).hex())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    run = subprocess.run(
        [sys.executable, "-c", script, *SAMPLES], env=env, capture_output=True, check=True
    )
    assert bytes.fromhex(run.stdout.decode()) == b"".join(to_bytes(embed(t)) for t in SAMPLES)


def test_bytes_round_trip_as_little_endian_float32() -> None:
    vector = embed(SAMPLES[0])
    data = to_bytes(vector)
    assert len(data) == 4 * DIMENSION
    assert from_bytes(data) == vector
    assert to_bytes([1.0, -2.0]) == bytes.fromhex("0000803f000000c0")


def test_misshapen_input_is_refused() -> None:
    with pytest.raises(ValueError):
        from_bytes(b"\x00\x00\x80")
    with pytest.raises(ValueError, match="dimension"):
        cosine([1.0, 0.0], [1.0])
