"""Anthropic's Messages API (``POST {base_url}/v1/messages``), translated from and to the
OpenAI shapes that ``ChatRequest`` and ``ChatResult`` use, so callers never see the difference:
system messages become ``system``, tool calls ``tool_use`` blocks, tool results
``tool_result`` blocks, and stop reasons OpenAI's finish reasons."""

from __future__ import annotations

import json
from typing import Any

from processors.foundation.config import ProviderSettings
from processors.foundation.providers._adapter import Answer, HttpChatAdapter
from processors.foundation.providers._assembly import StreamedAnswer, tool_call
from processors.foundation.providers._http import JsonApi, SseEvent
from processors.foundation.providers.base import (
    ChatMessage,
    ChatRequest,
    FailureKind,
    ProviderError,
    Usage,
)

__all__ = ["AnthropicProvider"]

_PATH = "/v1/messages"
_DEFAULT_BASE_URL = "https://api.anthropic.com"
_API_VERSION = "2023-06-01"
_DEFAULT_MAX_TOKENS = 1024  # the API requires a bound; OpenAI's has none by default
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# An ``error`` event arrives after a 200, so its type, not a status, says what failed.
_STREAM_ERROR_KINDS = {
    "rate_limit_error": FailureKind.RATE_LIMITED,
    "invalid_request_error": FailureKind.CLIENT_ERROR,
    "authentication_error": FailureKind.CLIENT_ERROR,
    "permission_error": FailureKind.CLIENT_ERROR,
    "not_found_error": FailureKind.CLIENT_ERROR,
    "request_too_large": FailureKind.CLIENT_ERROR,
}


class AnthropicProvider(HttpChatAdapter):
    _path = _PATH
    _answer_noun = "message"
    _restates = False  # a prefill: it goes on from the exact text

    def __init__(self, name: str, settings: ProviderSettings, api_key: str | None) -> None:
        self.name = name
        headers = {"anthropic-version": _API_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        self._api = JsonApi(
            name,
            settings.base_url or _DEFAULT_BASE_URL,
            headers,
            api_key,
            settings.timeout_ms,
            settings.max_in_flight,
        )

    def _request_body(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        return _request_body(request, stream)

    def _read_answer(self, body: dict[str, Any]) -> Answer:
        texts = [block["text"] for block in body["content"] if block["type"] == "text"]
        calls = [
            tool_call(block["id"], block["name"], json.dumps(block["input"]))
            for block in body["content"]
            if block["type"] == "tool_use"
        ] or None
        return Answer(
            text="".join(texts) if texts else None,
            tool_calls=calls,
            usage=_usage(body.get("usage") or {}, None),
            finish_reason=_finish_reason(body.get("stop_reason")),
        )

    def _take(self, answer: StreamedAnswer, event: SseEvent) -> str | None:
        return self._fold(answer, self._api.decode(event.data, "stream event"))

    def _fold(self, answer: StreamedAnswer, event: dict[str, Any]) -> str | None:
        with self._api.shape("stream event"):
            kind = event["type"]
            if kind == "error":
                error = event["error"]
                failure = _STREAM_ERROR_KINDS.get(error["type"], FailureKind.SERVER_ERROR)
                detail = self._api.redact(f"{error['type']}: {error.get('message', '')}")
                raise ProviderError(failure, f"error mid-stream: {detail}")
            if kind == "message_start":
                answer.usage = _usage(event["message"].get("usage") or {}, None)
            elif kind == "content_block_start":
                block = event["content_block"]
                if block["type"] == "tool_use":
                    answer.add_tool_call(event["index"], block["id"], block["name"])
            elif kind == "content_block_delta":
                delta = event["delta"]
                if delta["type"] == "input_json_delta":
                    answer.add_tool_call(event["index"], arguments=delta["partial_json"])
                elif delta["type"] == "text_delta":
                    answer.text.append(delta["text"])
                    return str(delta["text"])
            elif kind == "message_delta":
                answer.finish_reason = _finish_reason(event["delta"].get("stop_reason"))
                answer.usage = _usage(event.get("usage") or {}, answer.usage)
            elif kind == "message_stop":
                answer.ended = True
        return None


def _request_body(request: ChatRequest, stream: bool) -> dict[str, Any]:
    """A request that cannot be translated (tools or tool calls not in OpenAI's shape,
    arguments that are not JSON) is the caller's error, never retried."""
    try:
        return _translated(request, stream)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        detail = f"not translatable to the Messages API: {type(exc).__name__}: {exc}"
        raise ProviderError(FailureKind.CLIENT_ERROR, detail[:300]) from None


def _translated(request: ChatRequest, stream: bool) -> dict[str, Any]:
    system = [m.content for m in request.messages if m.role == "system" and m.content]
    system += _format_instruction(request.response_format)
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens or _DEFAULT_MAX_TOKENS,
        "messages": _messages(request.messages + _prefill(request.continue_from)),
    }
    optional = {
        "system": "\n\n".join(system) or None,
        "stop_sequences": request.stop or None,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "tools": [_tool(tool) for tool in request.tools] if request.tools else None,
        "tool_choice": _tool_choice(request.tool_choice),
        "stream": stream or None,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    return body


def _prefill(answer_so_far: str | None) -> list[ChatMessage]:
    """A cut answer continues as a prefill: the Messages API carries on from a final assistant
    turn, which must not end in whitespace (the caller stitches the seam)."""
    text = (answer_so_far or "").rstrip()
    return [ChatMessage(role="assistant", content=text)] if text else []


def _messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Turns alternate user/assistant, so consecutive messages of one side (a run of tool
    results, say) are merged into one message of several blocks."""
    merged: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        if not blocks:
            continue  # the API refuses empty content
        if merged and merged[-1]["role"] == role:
            merged[-1]["content"].extend(blocks)
        else:
            merged.append({"role": role, "content": blocks})
    return merged


def _blocks(message: ChatMessage) -> list[dict[str, Any]]:
    if message.role == "tool":
        if not message.tool_call_id:
            raise ProviderError(FailureKind.CLIENT_ERROR, "a tool message needs tool_call_id")
        return [
            {
                "type": "tool_result",
                "tool_use_id": message.tool_call_id,
                "content": message.content or "",
            }
        ]
    blocks: list[dict[str, Any]] = []
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    blocks += [
        {
            "type": "tool_use",
            "id": call["id"],
            "name": call["function"]["name"],
            "input": json.loads(call["function"]["arguments"] or "{}"),
        }
        for call in message.tool_calls or []
    ]
    return blocks


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    function = tool.get("function", tool)
    spec = {
        "name": function["name"],
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        spec["description"] = function["description"]
    return spec


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    """OpenAI's ``auto``/``required``/``none``/named function; anything else is taken to be
    in Anthropic's shape already."""
    if choice is None:
        return None
    if isinstance(choice, str):
        return {"type": {"required": "any"}.get(choice, choice)}
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "tool", "name": choice["function"]["name"]}
    return dict(choice)


def _format_instruction(response_format: dict[str, Any] | None) -> list[str]:
    """The Messages API has no JSON mode; the documented way is to ask for it in the system
    prompt, with the schema when one is given."""
    if not response_format or response_format.get("type") == "text":
        return []
    instruction = "Reply with one JSON object and nothing else."
    schema = (response_format.get("json_schema") or {}).get("schema")
    if schema is not None:
        instruction += f" It must be valid against this JSON Schema: {json.dumps(schema)}"
    return [instruction]


def _usage(raw: dict[str, Any], so_far: Usage | None) -> Usage | None:
    """Prompt tokens include cache writes and reads, as OpenAI's ``prompt_tokens`` does.
    A stream reports input at its start and output at its end: ``so_far`` fills the gaps;
    a body without token counts (some gateways strip them) reports nothing."""
    if "input_tokens" not in raw and "output_tokens" not in raw:
        return so_far
    input_keys = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    prompt = (
        sum(int(raw.get(key) or 0) for key in input_keys)
        if "input_tokens" in raw
        else (so_far.prompt_tokens if so_far else 0)
    )
    completion = (
        int(raw["output_tokens"])
        if "output_tokens" in raw
        else (so_far.completion_tokens if so_far else 0)
    )
    return Usage(prompt, completion, reported_by_provider=True)


def _finish_reason(stop_reason: Any) -> str | None:
    if stop_reason is None:
        return None
    return _FINISH_REASONS.get(str(stop_reason), str(stop_reason))
