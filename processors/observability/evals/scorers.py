"""The offline evaluators (pure): each compares one answer with its dataset item and gives a
verdict (score 0..1, passed, a short label), and the aggregates a run reports per evaluator.

Specs as a user writes them: ``exact``, ``contains``, ``regex:<pattern>``, ``json``,
``similarity`` or ``similarity:<threshold>``; ``judge`` and ``judge:<model>`` name the LLM
judge (``judging.py``), which the runner calls, so ``score`` leaves them out. ``similarity``
is token-set F1 (lower-cased word tokens of answer and expected, the harmonic mean of
precision and recall): dependency-free and deterministic, blind to paraphrase; an embedding
model would catch more but is not shipped."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence

from processors.observability.evals.judging import is_judge
from schemas.payloads import EvalAggregate, EvalVerdict

__all__ = [
    "NO_EXPECTED",
    "Check",
    "aggregate",
    "check_of",
    "failed_call",
    "parse_specs",
    "score",
    "token_f1",
]

Check = Callable[[str, str | None], EvalVerdict]
"""``(answer, expected)`` to a verdict."""

NO_EXPECTED = "item has no expected answer"
_DEFAULT_SIMILARITY = 0.5
_WORD = re.compile(r"\w+")
_FENCE = re.compile(r"^```[A-Za-z]*\s*\n(.*)\n```\s*$", re.DOTALL)


def parse_specs(arguments: Iterable[str]) -> list[str]:
    """``--evaluators`` values to specs: each value is split at commas, except that a
    ``regex:`` takes the rest of its value (commas included), so give it last or on its own."""
    specs: list[str] = []
    for argument in arguments:
        head, regex, pattern = argument.partition("regex:")
        specs += [part.strip() for part in head.split(",") if part.strip()]
        if regex:
            specs.append(regex + pattern)
    for spec in specs:
        if not is_judge(spec):
            check_of(spec)  # refuses an unknown name or a bad pattern before any call is made
    if len(set(specs)) != len(specs):
        raise ValueError(f"an evaluator is given twice: {', '.join(specs)}")
    return specs


def check_of(spec: str) -> Check:
    """The check a spec names; ``ValueError`` for an unknown one or a bad parameter."""
    name, _, parameter = spec.partition(":")
    if name == "exact" and not parameter:
        return lambda answer, expected: _exact(spec, answer, expected)
    if name == "contains" and not parameter:
        return lambda answer, expected: _contains(spec, answer, expected)
    if name == "json" and not parameter:
        return lambda answer, expected: _json(spec, answer, expected)
    if name == "regex" and parameter:
        try:
            pattern = re.compile(parameter)
        except re.error as error:
            raise ValueError(f"{spec}: not a regular expression: {error}") from None
        return lambda answer, _: _regex(spec, pattern, answer)
    if name == "similarity":
        threshold = _threshold(spec, parameter)
        return lambda answer, expected: _similarity(spec, threshold, answer, expected)
    known = ", ".join(
        ("exact", "contains", "regex:<pattern>", "json", "similarity[:<0..1>]", "judge[:<model>]")
    )
    raise ValueError(f"unknown evaluator {spec!r}: one of {known}")


def score(specs: Sequence[str], answer: str, expected: str | None) -> list[EvalVerdict]:
    """Every evaluator's verdict on one answer, in the order of ``specs`` (the judge aside)."""
    return [check_of(spec)(answer, expected) for spec in specs if not is_judge(spec)]


def failed_call(specs: Sequence[str], error_code: str) -> list[EvalVerdict]:
    """An item whose call failed fails every evaluator, labelled with the error."""
    return [_verdict(spec, 0.0, False, error_code) for spec in specs]


def aggregate(
    specs: Sequence[str], verdicts: Iterable[Sequence[EvalVerdict]]
) -> list[EvalAggregate]:
    """Per evaluator: items judged, passed, pass rate and mean score (0 when none)."""
    by_spec: dict[str, list[EvalVerdict]] = {spec: [] for spec in specs}
    for item in verdicts:
        for verdict in item:
            by_spec[verdict["evaluator"]].append(verdict)
    return [
        {
            "evaluator": spec,
            "items": len(found),
            "passed": sum(v["passed"] for v in found),
            "pass_rate": sum(v["passed"] for v in found) / len(found) if found else 0.0,
            "mean_score": sum(v["score"] for v in found) / len(found) if found else 0.0,
        }
        for spec, found in by_spec.items()
    ]


def token_f1(answer: str, expected: str) -> float:
    """Token-set F1 of two texts; 1 when both have no words, 0 when only one has none."""
    said, wanted = set(_WORD.findall(answer.lower())), set(_WORD.findall(expected.lower()))
    if not said or not wanted:
        return float(said == wanted)
    common = len(said & wanted)
    if not common:
        return 0.0
    precision, recall = common / len(said), common / len(wanted)
    return 2 * precision * recall / (precision + recall)


def _verdict(spec: str, score: float, passed: bool, label: str | None = None) -> EvalVerdict:
    return {"evaluator": spec, "score": score, "passed": passed, "label": label}


def _normalised(text: str) -> str:
    return " ".join(text.split())


def _exact(spec: str, answer: str, expected: str | None) -> EvalVerdict:
    """Equal after trimming and collapsing whitespace; case counts."""
    if expected is None:
        return _verdict(spec, 0.0, False, NO_EXPECTED)
    same = _normalised(answer) == _normalised(expected)
    return _verdict(spec, float(same), same, None if same else "differs from expected")


def _contains(spec: str, answer: str, expected: str | None) -> EvalVerdict:
    """The expected text appears in the answer, ignoring case and spacing."""
    if expected is None:
        return _verdict(spec, 0.0, False, NO_EXPECTED)
    found = _normalised(expected).lower() in _normalised(answer).lower()
    return _verdict(spec, float(found), found, None if found else "expected text not found")


def _regex(spec: str, pattern: re.Pattern[str], answer: str) -> EvalVerdict:
    found = pattern.search(answer) is not None
    return _verdict(spec, float(found), found, None if found else "no match")


def _json(spec: str, answer: str, expected: str | None) -> EvalVerdict:
    """The answer is JSON (a Markdown code fence around it is allowed); with an expected
    answer that is JSON too, it must also equal it as data (key order and spacing aside)."""
    try:
        value = json.loads(_unfenced(answer))
    except ValueError:
        return _verdict(spec, 0.0, False, "not JSON")
    if expected is None:
        return _verdict(spec, 1.0, True)
    try:
        wanted = json.loads(_unfenced(expected))
    except ValueError:
        return _verdict(spec, 1.0, True, "valid JSON; expected is not JSON")
    same = value == wanted
    return _verdict(spec, float(same), same, None if same else "JSON differs from expected")


def _unfenced(text: str) -> str:
    fenced = _FENCE.match(text.strip())
    return fenced.group(1) if fenced else text


def _threshold(spec: str, parameter: str) -> float:
    if not parameter:
        return _DEFAULT_SIMILARITY
    try:
        threshold = float(parameter)
    except ValueError:
        threshold = -1.0
    if not 0 <= threshold <= 1:
        raise ValueError(f"{spec}: the threshold must be a number from 0 to 1")
    return threshold


def _similarity(spec: str, threshold: float, answer: str, expected: str | None) -> EvalVerdict:
    if expected is None:
        return _verdict(spec, 0.0, False, NO_EXPECTED)
    f1 = token_f1(answer, expected)
    return _verdict(spec, f1, f1 >= threshold, f"F1 {f1:.2f}")
