"""The detector on hand-written answers, with the real embedding model: each mismatch it is
built to see, citations it must reject, and a faithful answer that must pass."""

from __future__ import annotations

import pytest

from processors.intelligence.embeddings import local_embedder
from processors.intelligence.grounding import (
    Check,
    Passage,
    Source,
    check_grounding,
    prepare_passages,
    whole_passage,
)

TRIAL = (
    "Low-dose aspirin in older adults. A randomised trial enrolled 1,200 adults in Norway "
    "between 2015 and 2019. Daily aspirin reduced cardiovascular mortality by 35% compared "
    "with placebo. Bleeding events were more frequent in the aspirin group. The benefit was "
    "not seen in adults younger than 60 years."
)
STATINS = "Statins and cholesterol. Atorvastatin lowers LDL cholesterol in patients with diabetes."
FAITHFUL = (
    "A trial of 1,200 adults in Norway found that daily aspirin reduced cardiovascular "
    "mortality by 35% [1]. Bleeding was more frequent with aspirin [1]. Atorvastatin lowers "
    "LDL cholesterol in diabetic patients [2]."
)


@pytest.fixture(scope="module")
def offered() -> dict[int, Passage]:
    trial, statins = prepare_passages(
        [Source("doc-trial", TRIAL), Source("doc-statins", STATINS)], local_embedder()
    )
    return {1: trial, 2: statins}


def checks(answer: str, offered: dict[int, Passage]) -> tuple[bool, set[Check]]:
    (verdict,) = check_grounding(answer, offered, local_embedder()).sentences
    return verdict.supported, {f.check for f in verdict.findings}


def test_a_faithful_answer_passes(offered: dict[int, Passage]) -> None:
    report = check_grounding(FAITHFUL, offered, local_embedder())
    assert [v.supported for v in report.sentences] == [True, True, True]
    assert report.unsupported == [] and report.missing_citations == []
    assert report.score > 0.8
    assert report.sentences[2].cited_source_ids == ("doc-statins",)
    evidence = report.sentences[0].evidence
    assert evidence is not None and "35%" in TRIAL[evidence.start : evidence.end]


@pytest.mark.parametrize(
    ("answer", "check"),
    [
        ("Daily aspirin reduced cardiovascular mortality by 53% [1].", Check.NUMBER_MISMATCH),
        ("The trial enrolled 1,200 adults in Sweden between 2015 and 2019 [1].",
         Check.ENTITY_MISSING),
        ("Daily aspirin did not reduce cardiovascular mortality compared with placebo [1].",
         Check.NEGATION_FLIP),
        ("Daily aspirin increased cardiovascular mortality by 35% compared with placebo [1].",
         Check.DIRECTION_FLIP),
        ("The benefit was seen in adults younger than 60 years [1].", Check.NEGATION_FLIP),
        ("Daily aspirin reduced cardiovascular mortality by 35% [2].", Check.LOW_SIMILARITY),
    ],
)  # fmt: skip
def test_each_mismatch_is_found_and_rejects_the_sentence(
    answer: str, check: Check, offered: dict[int, Passage]
) -> None:
    supported, found = checks(answer, offered)
    assert check in found
    assert not supported


@pytest.mark.parametrize("marker", ["[3]", "[1][4]", "[0]", "[2, 9]", "[7-8]"])
def test_a_citation_to_a_source_never_offered_is_always_caught(
    marker: str, offered: dict[int, Passage]
) -> None:
    report = check_grounding(
        f"Daily aspirin reduced cardiovascular mortality by 35% {marker}.",
        offered,
        local_embedder(),
    )
    (verdict,) = report.invalid_citations
    assert not verdict.supported and verdict.score == 0.0
    assert Check.INVALID_CITATION in {f.check for f in verdict.findings}
    assert report.unsupported == [verdict]


def test_a_factual_sentence_without_citation_is_flagged_and_still_checked(
    offered: dict[int, Passage],
) -> None:
    report = check_grounding(
        "Daily aspirin reduced cardiovascular mortality by 35%. Is that large? The sources "
        "do not mention costs. In short, yes.",
        offered,
        local_embedder(),
    )
    first, question, meta, short = report.sentences
    assert first.missing_citation and first.supported
    assert Check.MISSING_CITATION in {f.check for f in first.findings}
    assert first.evidence is not None and first.evidence.source_id == "doc-trial"
    assert not any(s.checked for s in (question, meta, short))
    assert report.missing_citations == [first]


def test_an_answer_with_nothing_to_check_scores_one(offered: dict[int, Passage]) -> None:
    report = check_grounding("Is that so?", offered, local_embedder())
    assert report.score == 1.0 and report.checked == []


def test_a_chunk_judged_whole_from_its_retrieval_vector() -> None:
    embedder = local_embedder()
    (vector,) = embedder.embed([TRIAL])
    offered = {1: whole_passage(Source("doc-trial", TRIAL), vector)}
    report = check_grounding(
        "Daily aspirin reduced cardiovascular mortality by 35% [1]. It cut costs by 80% [2].",
        offered,
        embedder,
    )
    faithful, invented = report.sentences
    assert faithful.supported
    assert faithful.evidence is not None and faithful.evidence.end == len(TRIAL)
    assert not invented.supported and invented.invalid_citations == (2,)
