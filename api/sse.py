"""``stream=true``: a run's ``llm.delta.generated`` events as OpenAI ``chat.completion.chunk``
server-sent events, one chunk per delta, the finish chunk, then ``[DONE]``.

What the client has been sent must stay a prefix of the answer. A retried attempt starts its
deltas over, unless ``llm.stream.resumed`` said it continues the text streamed so far; a
restarted attempt's text is forwarded only where it extends what was already sent. When no delta
arrived at all (a cache hit, or a processor that does not stream) the final text goes out as
one chunk. Deltas carry text the output guardrails have already redacted, and only a prefix
of their verdict on the whole answer, so they never disagree with it. If the answer turns out
not to extend what was sent (a retry that said something else), the stream ends with a
``STREAM_INCONSISTENT`` error rather than leave the client holding text that is not the
answer."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from api.chat_mapping import completion_id, failure_of, finish_reason_of
from api.errors import ApiError, HttpErrorCode, error_payload
from schemas.chat_run import COMPLETED, DELTA, FAILED, RESUMED

Event = Mapping[str, Any]

__all__ = ["StreamAssembler", "sse_chunks"]


@dataclass
class StreamAssembler:
    """Pure bookkeeping of one stream: what was sent, and which attempt is being forwarded."""

    sent: str = ""
    attempt: int = 0
    _attempt_text: str = ""
    _continuing: int = 0  # an attempt that goes on from the text so far
    tool_calls_sent: list[dict[str, Any]] = field(default_factory=list)

    def on_resumed(self, payload: Mapping[str, Any]) -> None:
        """The named attempt's deltas extend the text so far instead of starting over."""
        self._continuing = int(payload["attempt"])

    def on_delta(self, payload: Mapping[str, Any]) -> dict[str, Any] | None:
        """The chunk ``delta`` to send for this event, if any."""
        attempt = int(payload["attempt"])
        if attempt < self.attempt:
            return None
        if attempt > self.attempt:
            self.attempt = attempt
            if attempt != self._continuing:
                self._attempt_text = ""
        self._attempt_text += payload.get("text") or ""
        delta: dict[str, Any] = {}
        if self._attempt_text.startswith(self.sent) and len(self._attempt_text) > len(self.sent):
            delta["content"] = self._attempt_text[len(self.sent) :]
            self.sent = self._attempt_text
        calls = json.loads(payload["tool_calls_json"]) if payload.get("tool_calls_json") else []
        if calls and not self.tool_calls_sent:
            delta["tool_calls"] = _indexed(calls)
            self.tool_calls_sent = calls
        return delta or None

    def on_completed(self, payload: Mapping[str, Any]) -> dict[str, Any] | None:
        """What the client still lacks of the final answer; raises if it cannot be reached."""
        text = payload.get("output_text") or ""
        calls = json.loads(payload["tool_calls_json"]) if payload.get("tool_calls_json") else []
        if not text.startswith(self.sent) or (
            self.tool_calls_sent and calls != self.tool_calls_sent
        ):
            raise ApiError(
                HttpErrorCode.STREAM_INCONSISTENT,
                "the streamed text is not a prefix of the final answer; discard it and retry",
            )
        delta: dict[str, Any] = {}
        if len(text) > len(self.sent):
            delta["content"] = text[len(self.sent) :]
            self.sent = text
        if calls and not self.tool_calls_sent:
            delta["tool_calls"] = _indexed(calls)
            self.tool_calls_sent = calls
        return delta or None


def _indexed(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Whole calls in the chunk form: each carries its ``index``."""
    return [{"index": i, **call} for i, call in enumerate(calls)]


def _data(payload: Mapping[str, Any]) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


@dataclass(frozen=True)
class _Chunks:
    correlation_id: str
    created: int
    model: str

    def chunk(
        self,
        delta: Mapping[str, Any],
        finish_reason: str | None = None,
        usage: Mapping[str, int] | None = None,
        model: str | None = None,
    ) -> str:
        choices = (
            []
            if usage is not None
            else [
                {"index": 0, "delta": dict(delta), "finish_reason": finish_reason, "logprobs": None}
            ]
        )
        body: dict[str, Any] = {
            "id": completion_id(self.correlation_id),
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": model or self.model,
            "choices": choices,
            "correlation_id": self.correlation_id,
        }
        if usage is not None:
            body["usage"] = dict(usage)
        return _data(body)


async def sse_chunks(
    events: AsyncIterator[Event],
    *,
    correlation_id: str,
    created: int,
    model: str,
    include_usage: bool,
    on_terminal: Callable[[Event], Awaitable[None]],
) -> AsyncIterator[str]:
    """``events`` yields the run's events in order and raises ``ApiError`` past the deadline;
    every failure after the response head is an ``{"error": ...}`` event (the OpenAI SDKs
    raise it as ``APIError``)."""
    chunks = _Chunks(correlation_id, created, model)
    assembler = StreamAssembler()
    yield chunks.chunk({"role": "assistant", "content": ""})
    try:
        async for event in events:
            kind, payload = event["event_type"], event["payload"]
            if kind == DELTA:
                delta = assembler.on_delta(payload)
                if delta is not None:
                    yield chunks.chunk(delta, model=str(payload["model"]))
            elif kind == RESUMED:
                assembler.on_resumed(payload)
            elif kind == COMPLETED:
                await on_terminal(event)
                for line in _finish(chunks, assembler, payload, include_usage):
                    yield line
                return
            elif kind == FAILED:
                await on_terminal(event)
                raise failure_of(event)
    except ApiError as error:
        yield _data(error_payload(error.code.value, error.message, error.retryable, correlation_id))


def _finish(
    chunks: _Chunks, assembler: StreamAssembler, payload: Event, include_usage: bool
) -> list[str]:
    """What the client still lacks, the finish chunk, usage if asked, ``[DONE]``."""
    model = str(payload["model"])
    rest = assembler.on_completed(payload)
    lines = [] if rest is None else [chunks.chunk(rest, model=model)]
    lines.append(chunks.chunk({}, finish_reason=finish_reason_of(payload), model=model))
    if include_usage:
        usage = {k: int(payload[k]) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
        lines.append(chunks.chunk({}, usage=usage, model=model))
    lines.append("data: [DONE]\n\n")
    return lines
