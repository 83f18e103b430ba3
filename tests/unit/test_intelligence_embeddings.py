"""The local embedding model against vectors sentence-transformers computed for the same texts
(``tests/data/intelligence/minilm_reference.json``): the numpy encoder is the real model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from processors.intelligence.embeddings import local_embedder

_REFERENCE = json.loads(
    (Path(__file__).parent.parent / "data" / "intelligence" / "minilm_reference.json").read_text()
)


def test_vectors_match_sentence_transformers() -> None:
    vectors = local_embedder().embed(_REFERENCE["texts"])
    expected = np.array(_REFERENCE["vectors"], dtype=np.float32)
    assert vectors.shape == (3, 384)
    assert np.abs(vectors - expected).max() < 1e-5


def test_batches_of_mixed_lengths_give_each_text_its_own_vector() -> None:
    texts = _REFERENCE["texts"]
    alone = np.vstack([local_embedder().embed([text]) for text in texts])
    together = local_embedder().embed(texts)
    assert np.abs(alone - together).max() < 1e-5


def test_vectors_are_unit_length_and_similar_texts_are_closer() -> None:
    question, answer, unrelated = local_embedder().embed(_REFERENCE["texts"])
    assert abs(float(np.linalg.norm(question)) - 1.0) < 1e-5
    assert float(question @ answer) > float(question @ unrelated) + 0.3


def test_no_text_gives_no_rows() -> None:
    assert local_embedder().embed([]).shape == (0, 384)
