"""How well cited evidence supports one claim: the interface, and the default scorer on CPU.

The default scorer reads eight features of a claim against the sentences of the sources it
cites (embedding similarity, word coverage, and the number, name, negation and direction checks)
and combines them with a logistic model fitted on SciFact's train claims and perturbations of
them (``bench/grounding_scifact.py --calibrate``), behind a gate that rejects a near copy of
the evidence with a changed number, negation or direction. A natural-language-inference model
can replace it behind ``SupportScorer``: it gets the same claims and cited passages."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import numpy as np
import numpy.typing as npt

from processors.intelligence.embeddings import Vectors
from processors.intelligence.grounding.evidence import Passage
from processors.intelligence.grounding.lexicon import Lexicon, lexicon, numbers_agree

__all__ = [
    "CALIBRATED",
    "FEATURES",
    "Calibration",
    "Check",
    "Claim",
    "Evidence",
    "EvidenceScorer",
    "Finding",
    "Judgement",
    "SupportScorer",
    "decide",
    "measure",
]

FEATURES = (
    "similarity",  # cosine of the claim and its best-matching cited sentence
    "relevance",  # mean cosine of the three best cited sentences
    "coverage",  # share of the claim's content words in that best sentence
    "passage_coverage",  # ... anywhere in the cited sources
    "number_mismatch",  # a number of the claim appears in no cited source
    "entity_missing",  # share of the claim's names that no cited source contains
    "negation_flip",  # claim negated and best sentence not, or it negates what the claim says
    "direction_flip",  # claim says up where the evidence says down about the same words
)

_CONTRADICTIONS = [
    FEATURES.index(f) for f in ("number_mismatch", "negation_flip", "direction_flip")
]


class Check(StrEnum):
    """Why a sentence is not supported (a finding may also sit on a supported sentence)."""

    INVALID_CITATION = "invalid_citation"
    MISSING_CITATION = "missing_citation"
    LOW_SIMILARITY = "low_similarity"
    CONTENT_MISSING = "content_missing"
    NUMBER_MISMATCH = "number_mismatch"
    ENTITY_MISSING = "entity_missing"
    NEGATION_FLIP = "negation_flip"
    DIRECTION_FLIP = "direction_flip"


@dataclass(frozen=True)
class Finding:
    check: Check
    detail: str


@dataclass(frozen=True)
class Evidence:
    """The cited sentence that best matches a claim: source number and id, span in the source."""

    number: int
    source_id: str
    start: int
    end: int
    similarity: float


@dataclass(frozen=True, eq=False)
class Claim:
    """A sentence to check (citation markers removed), its unit vector, and what it cites."""

    text: str
    vector: Vectors
    cited: tuple[tuple[int, Passage], ...]


@dataclass(frozen=True)
class Judgement:
    score: float  # support in [0, 1]
    supported: bool
    findings: tuple[Finding, ...]
    evidence: Evidence | None


class SupportScorer(Protocol):
    """Claims with their cited passages in, one judgement per claim out (batched, for models)."""

    def judge(self, claims: Sequence[Claim]) -> list[Judgement]: ...


@dataclass(frozen=True)
class Calibration:
    """A logistic model over ``FEATURES`` and the score above which a claim is supported.

    A number, negation or direction mismatch with a cited sentence at least ``contradiction``
    similar rejects the claim whatever the model says: a near copy of the evidence that differs
    exactly there contradicts it (support 0). ``low_similarity`` and ``low_coverage`` only say
    when a finding names a weakness."""

    weights: tuple[float, ...]
    bias: float
    threshold: float
    contradiction: float
    low_similarity: float = 0.5
    low_coverage: float = 0.5


CALIBRATED = Calibration(  # bench/grounding_scifact.py --calibrate, SciFact train only
    weights=(1.811, 1.332, -0.878, 2.158, -1.805, -0.872, -1.244, -1.135),
    bias=-2.465,
    threshold=0.54,
    contradiction=0.8,
)


class EvidenceScorer:
    """The default ``SupportScorer``: features of each claim, combined by a ``Calibration``."""

    def __init__(self, calibration: Calibration = CALIBRATED) -> None:
        self._calibration = calibration

    def judge(self, claims: Sequence[Claim]) -> list[Judgement]:
        return [self._judge(claim) for claim in claims]

    def _judge(self, claim: Claim) -> Judgement:
        values, findings, evidence = measure(claim, self._calibration)
        if evidence is None:
            return Judgement(0.0, False, tuple(findings), None)
        score, supported = decide(values, self._calibration)
        return Judgement(score, supported, tuple(findings), evidence)


def decide(values: npt.NDArray[np.float64], calibration: Calibration) -> tuple[float, bool]:
    """Support score and verdict from a claim's ``FEATURES``."""
    if values[0] >= calibration.contradiction and values[_CONTRADICTIONS].any():
        return 0.0, False
    logit = float(values @ np.array(calibration.weights)) + calibration.bias
    score = 1.0 / (1.0 + math.exp(-logit))
    return score, score >= calibration.threshold


def measure(
    claim: Claim, calibration: Calibration = CALIBRATED
) -> tuple[npt.NDArray[np.float64], list[Finding], Evidence | None]:
    """``FEATURES`` of a claim against its cited passages, the findings they imply, and the
    best-matching cited sentence (``None`` when nothing is cited)."""
    cited = [(number, passage) for number, passage in claim.cited if len(passage.sentences)]
    if not cited:
        return np.zeros(len(FEATURES)), [], None
    sims = np.concatenate([passage.vectors @ claim.vector for _, passage in cited])
    best = int(np.argmax(sims))
    number, passage, index = _locate(cited, best)
    facts = lexicon(claim.text)
    aligned = passage.sentence_lexicons[index]
    sentence = passage.sentences[index]
    evidence = Evidence(number, passage.source_id, sentence.start, sentence.end, float(sims[best]))
    everywhere = frozenset().union(*(p.lexicon.stems for _, p in cited))
    written = [n for _, p in cited for n in p.lexicon.numbers]
    absent_numbers = [n for n in facts.numbers if not any(numbers_agree(n, w) for w in written)]
    absent_names = sorted(e for e in facts.entities if not any(e in p.folded for _, p in cited))
    negation_flip = facts.negated != bool(aligned.negated_stems & facts.stems)
    direction_flip = _opposite(facts, aligned, passage.lexicon)
    values = np.array(
        [
            float(sims[best]),
            float(np.sort(sims)[-3:].mean()),
            _share(facts.stems, aligned.stems),
            _share(facts.stems, everywhere),
            float(bool(absent_numbers)),
            len(absent_names) / len(facts.entities) if facts.entities else 0.0,
            float(negation_flip),
            float(direction_flip),
        ]
    )
    findings = _findings(values, absent_numbers, absent_names, facts, calibration)
    return values, findings, evidence


def _locate(cited: list[tuple[int, Passage]], flat: int) -> tuple[int, Passage, int]:
    for number, passage in cited:
        if flat < len(passage.sentences):
            return number, passage, flat
        flat -= len(passage.sentences)
    raise IndexError(flat)


def _share(wanted: frozenset[str], present: frozenset[str]) -> float:
    return len(wanted & present) / len(wanted) if wanted else 1.0


def _opposite(claim: Lexicon, aligned: Lexicon, source: Lexicon) -> bool:
    """The claim says one way about words the evidence says the other way about: in the best
    sentence or, when that says neither about them, anywhere in the source."""
    if claim.up == claim.down:
        return False
    for evidence in (aligned, source):
        up, down = bool(evidence.up_stems & claim.stems), bool(evidence.down_stems & claim.stems)
        if up != down:
            return down if claim.up else up
    return False


def _findings(
    values: npt.NDArray[np.float64],
    absent_numbers: list[tuple[float, int]],
    absent_names: list[str],
    facts: Lexicon,
    calibration: Calibration,
) -> list[Finding]:
    found: list[Finding] = []
    if values[0] < calibration.low_similarity:
        found.append(Finding(Check.LOW_SIMILARITY, f"best cited sentence at {values[0]:.2f}"))
    if values[3] < calibration.low_coverage:
        found.append(Finding(Check.CONTENT_MISSING, f"{values[3]:.0%} of content words cited"))
    if absent_numbers:
        shown = ", ".join(f"{value:.{decimals}f}" for value, decimals in absent_numbers)
        found.append(Finding(Check.NUMBER_MISMATCH, f"not in the cited sources: {shown}"))
    if absent_names:
        found.append(
            Finding(Check.ENTITY_MISSING, f"not in the cited sources: {', '.join(absent_names)}")
        )
    if values[6]:
        side = "the sentence" if facts.negated else "the evidence"
        found.append(Finding(Check.NEGATION_FLIP, f"only {side} negates it"))
    if values[7]:
        found.append(
            Finding(Check.DIRECTION_FLIP, "the sentence and the evidence point opposite ways")
        )
    return found
