"""Precision / recall of the detectors on the labeled set kept in ``tests/data/guardrails/``:

    .venv/bin/python -m processors.foundation.guardrails.evaluation [--data DIR] [--errors]

PII is scored per entity on exact spans (a partial match counts as a miss and a false
positive, because a partial redaction leaks the rest); injection per text, at the default
threshold and over a small sweep. Rows whose ``source`` starts with "held-out" were written
after the detectors were tuned and never tuned on; they are also scored on their own, as the
better guess of how the detectors do on text nobody looked at. The scoring functions are pure;
only ``main`` reads files."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from processors.foundation.config import PiiEntity
from processors.foundation.guardrails.injection import score_injection
from processors.foundation.guardrails.pii import PiiFinding, find_pii

__all__ = [
    "DEFAULT_THRESHOLD",
    "SWEEP_THRESHOLDS",
    "InjectionSample",
    "PiiSample",
    "Score",
    "evaluate_injection",
    "evaluate_pii",
    "load_injection_samples",
    "load_pii_samples",
]

DEFAULT_THRESHOLD = 0.7  # _InjectionRule's default
SWEEP_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
_ENTITIES: tuple[PiiEntity, ...] = get_args(PiiEntity)


@dataclass(frozen=True)
class Score:
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        expected = self.true_positives + self.false_negatives
        return self.true_positives / expected if expected else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def __add__(self, other: Score) -> Score:
        return Score(
            self.true_positives + other.true_positives,
            self.false_positives + other.false_positives,
            self.false_negatives + other.false_negatives,
        )


@dataclass(frozen=True)
class PiiSample:
    text: str
    expected: frozenset[PiiFinding]
    held_out: bool = False


@dataclass(frozen=True)
class InjectionSample:
    text: str
    is_injection: bool
    held_out: bool = False


def _held_out(row: dict[str, Any]) -> bool:
    return str(row.get("source", "")).startswith("held-out")


def _pii_sample(row: dict[str, Any]) -> PiiSample:
    """Labels name values, not offsets (easier to write by hand); a value listed twice is
    looked up past its first occurrence."""
    text: str = row["text"]
    expected = set()
    for label in row["entities"]:
        entity, value = label["entity"], label["value"]
        if entity not in _ENTITIES:
            raise ValueError(f"unknown entity {entity!r} in {text!r}")
        start = text.find(value)
        while start >= 0 and PiiFinding(entity, start, start + len(value)) in expected:
            start = text.find(value, start + 1)
        if start < 0:
            raise ValueError(f"labeled value {value!r} not in {text!r}")
        expected.add(PiiFinding(entity, start, start + len(value)))
    return PiiSample(text, frozenset(expected), _held_out(row))


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_pii_samples(path: Path) -> list[PiiSample]:
    return [_pii_sample(row) for row in _jsonl(path)]


def load_injection_samples(path: Path) -> list[InjectionSample]:
    return [
        InjectionSample(row["text"], row["label"] == "injection", _held_out(row))
        for row in _jsonl(path)
    ]


def evaluate_pii(samples: Iterable[PiiSample]) -> dict[str, Score]:
    """A score per entity, plus ``"all"`` (micro-averaged)."""
    scores: dict[str, Score] = {entity: Score() for entity in _ENTITIES}
    for sample in samples:
        found = set(find_pii(sample.text, _ENTITIES))
        for entity in _ENTITIES:
            got = {f for f in found if f.entity == entity}
            want = {f for f in sample.expected if f.entity == entity}
            scores[entity] += Score(len(got & want), len(got - want), len(want - got))
    scores["all"] = sum(scores.values(), Score())
    return scores


def evaluate_injection(
    samples: Sequence[InjectionSample], thresholds: Iterable[float] = SWEEP_THRESHOLDS
) -> dict[float, Score]:
    """A score per threshold; each text is scored once."""
    scored = [(score_injection(s.text).score, s.is_injection) for s in samples]
    return {
        t: Score(
            sum(score >= t and label for score, label in scored),
            sum(score >= t and not label for score, label in scored),
            sum(score < t and label for score, label in scored),
        )
        for t in thresholds
    }


def _table(rows: dict[str, Score], key: str) -> str:
    lines = [
        f"| {key} | TP | FP | FN | precision | recall | F1 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {name} | {s.true_positives} | {s.false_positives} | {s.false_negatives} "
        f"| {s.precision:.3f} | {s.recall:.3f} | {s.f1:.3f} |"
        for name, s in rows.items()
    ]
    return "\n".join(lines)


def _errors(pii: list[PiiSample], injection: list[InjectionSample]) -> Iterable[str]:
    """What the detectors got wrong, for tuning; never shown unless asked."""
    for sample in pii:
        found = set(find_pii(sample.text, _ENTITIES))
        for f in sorted(found - sample.expected, key=lambda f: f.start):
            yield f"pii FP {f.entity}: {sample.text[f.start : f.end]!r} in {sample.text!r}"
        for f in sorted(sample.expected - found, key=lambda f: f.start):
            yield f"pii FN {f.entity}: {sample.text[f.start : f.end]!r} in {sample.text!r}"
    for s in injection:
        verdict = score_injection(s.text)
        if (verdict.score >= DEFAULT_THRESHOLD) != s.is_injection:
            kind = "FN" if s.is_injection else "FP"
            yield f"injection {kind} {verdict.score:.2f} {verdict.signals}: {s.text!r}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=Path("tests/data/guardrails"))
    parser.add_argument("--errors", action="store_true", help="list every miss and false hit")
    args = parser.parse_args(argv)
    pii = load_pii_samples(args.data / "pii.jsonl")
    injection = load_injection_samples(args.data / "injection.jsonl")
    print(f"PII ({len(pii)} texts, exact spans)\n")
    print(_table(evaluate_pii(pii), "entity"))
    positives = sum(s.is_injection for s in injection)
    print(f"\nInjection ({positives} attacks, {len(injection) - positives} benign texts)\n")
    sweep = evaluate_injection(injection)
    print(_table({f"{t:.1f}": s for t, s in sweep.items()}, "threshold"))
    held_pii = [s for s in pii if s.held_out]
    held_injection = [s for s in injection if s.held_out]
    print(f"\nHeld-out rows only ({len(held_pii)} PII, {len(held_injection)} injection texts)\n")
    held = {
        "PII, all entities": evaluate_pii(held_pii)["all"],
        f"injection @ {DEFAULT_THRESHOLD}": evaluate_injection(held_injection, [DEFAULT_THRESHOLD])[
            DEFAULT_THRESHOLD
        ],
    }
    print(_table(held, "detector"))
    if args.errors:
        print("\n" + "\n".join(_errors(pii, injection)))


if __name__ == "__main__":
    main()
