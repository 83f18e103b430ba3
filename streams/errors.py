"""The one error catalogue: codes every layer reports and the API maps to HTTP once, at the edge.

The shape on the wire and in ``llm.request.failed`` is the pack's error format:
``{"code", "message", "retryable", "correlation_id"}``."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["RETRYABLE", "ErrorCode", "PlatformError"]


class ErrorCode(StrEnum):
    PROVIDER_TIMEOUT = "PROVIDER_TIMEOUT"
    PROVIDER_ERROR = "PROVIDER_ERROR"
    RATE_LIMITED = "RATE_LIMITED"
    BUDGET_EXCEEDED = "BUDGET_EXCEEDED"
    GUARDRAIL_BLOCKED = "GUARDRAIL_BLOCKED"
    INVALID_REQUEST = "INVALID_REQUEST"
    ALL_ROUTES_FAILED = "ALL_ROUTES_FAILED"
    NO_ROUTE = "NO_ROUTE"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    DEPENDENCY_UNAVAILABLE = "DEPENDENCY_UNAVAILABLE"
    RUN_INTERRUPTED = "RUN_INTERRUPTED"
    UNKNOWN_TENANT = "UNKNOWN_TENANT"
    INTERNAL = "INTERNAL"


RETRYABLE: frozenset[ErrorCode] = frozenset(
    {
        ErrorCode.PROVIDER_TIMEOUT,
        ErrorCode.PROVIDER_ERROR,
        ErrorCode.RATE_LIMITED,
        ErrorCode.ALL_ROUTES_FAILED,
        ErrorCode.DEADLINE_EXCEEDED,
        ErrorCode.DEPENDENCY_UNAVAILABLE,
        ErrorCode.RUN_INTERRUPTED,
    }
)


@dataclass(eq=False)  # not frozen: raising through frameworks sets ``__traceback__``
class PlatformError(Exception):
    """A failure with a catalogue code; its ``message`` never carries secrets or raw PII."""

    code: ErrorCode
    message: str

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
