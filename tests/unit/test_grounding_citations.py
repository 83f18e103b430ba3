"""Sentence spans and citation markers: what the detector and ``rag.citation.missing`` rely on."""

from __future__ import annotations

import pytest

from processors.intelligence.grounding import split_sentences, strip_citations


def texts(answer: str) -> list[str]:
    return [s.text for s in split_sentences(answer)]


def test_every_span_is_the_sentence_it_reports() -> None:
    answer = "  Aspirin cuts risk [1].  Statins lower LDL [2][3].\n\nA new paragraph [1, 3]. "
    sentences = split_sentences(answer)
    assert [answer[s.start : s.end] for s in sentences] == [s.text for s in sentences]
    assert [s.citations for s in sentences] == [(1,), (2, 3), (1, 3)]


@pytest.mark.parametrize(
    "answer",
    [
        "Mortality fell by 3.5% in the treated group [1]. The effect held at 12 months [2].",
        "Smith et al. found a 2-fold rise in adults [1]. Later trials agreed [2].",
        "Some drugs, e.g. statins, lower LDL [1]. Others, i.e. fibrates, do not [2].",
        "J. R. Smith reported it first in Fig. 2 of the paper [1]. Nobody disputed it [2].",
        "The U.S.A. approved it in 2019 [1]. Europe followed in 2020 vs. 2021 elsewhere [2].",
    ],
)
def test_abbreviations_decimals_and_initials_do_not_end_a_sentence(answer: str) -> None:
    assert len(texts(answer)) == 2


def test_a_marker_after_the_full_stop_belongs_to_the_sentence_before() -> None:
    sentences = split_sentences("It lowers LDL. [2] It is cheap. [1][3]")
    assert [(s.text, s.citations) for s in sentences] == [
        ("It lowers LDL. [2]", (2,)),
        ("It is cheap. [1][3]", (1, 3)),
    ]


@pytest.mark.parametrize(
    ("marker", "numbers"),
    [("[1]", (1,)), ("[1][3]", (1, 3)), ("[1, 3]", (1, 3)), ("[2-4]", (2, 3, 4)),
     ("[1; 2]", (1, 2)), ("[3][3]", (3,)), ("[ 7 ]", (7,)), ("[1-99999]", (1,))],
)  # fmt: skip
def test_marker_forms(marker: str, numbers: tuple[int, ...]) -> None:
    (sentence,) = split_sentences(f"Statins lower LDL cholesterol {marker}.")
    assert sentence.citations == numbers
    assert sentence.claim == "Statins lower LDL cholesterol."


def test_list_items_and_headings_start_sentences_of_their_own() -> None:
    answer = "Findings:\n- Statins lower LDL [1]\n- Aspirin cuts risk [2]\n## Caveats"
    assert texts(answer) == [
        "Findings:",
        "- Statins lower LDL [1]",
        "- Aspirin cuts risk [2]",
        "## Caveats",
    ]


def test_questions_and_exclamations_end_sentences() -> None:
    assert texts("Does it work? Yes! It lowers LDL [1].") == [
        "Does it work?",
        "Yes!",
        "It lowers LDL [1].",
    ]


def test_text_without_markers_or_sentences() -> None:
    assert split_sentences("") == []
    assert split_sentences("   ") == []
    assert strip_citations("No markers here.") == "No markers here."
    assert split_sentences("no final stop")[0].citations == ()
