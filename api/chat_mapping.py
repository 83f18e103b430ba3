"""Between the OpenAI shapes and the platform's messages: a request becomes the payload of an
``llm.chat.requested`` command; a run's terminal event becomes the response or the error."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from api.chat_schema import (
    AssistantInput,
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessage,
    Choice,
    Grounding,
    ToolCall,
    ToolMessage,
    Usage,
)
from api.errors import ApiError
from schemas.chat_run import RAG_TERMINAL, TERMINAL
from schemas.payloads import LlmRequestCompletedPayload, LlmRequestFailedPayload
from streams.errors import ErrorCode

__all__ = [
    "command_payload",
    "completion_id",
    "completion_of",
    "created_of",
    "failure_of",
    "finish_reason_of",
    "routed_command",
    "tool_calls_of",
]


def command_payload(
    request: ChatCompletionRequest,
    *,
    deadline: datetime,
    idempotency_key: str | None,
    bypass_cache: bool,
) -> dict[str, Any]:
    budget = request.budget
    metadata = dict(request.metadata or {})
    if request.user is not None:
        metadata["user"] = request.user
    return {
        "messages": [_message(message) for message in request.messages],
        "model": request.model,
        "mode": request.mode,
        "tools_json": _json([t.model_dump(exclude_none=True) for t in request.tools])
        if request.tools
        else None,
        "tool_choice_json": _json(_dumped(request.tool_choice)),
        "response_format_json": _json(_dumped(request.response_format)),
        "stop": request.stop_sequences(),
        "max_tokens": request.completion_limit(),
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stream": request.stream,
        "budget": budget.model_dump() if budget is not None else None,
        "cache": "bypass" if bypass_cache else "default",
        "idempotency_key": idempotency_key,
        "deadline": deadline,
        "metadata": metadata,
    }


def _message(message: ChatMessage) -> dict[str, Any]:
    calls = message.tool_calls if isinstance(message, AssistantInput) else None
    return {
        "role": message.role,
        "content": message.text(),
        "name": message.name,
        "tool_call_id": message.tool_call_id if isinstance(message, ToolMessage) else None,
        "tool_calls_json": _json([c.model_dump() for c in calls]) if calls else None,
    }


def completion_id(correlation_id: str) -> str:
    return f"chatcmpl-{correlation_id}"


def tool_calls_of(payload: Mapping[str, Any]) -> list[ToolCall] | None:
    text = payload.get("tool_calls_json")
    if not text:
        return None
    return [ToolCall.model_validate(call, strict=False) for call in json.loads(text)]


def created_of(event: Mapping[str, Any]) -> int:
    return int(datetime.fromisoformat(str(event["timestamp"])).timestamp())


def routed_command(
    body: ChatCompletionRequest, chat: dict[str, Any]
) -> tuple[str, dict[str, Any], frozenset[str]]:
    """Which command asks for this run, and which events end it: a mode rag request goes to
    layer 3, which retrieves, asks layer 1, and ends the run once citations are checked."""
    if body.rag is None:
        return "llm.chat.requested", chat, TERMINAL
    request = {
        "collection": body.rag.collection,
        "top_k": body.rag.top_k,
        "filters": body.rag.filters,
        "retrieval_mode": body.rag.retrieval_mode,
        "chat": chat,
    }
    return "rag.answer.requested", request, RAG_TERMINAL


def finish_reason_of(payload: Mapping[str, Any]) -> str:
    """The provider's, else what the answer implies (OpenAI's field is never null)."""
    reason = payload.get("finish_reason")
    return str(reason) if reason else ("tool_calls" if payload.get("tool_calls_json") else "stop")


def completion_of(terminal: Mapping[str, Any]) -> ChatCompletion:
    """The response for an ``llm.request.completed`` or ``rag.answer.completed`` event (as
    JSON): the second has the first's fields and its citations."""
    payload = cast(LlmRequestCompletedPayload, terminal["payload"])
    text = payload.get("output_text")
    return ChatCompletion(
        id=completion_id(terminal["correlation_id"]),
        created=created_of(terminal),
        model=payload["model"],
        choices=[
            Choice(
                index=0,
                message=AssistantMessage(content=text, tool_calls=tool_calls_of(payload)),
                finish_reason=finish_reason_of(payload),
            )
        ],
        usage=Usage(
            prompt_tokens=payload["prompt_tokens"],
            completion_tokens=payload["completion_tokens"],
            total_tokens=payload["total_tokens"],
        ),
        output_text=text,
        citations=list(terminal["payload"].get("citations") or []),
        grounding=_grounding(terminal["payload"]),
        trace_id=terminal["trace_id"],
        correlation_id=terminal["correlation_id"],
    )


def _grounding(payload: Mapping[str, Any]) -> Grounding | None:
    """A mode rag answer's check (``rag.answer.completed``); None for other runs."""
    if "grounding_score" not in payload:
        return None
    return Grounding(
        score=payload["grounding_score"],
        unsupported_sentences=payload["unsupported_sentences"],
        degraded=payload["degraded"],
        retrieval_mode=payload["retrieval_mode"],
    )


def failure_of(terminal: Mapping[str, Any]) -> ApiError:
    """The error for an ``llm.request.failed`` event; its code decides the HTTP status."""
    payload = cast(LlmRequestFailedPayload, terminal["payload"])
    try:
        code = ErrorCode(payload["error_code"])
    except ValueError:
        code = ErrorCode.INTERNAL
    return ApiError(code, payload["message"])


def _dumped(model: Any) -> Any:
    if model is None or isinstance(model, str):
        return model
    return model.model_dump(exclude_none=True, by_alias=True)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)
