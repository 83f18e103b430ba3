"""Streams that survive a provider cut, end to end: the official ``openai`` SDK streams through
the API while the fake OpenAI primary and the fake Anthropic fallback (which words its answers
differently, as another model would) cut their streams after 0, 1, k or all but one chunks, on
the primary, on a retry of the same target, on both targets, inside a tool call. In every
completed case the text the SDK assembled is the run's final answer and no client error is
raised; where continuing is impossible or refused, the client gets a structured, retryable
error, never stitched text."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import openai
import pytest
import yaml
from openai import OpenAI

from processors.foundation.providers import ChatMessage, count_text_tokens, count_tokens
from schemas import default_catalog
from streams.envelope import Envelope
from streams.serde import AvroSerde, SingleObjectFraming
from tests.fakes.llm_servers import AnthropicFake, Fault, FaultPlan, OpenAIFake
from tests.integration.foundation_setup import ENV, FALLBACK_KEY, PRIMARY_KEY, write_config
from tests.integration.kafka_reading import TopicReader
from tests.integration.test_api_support import Stack, running_stack

SERDE = AvroSerde(default_catalog(), SingleObjectFraming(default_catalog()))
TERMINAL = ("llm.request.completed", "llm.request.failed")
WORDS = 7  # "echo: tell <tag> one two three four", one chunk a word
IDLE_MS = 300  # a begun stream quiet this long is cut (the whole call may take 3 s)


def route(model: str, attempts: int, resume: str = "continue") -> dict[str, Any]:
    return {
        "id": model,
        "match": {"model": model},
        "policy": {
            "primary": {"provider": "primary", "model": "gpt-x"},
            "fallbacks": [{"provider": "fallback", "model": "claude-x"}],
        },
        "retry": {"max_attempts": attempts, "base_delay_ms": 1, "max_delay_ms": 5},
        "stream_resume": resume,
    }


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[OpenAIFake, AnthropicFake]]:
    with OpenAIFake(PRIMARY_KEY) as primary, AnthropicFake(FALLBACK_KEY, voice="heard") as fallback:
        yield primary, fallback


@pytest.fixture(scope="module")
def stack(
    bootstrap: str,
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    fakes: tuple[OpenAIFake, AnthropicFake],
) -> Iterator[Stack]:
    primary, fallback = fakes
    workdir = tmp_path_factory.mktemp("resume")
    routing = {
        "routes": [
            route("one-try", 1),
            route("two-tries", 2),
            route("restart", 1, "restart_error"),
        ],
        "breaker": {"failure_threshold": 1000, "window_s": 30, "open_for_s": 10},
    }
    guardrails = {"policies": {"plain": {"output": {"pii": None}}}, "tenants": {"*": "plain"}}
    configs = write_config(
        workdir / "foundation",
        primary.base_url,
        fallback.base_url,
        routing=routing,
        guardrails=guardrails,
    )
    providers = yaml.safe_load((configs / "providers.yaml").read_text())
    for settings in providers["providers"].values():
        settings["stream_idle_timeout_ms"] = IDLE_MS
    (configs / "providers.yaml").write_text(yaml.safe_dump(providers))
    with running_stack(bootstrap, redis_url, workdir, foundation_configs=configs, env=ENV) as up:
        yield up


@dataclass
class Streamed:
    correlation_id: str
    text: str
    tool_calls: list[Any]
    error: openai.APIError | None
    events: list[Envelope] = field(default_factory=list)

    @property
    def terminal(self) -> Envelope:
        [end] = [e for e in self.events if e.message_type in TERMINAL]
        return end

    def resumed_by(self) -> list[str]:
        resumed = [e for e in self.events if e.message_type == "llm.stream.resumed"]
        return [str(e.payload["provider"]) for e in resumed]


def stream_chat(stack: Stack, model: str, prompt: str, **options: Any) -> Streamed:
    """One streamed chat through the SDK, then the run's events from the topic."""
    client = OpenAI(base_url=f"{stack.api.url}/v1", api_key=stack.tenants["a"].key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": prompt}], stream=True, **options
    )
    streamed = Streamed(raw.headers["x-correlation-id"], "", [], None)
    try:
        for chunk in raw.parse():
            if chunk.choices:
                streamed.text += chunk.choices[0].delta.content or ""
                streamed.tool_calls += chunk.choices[0].delta.tool_calls or []
    except openai.APIError as error:
        streamed.error = error
    reader = TopicReader(stack.bootstrap, stack.topics.topic_for("llm.request.completed"), SERDE)

    def ended(r: TopicReader) -> bool:
        return any(
            e.correlation_id == streamed.correlation_id and e.message_type in TERMINAL
            for e in r.envelopes
        )

    reader.poll_until(ended, 30, "the run's terminal event")
    streamed.events = [e for e in reader.envelopes if e.correlation_id == streamed.correlation_id]
    return streamed


def planned(
    fakes: tuple[OpenAIFake, AnthropicFake], primary: FaultPlan, fallback: FaultPlan
) -> AnthropicFake:
    """What the fakes' next requests suffer; the fallback, whose requests tests read."""
    fakes[0].set_plan(primary)
    fakes[1].set_plan(fallback)
    return fakes[1]


def prompt() -> str:
    return f"tell {uuid.uuid4().hex[:8]} one two three four"


@dataclass(frozen=True)
class Cut:
    case: str
    model: str
    primary: FaultPlan
    fallback: FaultPlan
    resumed_by: list[str]
    served_by: str


def dropped(after: int, times: int = 1, **plan: Any) -> FaultPlan:
    return FaultPlan(script=(Fault.DROP,) * times, drop_after=after, **plan)


CUTS = [
    Cut("primary cut after 0 chunks", "one-try", dropped(0), FaultPlan(), [], "fallback"),
    Cut("primary cut after 1 chunk", "one-try", dropped(1), FaultPlan(), ["fallback"], "fallback"),
    Cut("primary cut after k chunks", "one-try", dropped(3), FaultPlan(), ["fallback"], "fallback"),
    Cut(
        "primary cut after all but one chunk",
        "one-try",
        dropped(WORDS - 1),
        FaultPlan(),
        ["fallback"],
        "fallback",
    ),
    Cut(
        "cut, then continued by a retry of the same target that restates its last words",
        "two-tries",
        dropped(3, restate_words=2),
        FaultPlan(),
        ["primary"],
        "primary",
    ),
    Cut(
        "cuts on both targets",
        "two-tries",
        dropped(2, times=2),
        dropped(1),
        ["primary", "fallback", "fallback"],
        "fallback",
    ),
]


@pytest.mark.parametrize("cut", CUTS, ids=[c.case for c in CUTS])
def test_a_cut_stream_reaches_the_client_whole_and_equal_to_the_final_answer(
    cut: Cut, stack: Stack, fakes: tuple[OpenAIFake, AnthropicFake]
) -> None:
    planned(fakes, cut.primary, cut.fallback)
    asked = prompt()
    streamed = stream_chat(stack, cut.model, asked)
    assert streamed.error is None
    done = streamed.terminal
    assert done.message_type == "llm.request.completed"
    assert streamed.text == done.payload["output_text"]
    voice = "heard" if cut.resumed_by == [] and cut.served_by == "fallback" else "echo"
    assert streamed.text == f"{voice}: {asked}"
    assert streamed.resumed_by() == cut.resumed_by
    assert done.payload["provider"] == cut.served_by
    assert done.payload["fallback_used"] == (cut.served_by == "fallback")


def test_a_stream_that_goes_quiet_midway_is_cut_at_its_idle_bound_and_continued(
    stack: Stack, fakes: tuple[OpenAIFake, AnthropicFake]
) -> None:
    planned(fakes, FaultPlan(script=(Fault.STALL,), drop_after=3), FaultPlan())
    asked = prompt()
    streamed = stream_chat(stack, "one-try", asked)
    assert streamed.error is None and streamed.text == f"echo: {asked}"
    assert streamed.resumed_by() == ["fallback"]
    [quiet] = [e.payload for e in streamed.events if e.message_type == "llm.attempt.failed"]
    assert quiet["failure_kind"] == "timeout"
    assert quiet["detail"] == f"no chunk for {IDLE_MS / 1000:.1f}s mid-stream"


def test_a_continued_answer_counts_the_tokens_of_every_attempt(
    stack: Stack, fakes: tuple[OpenAIFake, AnthropicFake]
) -> None:
    fallback = planned(fakes, dropped(3), FaultPlan())
    asked = prompt()
    streamed = stream_chat(stack, "one-try", asked)
    done = streamed.terminal.payload
    cut_text = " ".join(f"echo: {asked}".split()[:3])
    prefill = fallback.received[-1].body["messages"][-1]  # type: ignore[index]
    assert prefill == {"role": "assistant", "content": [{"type": "text", "text": cut_text}]}
    cut_tokens = count_text_tokens("gpt-x", cut_text)  # the primary reported none: counted
    assert done["completion_tokens"] == cut_tokens + (WORDS - 3)  # the fallback's own count
    fallback_prompt = fallback.reply(fallback.received[-1].body, FaultPlan())["usage"]  # type: ignore[arg-type]
    cut_prompt = count_tokens("gpt-x", [ChatMessage("user", asked)])
    assert done["prompt_tokens"] == cut_prompt + fallback_prompt["input_tokens"]
    price = cut_prompt * 1.0 + cut_tokens * 2.0
    price += fallback_prompt["input_tokens"] * 3.0 + (WORDS - 3) * 15.0
    assert done["cost_usd"] == pytest.approx(price / 1e6)


def test_when_every_target_is_cut_the_client_gets_a_retryable_error(
    stack: Stack, fakes: tuple[OpenAIFake, AnthropicFake]
) -> None:
    planned(fakes, dropped(2), dropped(1))
    asked = prompt()
    streamed = stream_chat(stack, "one-try", asked)
    assert streamed.error is not None
    assert isinstance(streamed.error.body, dict) and streamed.error.body["retryable"] is True
    assert streamed.terminal.message_type == "llm.request.failed"
    assert f"echo: {asked}".startswith(streamed.text)  # what was sent is no garbage


def test_a_cut_inside_a_tool_call_is_not_continued(
    stack: Stack, fakes: tuple[OpenAIFake, AnthropicFake]
) -> None:
    fallback = planned(fakes, dropped(1), FaultPlan())  # cut after the call's name
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    streamed = stream_chat(stack, "one-try", prompt(), tools=[tool])
    assert streamed.resumed_by() == []
    assert fallback.received[-1].body["messages"][-1]["role"] == "user"  # type: ignore[index]
    assert streamed.error is None  # nothing had reached the client: the fallback starts clean
    assert [call.function.name for call in streamed.tool_calls] == ["lookup"]


def test_a_route_that_restarts_cut_streams_ends_them_with_a_retryable_error(
    stack: Stack, fakes: tuple[OpenAIFake, AnthropicFake]
) -> None:
    planned(fakes, dropped(3), FaultPlan())
    asked = prompt()
    streamed = stream_chat(stack, "restart", asked)
    assert streamed.resumed_by() == []
    assert streamed.error is not None
    body = streamed.error.body
    assert isinstance(body, dict) and body["code"] == "STREAM_INCONSISTENT" and body["retryable"]
    assert streamed.text == " ".join(f"echo: {asked}".split()[:3])
