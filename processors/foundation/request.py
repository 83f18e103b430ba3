"""A ``llm.chat.requested`` payload, checked and turned into what the pipeline works with."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from processors.foundation.providers.base import ChatMessage, ChatRequest
from streams.errors import ErrorCode, PlatformError

__all__ = ["ParsedRequest", "exact_cache_key", "parse_request"]

_ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})
DEFAULT_MAX_TOKENS = 1024


@dataclass(frozen=True)
class ParsedRequest:
    mode: str
    model_hint: str | None
    chat: ChatRequest  # ``model`` is left empty: the router fills it per target
    stream: bool
    bypass_cache: bool
    deadline: datetime | None
    max_total_tokens: int | None
    max_cost_usd: float | None

    def for_target(self, model: str, messages: list[ChatMessage]) -> ChatRequest:
        return replace(self.chat, model=model, messages=messages)

    def expected_completion_tokens(self) -> int:
        return self.chat.max_tokens or DEFAULT_MAX_TOKENS


def parse_request(
    payload: Mapping[str, Any], received_at: datetime, timeout_s: float
) -> ParsedRequest:
    """Raise ``INVALID_REQUEST`` naming the field for anything a provider would reject."""
    messages = [_message(i, m) for i, m in enumerate(payload["messages"])]
    if not messages:
        raise _invalid("messages", "at least one message is required")
    budget = payload.get("budget") or {}
    deadline = payload.get("deadline") or received_at + timedelta(seconds=timeout_s)
    max_tokens = payload.get("max_tokens")
    if max_tokens is not None and max_tokens < 1:
        raise _invalid("max_tokens", "must be at least 1")
    chat = ChatRequest(
        model="",
        messages=messages,
        tools=_json_field(payload, "tools_json", list),
        tool_choice=_json_field(payload, "tool_choice_json", (str, dict)),
        response_format=_json_field(payload, "response_format_json", dict),
        stop=list(payload.get("stop") or []),
        max_tokens=max_tokens,
        temperature=payload.get("temperature"),
        top_p=payload.get("top_p"),
    )
    return ParsedRequest(
        mode=str(payload["mode"]),
        model_hint=payload.get("model"),
        chat=chat,
        stream=bool(payload.get("stream")),
        bypass_cache=payload.get("cache") == "bypass",
        deadline=deadline,
        max_total_tokens=budget.get("max_tokens"),
        max_cost_usd=budget.get("max_cost_usd"),
    )


def exact_cache_key(
    tenant: str, route_id: str, model_hint: str | None, request: ChatRequest
) -> str:
    """Tenant-scoped hash of everything that shapes the answer; message text is taken after
    redaction, so a cached answer never depends on (or reveals) redacted values."""
    normalized = {
        "tenant": tenant,
        "route": route_id,
        "model": model_hint,
        "messages": [
            [m.role, (m.content or "").strip(), m.name, m.tool_call_id, m.tool_calls]
            for m in request.messages
        ],
        "tools": request.tools,
        "tool_choice": request.tool_choice,
        "response_format": request.response_format,
        "stop": sorted(request.stop),
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
    }
    digest = hashlib.sha256(json.dumps(normalized, sort_keys=True).encode()).hexdigest()
    return f"{tenant}:{digest}"


def _message(index: int, raw: Mapping[str, Any]) -> ChatMessage:
    role = raw["role"]
    if role not in _ROLES:
        raise _invalid(f"messages[{index}].role", f"unknown role {role!r}")
    tool_calls = _json_text(raw.get("tool_calls_json"), f"messages[{index}].tool_calls", list)
    return ChatMessage(
        role=role,
        content=raw.get("content"),
        name=raw.get("name"),
        tool_call_id=raw.get("tool_call_id"),
        tool_calls=tool_calls,
    )


def _json_field(payload: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    return _json_text(payload.get(key), key.removesuffix("_json"), kind)


def _json_text(text: str | None, field: str, kind: type | tuple[type, ...]) -> Any:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _invalid(field, f"not valid JSON ({exc.msg})") from None
    if not isinstance(value, kind):
        raise _invalid(field, "has the wrong JSON type")
    return value


def _invalid(field: str, problem: str) -> PlatformError:
    return PlatformError(ErrorCode.INVALID_REQUEST, f"{field}: {problem}")
