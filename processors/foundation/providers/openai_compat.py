"""OpenAI's Chat Completions API, as OpenAI serves it and as vLLM, Ollama, LM Studio, Groq and
Together imitate it: ``POST {base_url}/chat/completions``, streamed as Server-Sent Events."""

from __future__ import annotations

from typing import Any

from processors.foundation.config import ProviderSettings
from processors.foundation.providers._adapter import Answer, HttpChatAdapter
from processors.foundation.providers._assembly import StreamedAnswer, tool_call
from processors.foundation.providers._http import JsonApi, SseEvent, error_message
from processors.foundation.providers.base import (
    ChatMessage,
    ChatRequest,
    FailureKind,
    ProviderError,
    Usage,
)

__all__ = ["OpenAICompatProvider"]

_PATH = "/chat/completions"
CONTINUE_INSTRUCTION = (
    "Your previous message was cut off. Continue it from exactly where it stopped, even in the"
    " middle of a word. Do not repeat any of it and write nothing before the continuation."
)


class OpenAICompatProvider(HttpChatAdapter):
    """Local servers need no key: without one no ``Authorization`` header is sent."""

    _path = _PATH
    _answer_noun = "chat completion"
    _restates = True  # asked by instruction: it may restate its last words

    def __init__(self, name: str, settings: ProviderSettings, api_key: str | None) -> None:
        if not settings.base_url:
            raise ValueError(f"provider {name!r}: an openai-compatible provider needs base_url")
        self.name = name
        self._api = JsonApi(
            name,
            settings.base_url,
            {"authorization": f"Bearer {api_key}"} if api_key else {},
            api_key,
            settings.timeout_ms,
            settings.max_in_flight,
        )

    def _request_body(self, request: ChatRequest, stream: bool) -> dict[str, Any]:
        return _request_body(request, stream)

    def _read_answer(self, body: dict[str, Any]) -> Answer:
        choice = body["choices"][0]
        message = choice["message"]
        calls = [
            tool_call(call["id"], call["function"]["name"], call["function"]["arguments"])
            for call in message.get("tool_calls") or []
        ] or None
        return Answer(
            text=_optional_str(message.get("content")),
            tool_calls=calls,
            usage=_reported_usage(body.get("usage")),
            finish_reason=_optional_str(choice.get("finish_reason")),
        )

    def _take(self, answer: StreamedAnswer, event: SseEvent) -> str | None:
        if event.data.strip() == "[DONE]":
            answer.ended = True
            return None
        chunk = self._api.decode(event.data, "stream chunk")
        if "error" in chunk:  # some servers report a failure mid-stream this way
            detail = self._api.redact(error_message(chunk) or str(chunk["error"]))
            raise ProviderError(FailureKind.SERVER_ERROR, f"error mid-stream: {detail}")
        pieces = []
        with self._api.shape("stream chunk"):
            answer.usage = _reported_usage(chunk.get("usage")) or answer.usage
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                pieces.append(_optional_str(delta.get("content")) or "")
                for position, part in enumerate(delta.get("tool_calls") or []):
                    function = part.get("function") or {}
                    answer.add_tool_call(
                        int(part.get("index", position)),
                        part.get("id"),
                        function.get("name"),
                        function.get("arguments") or "",
                    )
                answer.finish_reason = choice.get("finish_reason") or answer.finish_reason
        text = "".join(pieces)
        answer.text.append(text)
        return text


def _request_body(request: ChatRequest, stream: bool) -> dict[str, Any]:
    messages = [_message(message) for message in request.messages]
    if request.continue_from is not None:
        messages += _continuation(request.continue_from)
    body: dict[str, Any] = {"model": request.model, "messages": messages}
    optional = {
        "tools": request.tools,
        "tool_choice": request.tool_choice,
        "response_format": request.response_format,
        "stop": request.stop or None,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body


def _continuation(answer_so_far: str) -> list[dict[str, Any]]:
    """The Chat Completions API has no prefill: the cut answer goes back as the assistant's
    turn, and a user turn asks for the rest (a model may still restate its last words; the
    caller stitches the overlap away)."""
    return [
        {"role": "assistant", "content": answer_so_far},
        {"role": "user", "content": CONTINUE_INSTRUCTION},
    ]


def _message(message: ChatMessage) -> dict[str, Any]:
    """``content`` is always sent (null beside tool calls); other fields only when set."""
    optional = {
        "name": message.name,
        "tool_call_id": message.tool_call_id,
        "tool_calls": message.tool_calls,
    }
    return {
        "role": message.role,
        "content": message.content,
        **{key: value for key, value in optional.items() if value is not None},
    }


def _reported_usage(raw: Any) -> Usage | None:
    if raw is None:
        return None
    return Usage(int(raw["prompt_tokens"]), int(raw["completion_tokens"]), True)


def _optional_str(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value
