"""Check an answer against the sources it was given: citations first, then each claim's support.

A citation to a source that was never offered is a fabricated reference: the sentence is
unsupported whatever it says. A factual sentence that cites nothing is flagged
(``missing_citation``, the lead's ``rag.citation.missing``) and still checked against every
offered source, so the report says whether its content is grounded at all."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from processors.intelligence.embeddings import Embedder
from processors.intelligence.grounding.citations import Sentence, split_sentences
from processors.intelligence.grounding.evidence import Passage
from processors.intelligence.grounding.lexicon import lexicon
from processors.intelligence.grounding.scoring import (
    Check,
    Claim,
    Evidence,
    EvidenceScorer,
    Finding,
    Judgement,
    SupportScorer,
)

__all__ = ["GroundingReport", "SentenceVerdict", "check_grounding", "needs_citation"]

_META = re.compile(
    r"\b(?:(?:do|does|did) not|don't|doesn't|cannot|can't) (?:mention|say|contain|provide|address"
    r"|specify|state|know|find|answer)\b|\bno (?:information|mention|data)\b"
    r"|\bnot (?:mentioned|specified|stated|available)\b|\bhope this helps\b",
    re.IGNORECASE,
)
_FEWEST_CONTENT_WORDS = 3  # "Yes, it does." or "In short:" state nothing to cite


@dataclass(frozen=True)
class SentenceVerdict:
    """One sentence of the answer: its span, what it cites, and whether that supports it."""

    text: str
    start: int
    end: int
    citations: tuple[int, ...]
    cited_source_ids: tuple[str, ...]
    invalid_citations: tuple[int, ...]  # numbers that name no offered source
    checked: bool  # factual or citing something; other sentences count for nothing
    score: float
    supported: bool
    findings: tuple[Finding, ...]
    evidence: Evidence | None

    @property
    def missing_citation(self) -> bool:
        return self.checked and not self.citations


@dataclass(frozen=True)
class GroundingReport:
    """An answer's grounding: the mean support of its checked sentences, and every sentence."""

    score: float
    sentences: tuple[SentenceVerdict, ...]

    @property
    def checked(self) -> list[SentenceVerdict]:
        return [s for s in self.sentences if s.checked]

    @property
    def unsupported(self) -> list[SentenceVerdict]:
        return [s for s in self.sentences if not s.supported]

    @property
    def missing_citations(self) -> list[SentenceVerdict]:
        return [s for s in self.sentences if s.missing_citation]

    @property
    def invalid_citations(self) -> list[SentenceVerdict]:
        return [s for s in self.sentences if s.invalid_citations]


def needs_citation(sentence: Sentence) -> bool:
    """Whether a sentence states something a source must back: not a question, a heading, a
    remark about the sources themselves, or too short to claim anything."""
    claim = sentence.claim
    if not claim or claim.endswith(("?", ":")) or _META.search(claim):
        return False
    return len(lexicon(claim).stems) >= _FEWEST_CONTENT_WORDS


def check_grounding(
    answer: str,
    passages: Mapping[int, Passage],
    embedder: Embedder,
    scorer: SupportScorer | None = None,
) -> GroundingReport:
    """Each sentence of ``answer`` against ``passages``, keyed by the numbers the prompt gave
    them; only the answer's sentences are embedded (one batch), so passages are reusable."""
    sentences = split_sentences(answer)
    wanted = [bool(s.citations) or needs_citation(s) for s in sentences]
    checked = [s for s, want in zip(sentences, wanted, strict=True) if want]
    vectors = embedder.embed([s.claim for s in checked])
    claims = [
        Claim(
            s.claim,
            vectors[i],
            tuple((n, passages[n]) for n in s.citations if n in passages)
            if s.citations
            else tuple(passages.items()),
        )
        for i, s in enumerate(checked)
    ]
    judged = iter((scorer or EvidenceScorer()).judge(claims))
    verdicts = tuple(
        _verdict(s, passages, next(judged) if want else None)
        for s, want in zip(sentences, wanted, strict=True)
    )
    scores = [v.score for v in verdicts if v.checked]
    return GroundingReport(sum(scores) / len(scores) if scores else 1.0, verdicts)


def _verdict(
    sentence: Sentence, passages: Mapping[int, Passage], judgement: Judgement | None
) -> SentenceVerdict:
    invalid = tuple(n for n in sentence.citations if n not in passages)
    cited_ids = tuple(passages[n].source_id for n in sentence.citations if n in passages)
    if judgement is None:
        return SentenceVerdict(
            sentence.text, sentence.start, sentence.end, (), (), (), False, 1.0, True, (), None
        )
    findings = list(judgement.findings)
    if invalid:
        shown = ", ".join(f"[{n}]" for n in invalid)
        findings.insert(0, Finding(Check.INVALID_CITATION, f"no source {shown} was offered"))
    if not sentence.citations:
        findings.insert(0, Finding(Check.MISSING_CITATION, "a factual sentence cites nothing"))
    return SentenceVerdict(
        text=sentence.text,
        start=sentence.start,
        end=sentence.end,
        citations=sentence.citations,
        cited_source_ids=cited_ids,
        invalid_citations=invalid,
        checked=True,
        score=0.0 if invalid else judgement.score,
        supported=judgement.supported and not invalid,
        findings=tuple(findings),
        evidence=judgement.evidence,
    )
