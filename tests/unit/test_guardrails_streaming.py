"""The streaming output guard: whatever the split, the released pieces concatenate to exactly
``check_output``'s text, and no piece ever holds a value the final answer redacts."""

from __future__ import annotations

import random
from collections.abc import Iterable
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

import processors.foundation.guardrails.streaming as guard_module
from processors.foundation.config import GuardrailPolicy
from processors.foundation.guardrails import StreamGuard, check_output
from processors.foundation.guardrails.evaluation import PiiSample, load_pii_samples

SAMPLES = load_pii_samples(Path(__file__).parents[1] / "data" / "guardrails" / "pii.jsonl")
DEFAULT = GuardrailPolicy()  # output PII redacted, every entity
TERMS = GuardrailPolicy.model_validate(
    {"output": {"pii": None, "deny_terms": {"action": "redact", "terms": ["project falcon"]}}}
)


def policy(output: dict[str, Any]) -> GuardrailPolicy:
    return GuardrailPolicy.model_validate({"output": output})


def released(policy: GuardrailPolicy, deltas: Iterable[str]) -> list[str]:
    """What the guard releases after each delta, then at the end."""
    guard = StreamGuard(policy)
    return [guard.push(delta) for delta in deltas] + [guard.finish()]


# After the sample, so the sample is released before the end rather than all at finish.
FILLER = " And that is all there is to say about it." * 4


def guarded(sample: PiiSample) -> list[tuple[GuardrailPolicy, str]]:
    """The sample under the default policy, and under one that looks only for its entities
    (less to hold back, so more of it is released mid-stream), with the filler after it."""
    own = policy({"pii": {"entities": sorted({f.entity for f in sample.expected})}})
    return [(DEFAULT, sample.text + FILLER), (own, sample.text + FILLER)]


def assert_exact_and_leak_free(
    policy: GuardrailPolicy, text: str, sample: PiiSample, pieces: list[str]
) -> None:
    """Every prefix released is a prefix of the final answer (so a redacted value never
    leaks, whole or in part), and all of it is the final answer."""
    final = check_output(text, policy, "p").text
    sent = ""
    for piece in pieces:
        sent += piece
        assert final.startswith(sent)
    assert sent == final
    for value in (text[f.start : f.end] for f in sample.expected):
        assert value in final or value not in sent


def splits(text: str, cuts: Iterable[int]) -> list[str]:
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in pairwise(bounds)]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.text[:40])
def test_every_two_delta_split_releases_the_final_answer_and_no_pii(sample: PiiSample) -> None:
    for policy_, text in guarded(sample):
        for cut in range(len(sample.text) + 2):
            pieces = released(policy_, splits(text, [cut]))
            assert_exact_and_leak_free(policy_, text, sample, pieces)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.text[:40])
def test_three_way_and_char_by_char_splits_too(sample: PiiSample) -> None:
    n = len(sample.text)
    for policy_, text in guarded(sample):
        for cuts in ([n // 3, 2 * n // 3], [1, n - 1], [n // 2, n // 2 + 1]):
            pieces = released(policy_, splits(text, cuts))
            assert_exact_and_leak_free(policy_, text, sample, pieces)
        assert_exact_and_leak_free(policy_, text, sample, released(policy_, text))


def test_a_long_answer_streams_in_pieces_behind_a_bounded_hold_back() -> None:
    text = "Write to ada@example.com or call +44 20 7946 0958 any day. " * 20
    pieces = released(DEFAULT, [text[i : i + 4] for i in range(0, len(text), 4)])
    assert "".join(pieces) == check_output(text, DEFAULT, "p").text
    assert sum(1 for piece in pieces[:-1] if piece) > 5
    assert len(pieces[-1]) < 300  # the tail: two IBAN reaches and the last word
    assert not any("ada@" in piece or "7946" in piece for piece in pieces)


def test_text_with_no_number_near_its_end_is_held_back_by_its_last_word_only() -> None:
    guard = StreamGuard(DEFAULT)
    first = guard.push("Sure: here is the answer you asked for, in three short parts. First")
    assert first == "Sure: here is the answer you asked for, in three short parts. "
    words = StreamGuard(DEFAULT).push("tok1 tok2 tok3 tok4 tok5 tok6 tok7")
    assert words == "tok1 tok2 tok3 tok4 tok5 tok6 ", "single digits between letters are no number"


def test_a_number_arriving_in_pieces_is_held_from_its_first_digit() -> None:
    for head, rest in (("call 415 55", "5 0123 today"), ("card x4111 1111 ", "1111 1111 ok")):
        guard = StreamGuard(DEFAULT)
        first = guard.push(head)
        assert not any(digit in first for digit in "0123456789"), first
        whole = first + guard.push(rest) + guard.finish()
        assert whole == check_output(head + rest, DEFAULT, "p").text
        assert "REDACTED" in whole


def test_the_longest_spaced_finding_is_never_split_by_the_hold_back() -> None:
    compact = "MT84MALT011000012345MTLCAST001S"  # the longest IBAN, one space per character
    text = f"Pay to {compact[:4]}{''.join(' ' + c for c in compact[4:])} by Friday." + FILLER
    ibans = policy({"pii": {"entities": ["iban"]}})
    final = check_output(text, ibans, "p").text
    assert "[REDACTED:IBAN] by Friday" in final
    for cut in range(len(text) + 1):
        pieces = released(ibans, splits(text, [cut]))
        assert "".join(pieces) == final
        assert not any("MT84" in piece for piece in pieces)


def test_a_token_longer_than_any_cap_is_held_until_it_ends() -> None:
    token = "abcdefghijklmnopqrstuvwxyz" * 12 + "Q7x9"  # random-looking only once it ends
    text = f"the key is {token} keep it"
    pieces = released(DEFAULT, text)
    assert "".join(pieces) == "the key is [REDACTED:SECRET] keep it"
    assert not any("abc" in piece for piece in pieces)


def test_a_private_key_block_is_held_until_its_end_line() -> None:
    body = "\n".join(["MIIEowIBAAKCAQEAx1Jb+8Rk2aFf0x3q9Tn4vWmYzL5pQrS7uVdE6hGiKjL"] * 6)
    block = f"-----BEGIN RSA PRIVATE KEY-----\n{body}\nAB==\n-----END RSA PRIVATE KEY-----"
    text = f"Here it is:\n{block}\nDone."
    pieces = released(DEFAULT, text.splitlines(keepends=True))
    assert "".join(pieces) == "Here it is:\n[REDACTED:SECRET]\nDone."
    assert not any("MIIE" in piece for piece in pieces)


@pytest.mark.parametrize("gap", [" ", "\n\n" + " " * 200])
def test_a_deny_term_split_anywhere_is_redacted_whatever_whitespace_joins_its_words(
    gap: str,
) -> None:
    text = f"The plan is Project{gap}Falcon, and project falconry is a hobby."
    final = check_output(text, TERMS, "p").text
    assert final.count("[REDACTED:TERM]") == 1
    for cut in range(len(text) + 1):
        pieces = released(TERMS, splits(text, [cut]))
        assert "".join(pieces) == final
        assert not any("Falcon" in piece for piece in pieces)


def test_a_block_stops_the_stream_where_the_blocked_text_begins() -> None:
    blocking = policy({"pii": None, "deny_terms": {"action": "block", "terms": ["falcon"]}})
    guard = StreamGuard(blocking)
    assert guard.push("All is well. " * 10) == "All is well. " * 10
    assert guard.push("Then falcon") == ""  # a match already, though "falconry" would not be
    assert guard.push(" flew. " + "More text. " * 20) == ""
    assert guard.finish() == ""


def test_flag_only_and_rule_free_policies_release_each_delta_at_once() -> None:
    for free in (policy({"pii": None}), policy({"pii": {"action": "flag"}})):
        assert released(free, ["my mail is ", "ada@example.com", " ok"]) == [
            "my mail is ",
            "ada@example.com",
            " ok",
            "",
        ]


def test_a_long_answer_is_scanned_in_a_window_and_still_releases_exactly_the_final_answer() -> None:
    """Past the scan window (the answer's start is no longer read): every labeled sample,
    each after several hundred characters of text, in one answer streamed in uneven pieces,
    releases exactly ``check_output``'s text and never a value it redacts."""
    rng = random.Random(7)
    parts = []
    for sample in SAMPLES:
        parts.append(FILLER * rng.randint(1, 4))
        parts.append(sample.text)
    text = "".join(parts) + FILLER
    assert len(text) > 20 * 512
    cuts = sorted(rng.sample(range(1, len(text)), len(text) // 5))
    pieces = released(DEFAULT, splits(text, cuts))
    final = check_output(text, DEFAULT, "p").text
    sent = ""
    for piece in pieces:
        sent += piece
        assert final.startswith(sent)
    assert sent == final
    redacted = [text[f.start : f.end] for s in SAMPLES for f in s.expected]
    assert all(value not in sent for value in redacted if value not in final)


def test_a_long_answer_costs_each_piece_the_same_not_more_as_it_grows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Scans read a bounded window: the work per piece does not grow with the answer (a
    whole-answer scan per piece made a 10 KB answer cost ~100 ms of CPU)."""
    scanned: list[int] = []
    original = guard_module.scan_output

    def counting(text: str, policy: GuardrailPolicy) -> Any:
        scanned.append(len(text))
        return original(text, policy)

    monkeypatch.setattr(guard_module, "scan_output", counting)
    words = (FILLER * 300).split(" ")
    guard = StreamGuard(DEFAULT)
    for word in words:
        guard.push(f" {word}")
    assert len(" ".join(words)) > 10_000
    assert max(scanned) < 2 * 512 + 200


def test_the_first_words_go_out_once_whole_not_after_a_full_pace() -> None:
    """Time to first token: a typical opening is released after its first few tokens (the
    full pace of 64 characters would hold it for about fifteen)."""
    tokens = ["Hello", ",", " I", " am", " a", " helpful", " assistant", ".", " The", " weather"]
    guard = StreamGuard(DEFAULT)
    first = next(i for i, token in enumerate(tokens) if guard.push(token))
    assert first <= 4
