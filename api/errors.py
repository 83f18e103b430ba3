"""Every failure the API returns, in the pack's one error format, mapped to HTTP once, here.

Codes come from the shared catalogue (``streams.errors.ErrorCode``) wherever one fits; the few
that only exist at the HTTP edge (no key, no such route, body too large, ...) are
``HttpErrorCode`` below, so the catalogue stays what every layer reports on its events."""

from __future__ import annotations

import logging
from enum import StrEnum
from http import HTTPStatus
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from streams.errors import RETRYABLE, ErrorCode, PlatformError

__all__ = [
    "ApiError",
    "ErrorBody",
    "ErrorDetail",
    "FieldProblem",
    "HttpErrorCode",
    "error_payload",
    "error_response",
    "error_responses",
    "install_error_handlers",
    "status_of",
]

log = logging.getLogger("api")


class HttpErrorCode(StrEnum):
    """Failures that only exist at the HTTP edge. Only ``OVERLOADED`` (this replica is full, try
    again shortly) and ``STREAM_INCONSISTENT`` are worth retrying unchanged."""

    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    STREAM_INCONSISTENT = "STREAM_INCONSISTENT"
    OVERLOADED = "OVERLOADED"


Code = ErrorCode | HttpErrorCode

_STATUS: dict[Code, int] = {
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.GUARDRAIL_BLOCKED: 400,
    ErrorCode.NO_ROUTE: 400,
    ErrorCode.UNKNOWN_TENANT: 403,
    ErrorCode.BUDGET_EXCEEDED: 429,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.INTERNAL: 500,
    ErrorCode.PROVIDER_ERROR: 502,
    ErrorCode.ALL_ROUTES_FAILED: 502,
    ErrorCode.DEPENDENCY_UNAVAILABLE: 503,
    ErrorCode.RUN_INTERRUPTED: 503,
    ErrorCode.PROVIDER_TIMEOUT: 504,
    ErrorCode.DEADLINE_EXCEEDED: 504,
    HttpErrorCode.UNAUTHENTICATED: 401,
    HttpErrorCode.FORBIDDEN: 403,
    HttpErrorCode.NOT_FOUND: 404,
    HttpErrorCode.METHOD_NOT_ALLOWED: 405,
    HttpErrorCode.IDEMPOTENCY_CONFLICT: 409,
    HttpErrorCode.PAYLOAD_TOO_LARGE: 413,
    HttpErrorCode.STREAM_INCONSISTENT: 502,
    HttpErrorCode.OVERLOADED: 503,
}
_RETRYABLE_AT_EDGE = frozenset({HttpErrorCode.STREAM_INCONSISTENT, HttpErrorCode.OVERLOADED})


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries: the statuses a route documents, and every other error as ``default``."""
    responses: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorBody, "description": HTTPStatus(status).phrase}
        for status in statuses
    }
    responses["default"] = {"model": ErrorBody, "description": "Error"}
    return responses


def status_of(code: Code) -> int:
    return _STATUS[code]


class FieldProblem(BaseModel):
    """One invalid field of a request that holds many records (a dataset version's items):
    which record (its position and, when it has one, its id), which field, what is wrong."""

    item: int | None = None
    item_id: str | None = None
    field: str
    message: str


class ErrorDetail(BaseModel):
    code: str
    message: str
    retryable: bool
    correlation_id: str | None
    details: list[FieldProblem] | None = None


class ErrorBody(BaseModel):
    """The pack's error format: ``{"error": {code, message, retryable, correlation_id}}``, and
    ``details`` where a request had many invalid fields worth naming one by one."""

    error: ErrorDetail


class ApiError(Exception):
    """Raised anywhere in a request; rendered by the handler installed below. ``status``
    overrides the code's usual one (validation failures are ``INVALID_REQUEST`` at 422)."""

    def __init__(
        self,
        code: Code,
        message: str,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        details: list[FieldProblem] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or status_of(code)
        self.headers = headers or {}
        self.details = details

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE or self.code in _RETRYABLE_AT_EDGE


def error_payload(
    code: str,
    message: str,
    retryable: bool,
    correlation_id: str | None,
    details: list[FieldProblem] | None = None,
) -> dict[str, dict[str, object]]:
    error: dict[str, object] = {
        "code": code,
        "message": message,
        "retryable": retryable,
        "correlation_id": correlation_id,
    }
    if details is not None:
        error["details"] = [problem.model_dump(exclude_none=True) for problem in details]
    return {"error": error}


def error_response(error: ApiError, correlation_id: str | None) -> JSONResponse:
    """``x-should-retry`` tells the official OpenAI SDKs whether to retry on their own."""
    headers = {"x-should-retry": "true" if error.retryable else "false", **error.headers}
    body = error_payload(
        error.code.value, error.message, error.retryable, correlation_id, error.details
    )
    return JSONResponse(body, status_code=error.status, headers=headers)


def _correlation_id(request: Request) -> str | None:
    return getattr(request.state, "correlation_id", None)


_BY_STATUS: dict[int, tuple[Code, str]] = {
    401: (HttpErrorCode.UNAUTHENTICATED, "authentication required"),
    404: (HttpErrorCode.NOT_FOUND, "no such resource"),
    405: (HttpErrorCode.METHOD_NOT_ALLOWED, "method not allowed on this path"),
    413: (HttpErrorCode.PAYLOAD_TOO_LARGE, "request body too large"),
}


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    return error_response(cast(ApiError, exc), _correlation_id(request))


async def _on_platform_error(request: Request, exc: Exception) -> JSONResponse:
    """A catalogue failure raised below the edge (a service the request needs is missing)."""
    failure = cast(PlatformError, exc)
    return error_response(ApiError(failure.code, failure.message), _correlation_id(request))


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own 404/405 (unknown path, wrong method) and anything else it raises."""
    exc = cast(HTTPException, exc)
    fallback = exc.detail if isinstance(exc.detail, str) else "bad request"
    code, message = _BY_STATUS.get(exc.status_code, (ErrorCode.INVALID_REQUEST, fallback))
    error = ApiError(code, message, status=exc.status_code, headers=dict(exc.headers or {}))
    return error_response(error, _correlation_id(request))


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    errors = cast(RequestValidationError, exc).errors()
    problems = "; ".join(_describe(problem) for problem in errors[:10])
    error = ApiError(ErrorCode.INVALID_REQUEST, problems or "invalid request", status=422)
    return error_response(error, _correlation_id(request))


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    """A bug: logged with its traceback here, never sent to the client."""
    correlation_id = _correlation_id(request)
    log.error("unhandled error", exc_info=exc, extra={"correlation_id": correlation_id})
    return error_response(ApiError(ErrorCode.INTERNAL, "internal error"), correlation_id)


def _describe(problem: object) -> str:
    """``body.messages.0.role: Input should be ...``, without echoing the offending input."""
    if not isinstance(problem, dict):
        return str(problem)
    where = ".".join(str(part) for part in problem.get("loc", ()))
    return f"{where}: {problem.get('msg', 'invalid')}"


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(PlatformError, _on_platform_error)
    app.add_exception_handler(HTTPException, _on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(Exception, _on_unexpected)
