"""What every provider adapter speaks: one request shape, one result shape, one error type."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

__all__ = [
    "ChatDelta",
    "ChatMessage",
    "ChatRequest",
    "ChatResult",
    "FailureKind",
    "Provider",
    "ProviderError",
    "Usage",
]


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class ChatRequest:
    """Provider-agnostic chat request; ``model`` is the provider's own model name."""

    model: str
    messages: list[ChatMessage]
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None
    stop: list[str] = field(default_factory=list)
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    # The answer so far, cut short: the provider is asked to go on from it, not to repeat it
    # (an assistant prefill where the API has one, else an instruction).
    continue_from: str | None = None


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    reported_by_provider: bool

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class ChatResult:
    text: str | None
    tool_calls: list[dict[str, Any]] | None
    finish_reason: str | None
    usage: Usage
    latency_ms: int
    time_to_first_token_ms: int | None = None


@dataclass(frozen=True)
class ChatDelta:
    """One streamed piece; the last one carries ``finish_reason`` (and usage when known)."""

    text: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str | None = None
    usage: Usage | None = None


class FailureKind(StrEnum):
    TIMEOUT = "timeout"  # no answer within the timeout
    CONNECTION = "connection"  # refused, reset, dropped mid-stream
    RATE_LIMITED = "rate_limited"  # 429
    SERVER_ERROR = "server_error"  # 5xx
    CLIENT_ERROR = "client_error"  # other 4xx: never retried
    MALFORMED = "malformed"  # a 2xx whose body is not what the API promises


_RETRYABLE = frozenset(
    {
        FailureKind.TIMEOUT,
        FailureKind.CONNECTION,
        FailureKind.RATE_LIMITED,
        FailureKind.SERVER_ERROR,
    }
)


class ProviderError(Exception):
    """A failed provider call, classified for the router. ``detail`` never holds the API key.
    ``provider_fault`` is False when the call never reached the provider (it waited in our own
    queue for a free slot until it timed out): the router moves on, but the provider's circuit
    breaker must not count it, or a burst of our own making opens a healthy provider's.
    ``continuable`` is False for a stream cut inside a tool call: text can be continued, half
    a call's arguments cannot."""

    def __init__(
        self,
        kind: FailureKind,
        detail: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
        provider_fault: bool = True,
        continuable: bool = True,
    ) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.status = status
        self.retry_after_s = retry_after_s
        self.provider_fault = provider_fault
        self.continuable = continuable

    @property
    def retryable(self) -> bool:
        return self.kind in _RETRYABLE


class Provider(Protocol):
    """An adapter for one provider endpoint (OpenAI-compatible, Anthropic, simulated)."""

    name: str

    async def complete(self, request: ChatRequest, timeout_s: float) -> ChatResult:
        """One non-streaming call; raises ``ProviderError``."""
        ...

    def stream(self, request: ChatRequest, timeout_s: float) -> AsyncIterator[ChatDelta]:
        """Deltas as the provider sends them; raises ``ProviderError`` (also mid-stream)."""
        ...

    async def aclose(self) -> None: ...
