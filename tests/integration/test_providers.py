"""The adapters against fake OpenAI and Anthropic servers on real sockets: what goes on the
wire, what comes back, how every failure is classified, and that the key never leaks; and the
simulated provider's reproducibility and error rate."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from email.utils import formatdate
from typing import Any, TypeVar

import httpx
import pytest

from processors.foundation.config import LatencyModel, ProviderSettings, SimulationSettings
from processors.foundation.providers import (
    ChatDelta,
    ChatMessage,
    ChatRequest,
    ChatResult,
    FailureKind,
    Provider,
    ProviderError,
    SimulatedProvider,
    build_provider,
)
from processors.foundation.providers.openai_compat import CONTINUE_INSTRUCTION
from tests.fakes.llm_servers import AnthropicFake, FakeLlmServer, Fault, FaultPlan, OpenAIFake

KEY = "sk-test-4f7a9c2e-do-not-leak"
ENV = {"FAKE_LLM_KEY": KEY}
HELLO = ChatRequest(model="gpt-4o-mini", messages=[ChatMessage("user", "hello there")])
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
ASK_WEATHER = ChatRequest(
    model="gpt-4o-mini",
    messages=[ChatMessage("user", "weather in Paris?")],
    tools=[WEATHER_TOOL],
)
T = TypeVar("T")


@pytest.fixture(params=["openai", "anthropic"])
def server(request: pytest.FixtureRequest) -> Iterator[FakeLlmServer]:
    fake: FakeLlmServer = OpenAIFake(KEY) if request.param == "openai" else AnthropicFake(KEY)
    with fake:
        yield fake


@pytest.fixture
def openai() -> Iterator[FakeLlmServer]:
    with OpenAIFake(KEY) as fake:
        yield fake


@pytest.fixture
def anthropic() -> Iterator[FakeLlmServer]:
    with AnthropicFake(KEY) as fake:
        yield fake


def adapter(server: FakeLlmServer | str, kind: str = "", **settings: Any) -> Provider:
    """An adapter for ``server`` (or a bare base URL, with ``kind``), as the factory builds it."""
    if isinstance(server, FakeLlmServer):
        kind = "openai" if isinstance(server, OpenAIFake) else "anthropic"
        server = server.base_url
    config = ProviderSettings(
        kind=kind,
        base_url=server,
        api_key_env="FAKE_LLM_KEY",
        **{"timeout_ms": 5_000, "max_in_flight": 8, **settings},
    )
    return build_provider(kind, config, ENV)


def using(provider: Provider, call: Callable[[Provider], Awaitable[T]]) -> T:
    async def run() -> T:
        try:
            return await call(provider)
        finally:
            await provider.aclose()

    return asyncio.run(run())


def complete(
    server: FakeLlmServer, request: ChatRequest = HELLO, timeout_s: float = 5.0, **settings: Any
) -> ChatResult:
    return using(adapter(server, **settings), lambda p: p.complete(request, timeout_s))


def stream(
    server: FakeLlmServer, request: ChatRequest = HELLO, timeout_s: float = 5.0, **settings: Any
) -> list[ChatDelta]:
    async def collect(provider: Provider) -> list[ChatDelta]:
        return [delta async for delta in provider.stream(request, timeout_s)]

    return using(adapter(server, **settings), collect)


def failure(
    server: FakeLlmServer, streamed: bool, timeout_s: float = 5.0, **settings: Any
) -> ProviderError:
    call = stream if streamed else complete
    with pytest.raises(ProviderError) as caught:
        call(server, timeout_s=timeout_s, **settings)
    return caught.value


def last_body(server: FakeLlmServer) -> dict[str, Any]:
    body = server.received[-1].body
    assert isinstance(body, dict)
    return body


# --- what goes out and what comes back ------------------------------------------------------


def test_plain_completion(server: FakeLlmServer) -> None:
    result = complete(server)
    assert result.text == "echo: hello there"
    assert result.tool_calls is None
    assert result.finish_reason == "stop"
    assert result.usage.reported_by_provider and result.usage.completion_tokens == 3
    assert result.latency_ms >= 0
    assert last_body(server)["model"] == "gpt-4o-mini"


def test_the_key_is_sent_as_each_api_expects(
    openai: FakeLlmServer, anthropic: FakeLlmServer
) -> None:
    complete(openai)
    complete(anthropic)
    assert openai.received[0].headers["authorization"] == f"Bearer {KEY}"
    assert anthropic.received[0].headers["x-api-key"] == KEY
    assert anthropic.received[0].headers["anthropic-version"] == "2023-06-01"
    assert anthropic.received[0].path == "/v1/messages"


def test_openai_request_carries_every_option(openai: FakeLlmServer) -> None:
    request = ChatRequest(
        model="gpt-4o-mini",
        messages=[ChatMessage("system", "be brief"), ChatMessage("user", "hi", name="ann")],
        tools=[WEATHER_TOOL],
        tool_choice="auto",
        response_format={"type": "json_object"},
        stop=["\n\n", "END"],
        max_tokens=64,
        temperature=0.2,
        top_p=0.9,
    )
    complete(openai, request)
    body = last_body(openai)
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi", "name": "ann"},
    ]
    assert body["tools"] == [WEATHER_TOOL]
    assert body["tool_choice"] == "auto"
    assert body["response_format"] == {"type": "json_object"}
    assert body["stop"] == ["\n\n", "END"]
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (64, 0.2, 0.9)
    assert "stream" not in body


def test_openai_leaves_unset_options_out(openai: FakeLlmServer) -> None:
    complete(openai)
    assert set(last_body(openai)) == {"model", "messages"}


def test_anthropic_request_is_translated(anthropic: FakeLlmServer) -> None:
    request = ChatRequest(
        model="claude-3-5-sonnet",
        messages=[
            ChatMessage("system", "be brief"),
            ChatMessage("user", "weather?"),
            ChatMessage("system", "use metric units"),
        ],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        stop=["END"],
        temperature=0.2,
        top_p=0.9,
    )
    complete(anthropic, request)
    body = last_body(anthropic)
    assert body["system"] == "be brief\n\nuse metric units"
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "weather?"}]}]
    assert body["max_tokens"] == 1024  # required by the API; the default when none is asked
    assert body["stop_sequences"] == ["END"]
    assert (body["temperature"], body["top_p"]) == (0.2, 0.9)
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather in a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"],  # type: ignore[index]
        }
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "get_weather"}


@pytest.mark.parametrize(
    ("openai_choice", "anthropic_choice"),
    [("auto", {"type": "auto"}), ("required", {"type": "any"}), ("none", {"type": "none"})],
)
def test_anthropic_tool_choice_words(
    anthropic: FakeLlmServer, openai_choice: str, anthropic_choice: dict[str, str]
) -> None:
    request = ChatRequest(
        model="m", messages=HELLO.messages, tools=[WEATHER_TOOL], tool_choice=openai_choice
    )
    complete(anthropic, request)
    assert last_body(anthropic)["tool_choice"] == anthropic_choice


def test_response_format_reaches_both_apis(openai: FakeLlmServer, anthropic: FakeLlmServer) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    response_format = {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}
    request = ChatRequest(model="m", messages=HELLO.messages, response_format=response_format)
    complete(openai, request)
    complete(anthropic, request)
    assert last_body(openai)["response_format"] == response_format
    system = last_body(anthropic)["system"]  # no JSON mode in the Messages API: it is asked for
    assert "JSON object" in system and json.dumps(schema) in system


def test_tools_round_trip(server: FakeLlmServer) -> None:
    first = complete(server, ASK_WEATHER)
    assert first.finish_reason == "tool_calls"
    assert first.text is None
    [call] = first.tool_calls or []
    assert call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"query": "weather in Paris?"}

    follow_up = ChatRequest(
        model="gpt-4o-mini",
        messages=[
            *ASK_WEATHER.messages,
            ChatMessage("assistant", tool_calls=[call]),
            ChatMessage("tool", "sunny, 24C", tool_call_id=call["id"]),
        ],
        tools=[WEATHER_TOOL],
    )
    second = complete(server, follow_up)
    assert second.text == "echo: sunny, 24C"
    assert second.finish_reason == "stop"


def test_anthropic_tool_history_becomes_tool_use_and_tool_result_blocks(
    anthropic: FakeLlmServer,
) -> None:
    call = {
        "id": "call_9",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    request = ChatRequest(
        model="m",
        messages=[
            ChatMessage("user", "weather?"),
            ChatMessage("assistant", "Let me look.", tool_calls=[call]),
            ChatMessage("tool", "sunny", tool_call_id="call_9"),
            ChatMessage("tool", "no wind", tool_call_id="call_9"),
        ],
        tools=[WEATHER_TOOL],
    )
    complete(anthropic, request)
    assistant, results = last_body(anthropic)["messages"][1:]
    assert assistant == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "call_9", "name": "get_weather", "input": {"city": "Paris"}},
        ],
    }
    assert results == {  # consecutive tool results are one user turn
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_9", "content": "sunny"},
            {"type": "tool_result", "tool_use_id": "call_9", "content": "no wind"},
        ],
    }


def test_untranslatable_tool_arguments_are_a_client_error(anthropic: FakeLlmServer) -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
    request = ChatRequest(model="m", messages=[ChatMessage("assistant", tool_calls=[call])])
    with pytest.raises(ProviderError) as caught:
        complete(anthropic, request)
    assert caught.value.kind is FailureKind.CLIENT_ERROR
    assert anthropic.received == []


def test_streamed_text(server: FakeLlmServer) -> None:
    deltas = stream(server)
    assert "".join(d.text or "" for d in deltas) == "echo: hello there"
    assert len([d for d in deltas if d.text]) == 3
    final = deltas[-1]
    assert final.finish_reason == "stop"
    assert final.usage is not None and final.usage.reported_by_provider
    assert final.usage.completion_tokens == 3
    assert last_body(server)["stream"] is True


def streamed_text(deltas: list[ChatDelta]) -> str:
    return "".join(d.text or "" for d in deltas)


LONG = ChatRequest(model="m", messages=[ChatMessage("user", "one two three four five")])


def test_a_continuation_says_only_the_rest_of_the_answer(server: FakeLlmServer) -> None:
    whole = streamed_text(stream(server, LONG))
    assert whole == "echo: one two three four five"
    for given in ("echo:", "echo: one two", "echo: one two ", whole):
        continued = replace(LONG, continue_from=given)
        assert given + streamed_text(stream(server, continued)) == whole


def test_openai_is_asked_to_continue_by_instruction_and_its_restatement_is_dropped(
    openai: FakeLlmServer,
) -> None:
    openai.set_plan(FaultPlan(restate_words=2))
    given = "echo: one two"
    rest = streamed_text(stream(openai, replace(LONG, continue_from=given)))
    assert given + rest == "echo: one two three four five"
    messages = last_body(openai)["messages"]
    assert messages[-2:] == [
        {"role": "assistant", "content": given},
        {"role": "user", "content": CONTINUE_INSTRUCTION},
    ]


def test_anthropic_continues_from_a_prefill_without_trailing_whitespace(
    anthropic: FakeLlmServer,
) -> None:
    given = "echo: one two "
    rest = streamed_text(stream(anthropic, replace(LONG, continue_from=given)))
    assert given + rest == "echo: one two three four five"
    last = last_body(anthropic)["messages"][-1]
    assert last == {"role": "assistant", "content": [{"type": "text", "text": "echo: one two"}]}


def test_a_stream_cut_in_its_text_can_be_continued_and_one_cut_in_a_tool_call_cannot(
    server: FakeLlmServer,
) -> None:
    server.set_plan(FaultPlan(fault=Fault.DROP, drop_after=2))
    with pytest.raises(ProviderError) as in_text:
        stream(server, LONG)
    with pytest.raises(ProviderError) as in_call:
        stream(server, ASK_WEATHER)
    assert in_text.value.kind is in_call.value.kind is FailureKind.CONNECTION
    assert (in_text.value.continuable, in_call.value.continuable) == (True, False)


def test_openai_stream_asks_for_usage(openai: FakeLlmServer) -> None:
    stream(openai)
    assert last_body(openai)["stream_options"] == {"include_usage": True}


def test_streamed_tool_calls_are_assembled(server: FakeLlmServer) -> None:
    deltas = stream(server, ASK_WEATHER)
    final = deltas[-1]
    assert final.finish_reason == "tool_calls"
    [call] = final.tool_calls or []
    assert call["id"] == "call_fake_1"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"query": "weather in Paris?"}
    assert all(d.tool_calls is None for d in deltas[:-1])


def test_usage_is_counted_when_the_provider_reports_none(server: FakeLlmServer) -> None:
    server.set_plan(FaultPlan(report_usage=False))
    for usage in (complete(server).usage, stream(server)[-1].usage):
        assert usage is not None and not usage.reported_by_provider
        assert usage.prompt_tokens > 0 and usage.completion_tokens > 0


def test_latency_is_measured(server: FakeLlmServer) -> None:
    server.set_plan(FaultPlan(latency_s=0.2))
    assert complete(server).latency_ms >= 200


def test_calls_in_flight_stay_within_the_bound(server: FakeLlmServer) -> None:
    server.set_plan(FaultPlan(latency_s=0.1))

    async def many(provider: Provider) -> list[ChatResult]:
        return await asyncio.gather(*(provider.complete(HELLO, 5.0) for _ in range(8)))

    results = using(adapter(server, max_in_flight=2), many)
    assert len(results) == 8
    assert server.peak_in_flight == 2


@pytest.mark.parametrize("streamed", [False, True], ids=["complete", "stream"])
def test_a_call_that_timed_out_in_our_queue_is_not_the_providers_fault(
    server: FakeLlmServer, streamed: bool
) -> None:
    server.set_plan(FaultPlan(latency_s=0.6))

    async def call(provider: Provider, timeout_s: float) -> None:
        if streamed:
            async for _ in provider.stream(HELLO, timeout_s):
                pass
        else:
            await provider.complete(HELLO, timeout_s)

    async def two(provider: Provider) -> list[BaseException | None]:
        slow = asyncio.create_task(call(provider, 0.3))  # the provider takes too long
        while not server.received and not slow.done():  # the first call holds the slot
            await asyncio.sleep(0.005)  # poll interval, bounded by the slow call
        queued = asyncio.create_task(call(provider, 0.2))  # waits for that slot
        return await asyncio.gather(slow, queued, return_exceptions=True)

    slow, queued = using(adapter(server, max_in_flight=1), two)
    assert isinstance(slow, ProviderError) and isinstance(queued, ProviderError)
    assert slow.kind is queued.kind is FailureKind.TIMEOUT
    assert (slow.provider_fault, queued.provider_fault) == (True, False)
    assert len(server.received) == 1  # the queued call never reached the provider


# --- failures ---------------------------------------------------------------------------------

FAULTS = [
    (Fault.HANG, FailureKind.TIMEOUT, None),
    (Fault.RATE_LIMITED, FailureKind.RATE_LIMITED, 429),
    (Fault.SERVER_ERROR, FailureKind.SERVER_ERROR, 500),
    (Fault.OVERLOADED, FailureKind.SERVER_ERROR, 529),
    (Fault.BAD_REQUEST, FailureKind.CLIENT_ERROR, 400),
    (Fault.MALFORMED, FailureKind.MALFORMED, None),
    (Fault.WRONG_SHAPE, FailureKind.MALFORMED, None),
    (Fault.DROP, FailureKind.CONNECTION, None),
]


@pytest.mark.parametrize("streamed", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize(("fault", "kind", "status"), FAULTS, ids=[f[0] for f in FAULTS])
def test_every_fault_has_its_failure_kind(
    server: FakeLlmServer, streamed: bool, fault: Fault, kind: FailureKind, status: int | None
) -> None:
    server.set_plan(FaultPlan(fault=fault))
    error = failure(server, streamed, timeout_s=0.3)
    assert error.kind is kind
    if status is not None:
        assert error.status == status
    assert KEY not in f"{error} {error.detail!r} {error!r}"


def test_rate_limit_carries_retry_after_seconds(server: FakeLlmServer) -> None:
    server.set_plan(FaultPlan(fault=Fault.RATE_LIMITED, retry_after="3"))
    error = failure(server, streamed=False)
    assert error.retry_after_s == 3.0
    assert error.retryable


def test_rate_limit_carries_retry_after_as_http_date(server: FakeLlmServer) -> None:
    server.set_plan(
        FaultPlan(fault=Fault.RATE_LIMITED, retry_after=formatdate(time.time() + 30, usegmt=True))
    )
    error = failure(server, streamed=True)
    assert error.retry_after_s is not None and 25 < error.retry_after_s <= 30


def test_client_error_quotes_the_provider(server: FakeLlmServer) -> None:
    server.set_plan(FaultPlan(fault=Fault.BAD_REQUEST))
    error = failure(server, streamed=False)
    assert "Invalid value for 'messages'" in error.detail
    assert not error.retryable


def test_an_error_event_mid_stream_is_a_server_error(server: FakeLlmServer) -> None:
    server.set_plan(FaultPlan(fault=Fault.STREAM_ERROR))
    assert failure(server, streamed=True).kind is FailureKind.SERVER_ERROR


def test_the_callers_timeout_bounds_a_long_provider_timeout(server: FakeLlmServer) -> None:
    server.set_plan(FaultPlan(fault=Fault.HANG))
    started = time.monotonic()
    error = failure(server, streamed=False, timeout_s=0.2, timeout_ms=60_000)
    assert error.kind is FailureKind.TIMEOUT
    assert time.monotonic() - started < 5


def test_the_provider_timeout_bounds_a_long_callers_timeout(server: FakeLlmServer) -> None:
    server.set_plan(FaultPlan(fault=Fault.HANG))
    error = failure(server, streamed=True, timeout_s=60, timeout_ms=200)
    assert error.kind is FailureKind.TIMEOUT


def test_a_refused_connection_is_a_connection_failure() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for kind in ("openai", "anthropic"):
        provider = adapter(f"http://127.0.0.1:{port}/v1", kind)
        with pytest.raises(ProviderError) as caught:
            using(provider, lambda p: p.complete(HELLO, 2.0))
        assert caught.value.kind is FailureKind.CONNECTION


def test_a_rejected_key_echoed_by_the_provider_is_redacted(server: FakeLlmServer) -> None:
    server.api_key = "sk-the-one-the-server-wants"  # so it answers 401 quoting ours
    for streamed in (False, True):
        error = failure(server, streamed)
        assert error.kind is FailureKind.CLIENT_ERROR and error.status == 401
        assert "Incorrect API key provided: [redacted]" in error.detail
        assert KEY not in f"{error} {error.detail!r} {error!r}"


def test_the_key_is_not_in_the_adapters_repr(server: FakeLlmServer) -> None:
    provider = adapter(server)
    assert KEY not in repr(provider)
    using(provider, lambda p: p.complete(HELLO, 5.0))


def test_a_failure_rate_fails_every_other_call(server: FakeLlmServer) -> None:
    server.set_plan(FaultPlan(fault=Fault.SERVER_ERROR, rate=0.5))

    async def ten(provider: Provider) -> list[bool]:
        outcomes = []
        for _ in range(10):
            try:
                await provider.complete(HELLO, 5.0)
                outcomes.append(True)
            except ProviderError:
                outcomes.append(False)
        return outcomes

    assert using(adapter(server), ten) == [True, False] * 5


def test_a_script_then_recovery(server: FakeLlmServer) -> None:
    server.set_plan(FaultPlan(script=(Fault.SERVER_ERROR, Fault.RATE_LIMITED)))
    assert failure(server, streamed=False).kind is FailureKind.SERVER_ERROR
    assert failure(server, streamed=True).kind is FailureKind.RATE_LIMITED
    assert complete(server).text == "echo: hello there"


def test_the_plan_can_be_set_over_http_by_another_process(server: FakeLlmServer) -> None:
    root = server.base_url.removesuffix("/v1")
    httpx.post(f"{root}/_fake/plan", json={"fault": "overloaded"}).raise_for_status()
    assert failure(server, streamed=False).status == 529
    [seen] = httpx.get(f"{root}/_fake/received").json()
    assert seen["body"]["model"] == "gpt-4o-mini"


# --- the simulated provider -------------------------------------------------------------------


def simulated(**settings: Any) -> SimulatedProvider:
    fixed_zero = LatencyModel(distribution="fixed", p50_ms=0)
    return SimulatedProvider("sim", SimulationSettings(**{"latency": fixed_zero, **settings}))


def request_number(n: int) -> ChatRequest:
    return ChatRequest(model="sim-large", messages=[ChatMessage("user", f"question {n}")])


async def outcomes(provider: Provider, requests: list[ChatRequest]) -> list[str]:
    """Per request, its text or its failure kind."""
    seen = []
    for request in requests:
        try:
            seen.append((await provider.complete(request, 5.0)).text or "")
        except ProviderError as error:
            seen.append(error.kind.value)
    return seen


def test_simulated_runs_are_reproducible() -> None:
    requests = [request_number(n) for n in range(50)] * 2  # each asked twice: retries too
    first = using(simulated(error_rate=0.3, seed=5), lambda p: outcomes(p, requests))
    again = using(simulated(error_rate=0.3, seed=5), lambda p: outcomes(p, requests))
    other_seed = using(simulated(error_rate=0.3, seed=6), lambda p: outcomes(p, requests))
    assert first == again
    assert first != other_seed


def test_simulated_text_depends_on_the_request_only() -> None:
    async def texts(provider: Provider) -> list[str | None]:
        return [(await provider.complete(r, 5.0)).text for r in (HELLO, HELLO, ASK_WEATHER)]

    a, b, _ = using(simulated(seed=1, completion_tokens=12), texts)
    assert a == b and a is not None and len(a.split()) == 12
    assert using(simulated(seed=2, completion_tokens=12), texts)[0] == a


def test_simulated_answers_from_numbered_sources_by_citing_the_first() -> None:
    sources = (
        "Answer from the sources.\n\nSources:\n\n[1] (Warranty) Kettles carry a two-year "
        "warranty. It starts at purchase.\n\n[2] Returns take 30 days."
    )
    request = ChatRequest(
        model="sim-large",
        messages=[ChatMessage("system", sources), ChatMessage("user", "How long?")],
    )
    result = using(simulated(), lambda p: p.complete(request, 5.0))
    assert result.text == "Kettles carry a two-year warranty [1]."
    cut = using(simulated(), lambda p: p.complete(replace(request, max_tokens=2), 5.0))
    assert cut.text == "Kettles carry" and cut.finish_reason == "length"


def test_simulated_error_rate_is_honoured() -> None:
    requests = [request_number(n) for n in range(1_000)]
    seen = using(
        simulated(error_rate=0.25, error_kind="rate_limited"), lambda p: outcomes(p, requests)
    )
    assert 200 <= seen.count("rate_limited") <= 300
    assert {kind.value for kind in FailureKind} & set(seen) == {"rate_limited"}


def test_a_retry_of_a_failed_simulated_request_can_succeed() -> None:
    requests = [request_number(n) for n in range(40)]
    provider = simulated(error_rate=0.5)

    async def twice(p: Provider) -> tuple[list[str], list[str]]:
        return await outcomes(p, requests), await outcomes(p, requests)

    first, second = using(provider, twice)
    recovered = [i for i in range(40) if first[i] == "server_error" != second[i]]
    assert recovered


def test_simulated_stream_matches_its_completion() -> None:
    async def both(provider: Provider) -> tuple[ChatResult, list[ChatDelta]]:
        result = await provider.complete(HELLO, 5.0)
        return result, [d async for d in provider.stream(HELLO, 5.0)]

    result, deltas = using(simulated(completion_tokens=5), both)
    assert "".join(d.text or "" for d in deltas) == result.text
    assert len(deltas) == 6
    assert deltas[-1].finish_reason == "stop" and deltas[-1].usage == result.usage
    assert result.usage.completion_tokens == 5 and result.usage.reported_by_provider


def test_simulated_continuation_says_the_rest_of_its_answer() -> None:
    async def both(provider: Provider) -> tuple[ChatResult, list[ChatDelta]]:
        result = await provider.complete(HELLO, 5.0)
        given = " ".join((result.text or "").split()[:2])
        continued = replace(HELLO, continue_from=given)
        return result, [d async for d in provider.stream(continued, 5.0)]

    result, deltas = using(simulated(completion_tokens=5), both)
    words = (result.text or "").split()
    assert " ".join(words[:2]) + streamed_text(deltas) == result.text


def test_a_simulated_cut_drops_the_stream_halfway_and_a_continuation_finishes_it() -> None:
    finisher = simulated(completion_tokens=6)  # the same answers, never cut

    async def cut_then_continued(cutter: Provider) -> tuple[ChatResult, str, ProviderError]:
        whole = await cutter.complete(HELLO, 5.0)  # cuts touch streams only
        said: list[str] = []
        with pytest.raises(ProviderError) as cut:
            async for delta in cutter.stream(HELLO, 5.0):
                said.append(delta.text or "")
        continued = replace(HELLO, continue_from="".join(said))
        rest = streamed_text([d async for d in finisher.stream(continued, 5.0)])
        return whole, "".join(said) + rest, cut.value

    whole, stitched, cut = using(simulated(completion_tokens=6, cut_rate=1.0), cut_then_continued)
    assert cut.kind is FailureKind.CONNECTION and cut.continuable
    assert stitched == whole.text


def test_simulated_honours_max_tokens_and_offers_tool_calls() -> None:
    short = ChatRequest(model="m", messages=HELLO.messages, max_tokens=3)

    async def answers(provider: Provider) -> tuple[ChatResult, ChatResult]:
        return await provider.complete(short, 5.0), await provider.complete(ASK_WEATHER, 5.0)

    cut, tool = using(simulated(completion_tokens=10), answers)
    assert cut.finish_reason == "length" and len((cut.text or "").split()) == 3
    assert tool.finish_reason == "tool_calls"
    assert (tool.tool_calls or [])[0]["function"]["name"] == "get_weather"


def test_simulated_latency_beyond_the_timeout_is_a_timeout() -> None:
    slow = LatencyModel(distribution="fixed", p50_ms=5_000)
    with pytest.raises(ProviderError) as caught:
        using(simulated(latency=slow), lambda p: p.complete(HELLO, 0.05))
    assert caught.value.kind is FailureKind.TIMEOUT


async def _drain(deltas: AsyncIterator[ChatDelta]) -> list[ChatDelta]:
    return [d async for d in deltas]


def test_simulated_failures_surface_from_streams_too() -> None:
    with pytest.raises(ProviderError) as caught:
        using(simulated(error_rate=1.0), lambda p: _drain(p.stream(HELLO, 5.0)))
    assert caught.value.kind is FailureKind.SERVER_ERROR and caught.value.status == 500
