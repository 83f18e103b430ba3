"""What a streaming client is sent: one chunk per delta, the final text when no delta came, a
retried attempt forwarded only where it extends what was sent, and an error instead of text
that is not the answer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from api.errors import ApiError
from api.sse import StreamAssembler, sse_chunks


def delta(
    text: str | None, attempt: int = 1, calls: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "index": 0,
        "text": text,
        "tool_calls_json": json.dumps(calls) if calls else None,
        "provider": "p",
        "model": "m",
        "attempt": attempt,
    }


def completed(text: str | None, calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "output_text": text,
        "tool_calls_json": json.dumps(calls) if calls else None,
        "model": "m",
        "finish_reason": None,
        "prompt_tokens": 3,
        "completion_tokens": 2,
        "total_tokens": 5,
    }


CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


def test_each_delta_is_forwarded_and_the_answer_adds_nothing_new() -> None:
    stream = StreamAssembler()
    assert stream.on_delta(delta("Hello")) == {"content": "Hello"}
    assert stream.on_delta(delta(" world")) == {"content": " world"}
    assert stream.on_completed(completed("Hello world")) is None


def test_without_deltas_the_final_text_goes_out_as_one_chunk() -> None:
    assert StreamAssembler().on_completed(completed("all at once")) == {"content": "all at once"}


def test_a_retried_attempt_only_extends_what_was_sent() -> None:
    stream = StreamAssembler()
    stream.on_delta(delta("The answer"))
    assert stream.on_delta(delta("The", attempt=2)) is None  # catching up, silent
    assert stream.on_delta(delta(" answer is 4", attempt=2)) == {"content": " is 4"}
    assert stream.on_delta(delta(" late", attempt=1)) is None  # an older attempt is ignored
    assert stream.on_completed(completed("The answer is 4")) is None


def test_a_resumed_attempt_extends_the_text_so_far_instead_of_starting_over() -> None:
    stream = StreamAssembler()
    assert stream.on_delta(delta("The capital of")) == {"content": "The capital of"}
    stream.on_resumed({"attempt": 3, "continues_attempt": 1})
    assert stream.on_delta(delta(" France", attempt=3)) == {"content": " France"}
    assert stream.on_delta(delta(" is Paris.", attempt=3)) == {"content": " is Paris."}
    assert stream.on_completed(completed("The capital of France is Paris.")) is None


def test_an_attempt_after_a_resumed_one_starts_over_unless_resumed_too() -> None:
    stream = StreamAssembler()
    stream.on_delta(delta("The capital"))
    stream.on_resumed({"attempt": 2, "continues_attempt": 1})
    stream.on_delta(delta(" of", attempt=2))
    assert stream.on_delta(delta("The capital of France", attempt=3)) == {"content": " France"}


def test_an_answer_that_does_not_extend_the_sent_text_is_an_error() -> None:
    stream = StreamAssembler()
    stream.on_delta(delta("mail me at jane@example.com"))
    with pytest.raises(ApiError) as error:
        stream.on_completed(completed("mail me at [EMAIL]"))
    assert error.value.code == "STREAM_INCONSISTENT" and error.value.retryable


def test_tool_calls_are_sent_once_with_their_index() -> None:
    stream = StreamAssembler()
    assert stream.on_delta(delta(None, calls=[CALL])) == {"tool_calls": [{"index": 0, **CALL}]}
    assert stream.on_completed(completed(None, calls=[CALL])) is None
    assert StreamAssembler().on_completed(completed(None, calls=[CALL])) == {
        "tool_calls": [{"index": 0, **CALL}]
    }


def run(events: list[dict[str, Any]], include_usage: bool = False) -> tuple[list[str], list[str]]:
    ended: list[str] = []

    async def source() -> AsyncIterator[dict[str, Any]]:
        for event in events:
            yield event

    async def on_terminal(event: dict[str, Any]) -> None:
        ended.append(event["event_type"])

    async def collect() -> list[str]:
        return [
            line
            async for line in sse_chunks(
                source(),
                correlation_id="req_1",
                created=1,
                model="auto",
                include_usage=include_usage,
                on_terminal=on_terminal,
            )
        ]

    return asyncio.run(collect()), ended


def test_the_wire_format_ends_with_finish_usage_and_done() -> None:
    lines, ended = run(
        [
            {"event_type": "llm.request.started", "payload": {}},
            {"event_type": "llm.delta.generated", "payload": delta("Hi")},
            {"event_type": "llm.request.completed", "payload": completed("Hi there")},
        ],
        include_usage=True,
    )
    assert ended == ["llm.request.completed"]
    assert all(line.startswith("data: ") and line.endswith("\n\n") for line in lines)
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert lines[-1] == "data: [DONE]\n\n"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    contents = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert "".join(c or "" for c in contents) == "Hi there"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 5
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}


def test_a_failed_run_ends_the_stream_with_a_structured_error() -> None:
    failed = {"error_code": "PROVIDER_TIMEOUT", "message": "slow", "retryable": True}
    lines, _ = run([{"event_type": "llm.request.failed", "payload": failed}])
    error = json.loads(lines[-1][6:])["error"]
    assert error == {
        "code": "PROVIDER_TIMEOUT",
        "message": "slow",
        "retryable": True,
        "correlation_id": "req_1",
    }
