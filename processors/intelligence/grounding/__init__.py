"""The grounding detector: does each sentence of an answer say what its cited sources say?

Pure: text, prepared sources and an ``Embedder`` in, a ``GroundingReport`` out."""

from processors.intelligence.grounding.citations import Sentence, split_sentences, strip_citations
from processors.intelligence.grounding.detector import (
    GroundingReport,
    SentenceVerdict,
    check_grounding,
    needs_citation,
)
from processors.intelligence.grounding.evidence import (
    Passage,
    Source,
    prepare_passages,
    whole_passage,
)
from processors.intelligence.grounding.scoring import (
    CALIBRATED,
    FEATURES,
    Calibration,
    Check,
    Claim,
    Evidence,
    EvidenceScorer,
    Finding,
    Judgement,
    SupportScorer,
    decide,
    measure,
)

__all__ = [
    "CALIBRATED",
    "FEATURES",
    "Calibration",
    "Check",
    "Claim",
    "Evidence",
    "EvidenceScorer",
    "Finding",
    "GroundingReport",
    "Judgement",
    "Passage",
    "Sentence",
    "SentenceVerdict",
    "Source",
    "SupportScorer",
    "check_grounding",
    "decide",
    "measure",
    "needs_citation",
    "prepare_passages",
    "split_sentences",
    "strip_citations",
    "whole_passage",
]
