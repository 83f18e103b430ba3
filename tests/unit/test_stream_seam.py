"""The seam between a cut answer and its continuation: restated words are dropped once, new
text passes, and nothing that could be new is dropped."""

from __future__ import annotations

import pytest

from processors.foundation.providers._seam import Seam


def stitched(before: str, pieces: list[str], *, restates: bool = True) -> str:
    seam = Seam(before, restates=restates)
    return before + "".join(seam.push(piece) for piece in pieces) + seam.finish()


@pytest.mark.parametrize(
    ("before", "pieces", "expected"),
    [
        ("the capital of Fra", ["Fra", "nce", " is"], "the capital of France is"),
        ("echo: one two", [" two", " three"], "echo: one two three"),
        ("echo: one two", ["echo:", " one", " two", " three"], "echo: one two three"),
        ("echo: one", [" two", " three"], "echo: one two three"),
        ("Hello ", [" world"], "Hello world"),
        ("the", ["e", " end"], "thee end"),
        ("card 4111 11", ["11 1111"], "card 4111 1111 1111"),
        ("so it goes", [" on"], "so it goes on"),
        ("abc", [], "abc"),
    ],
    ids=[
        "restarted word",
        "restated word",
        "started over",
        "plain continuation",
        "repeated space",
        "letter that only looks repeated",
        "digits are never taken for a repeat",
        "continuation sharing no prefix",
        "nothing more",
    ],
)
def test_after_an_instruction_only_a_restatement_is_dropped(
    before: str, pieces: list[str], expected: str
) -> None:
    assert stitched(before, pieces) == expected


def test_every_split_of_the_continuation_stitches_the_same() -> None:
    before, after = "the capital of Fra", "France is Paris."
    for cut in range(len(after) + 1):
        assert stitched(before, [after[:cut], after[cut:]]) == "the capital of France is Paris."


def test_after_a_prefill_only_whitespace_the_api_made_us_strip_is_dropped() -> None:
    assert stitched("Hello ", [" world"], restates=False) == "Hello world"
    assert stitched("echo: one two", [" two", " three"], restates=False) == (
        "echo: one two two three"
    )


def test_without_an_answer_to_continue_everything_passes_at_once() -> None:
    seam = Seam("", restates=True)
    assert seam.push("Fra") == "Fra"
    assert seam.finish() == ""
