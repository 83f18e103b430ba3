"""Floors on the labeled set (tests/data/guardrails/), a little under the measured numbers in
docs/GUARDRAILS.md, so a change that makes a detector worse fails here."""

import json
from pathlib import Path

import pytest

from processors.foundation.guardrails.evaluation import (
    DEFAULT_THRESHOLD,
    evaluate_injection,
    evaluate_pii,
    load_injection_samples,
    load_pii_samples,
)

DATA = Path(__file__).parent.parent / "data" / "guardrails"

# (precision, recall) floors; measured: see docs/GUARDRAILS.md
PII_OVERALL = (0.97, 0.97)
PII_PER_ENTITY = (0.85, 0.95)
INJECTION = (0.95, 0.85)


@pytest.mark.parametrize("name", ["pii.jsonl", "injection.jsonl"])
def test_labeled_set_is_large_balanced_and_sourced(name: str) -> None:
    rows = [json.loads(line) for line in (DATA / name).read_text().splitlines()]
    assert len(rows) >= 150
    assert all(row["text"] and row["source"] for row in rows)
    positives = sum(bool(row.get("entities")) or row.get("label") == "injection" for row in rows)
    assert 0.35 <= positives / len(rows) <= 0.65


def test_pii_overall() -> None:
    score = evaluate_pii(load_pii_samples(DATA / "pii.jsonl"))["all"]
    assert score.precision >= PII_OVERALL[0]
    assert score.recall >= PII_OVERALL[1]


def test_pii_per_entity() -> None:
    scores = evaluate_pii(load_pii_samples(DATA / "pii.jsonl"))
    for entity, score in scores.items():
        assert score.true_positives >= 10, f"{entity}: too few labeled examples"
        assert score.precision >= PII_PER_ENTITY[0], entity
        assert score.recall >= PII_PER_ENTITY[1], entity


def test_injection_at_the_default_threshold() -> None:
    samples = load_injection_samples(DATA / "injection.jsonl")
    score = evaluate_injection(samples, [DEFAULT_THRESHOLD])[DEFAULT_THRESHOLD]
    assert score.precision >= INJECTION[0]
    assert score.recall >= INJECTION[1]
