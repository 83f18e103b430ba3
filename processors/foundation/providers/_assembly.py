"""The answer shapes both real adapters build: tool calls in OpenAI's form whatever the
provider, and a streamed answer pieced together until its last delta."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from processors.foundation.providers.base import (
    ChatDelta,
    ChatRequest,
    FailureKind,
    ProviderError,
    Usage,
)
from processors.foundation.providers.tokens import estimated_usage

__all__ = ["StreamedAnswer", "tool_call"]


def tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    """One call in the shape ``ChatResult.tool_calls`` uses for every provider."""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


@dataclass
class _PartialCall:
    call_id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class StreamedAnswer:
    """What a stream has said so far. Text goes out as it comes; tool calls, finish reason
    and usage make sense only whole, so they go out together in the final delta."""

    text: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage | None = None
    ended: bool = False  # the provider's own end-of-stream marker was seen
    _calls: dict[int, _PartialCall] = field(default_factory=dict)

    def add_tool_call(
        self, index: int, call_id: str | None = None, name: str | None = None, arguments: str = ""
    ) -> None:
        """A piece of the call at ``index``: its id and name come once, arguments in parts."""
        call = self._calls.setdefault(index, _PartialCall())
        call.call_id = call_id or call.call_id
        call.name = name or call.name
        call.arguments.append(arguments)

    @property
    def calling_tools(self) -> bool:
        """A tool call has begun: what was said so far is not text alone."""
        return bool(self._calls)

    def final_delta(self, request: ChatRequest) -> ChatDelta:
        """The last delta; a stream that stopped before the provider finished is CONNECTION,
        since the answer is cut short, not wrong."""
        if not self.ended and self.finish_reason is None:
            raise ProviderError(
                FailureKind.CONNECTION,
                "the stream ended before the answer did",
                continuable=not self.calling_tools,
            )
        calls = [
            tool_call(call.call_id, call.name, "".join(call.arguments) or "{}")
            for _, call in sorted(self._calls.items())
        ] or None
        text = "".join(self.text) or None
        return ChatDelta(
            tool_calls=calls,
            finish_reason=self.finish_reason,
            usage=self.usage or estimated_usage(request, text, calls),
        )
