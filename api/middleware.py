"""The HTTP edge as plain ASGI: a correlation id for every request (in the error body and the
``X-Correlation-Id`` header; a chat call's run uses it), the body size limit, admission of the
routes that start runs (refused before their body is read when the replica is overloaded), and
request metrics by route template."""

from __future__ import annotations

import time
import uuid
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiError, HttpErrorCode, error_response
from api.metrics import HTTP_REQUESTS, HTTP_SECONDS

__all__ = ["CORRELATION_HEADER", "EdgeMiddleware", "new_correlation_id"]

CORRELATION_HEADER = "x-correlation-id"


def new_correlation_id() -> str:
    return f"req_{uuid.uuid4().hex}"


class EdgeMiddleware:
    def __init__(
        self, app: ASGIApp, max_body_bytes: int, admitted_paths: frozenset[str] = frozenset()
    ) -> None:
        self._app = app
        self._max_body_bytes = max_body_bytes
        self._admitted_paths = admitted_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        state["correlation_id"] = new_correlation_id()
        started = time.perf_counter()
        declared = _content_length(scope)
        refused = (
            self._too_large() if declared is not None and declared > self._max_body_bytes else None
        )
        if refused is None and scope["method"] == "POST" and scope["path"] in self._admitted_paths:
            refused = _admission_refusal(scope)
        if refused is not None:
            response = error_response(refused, state["correlation_id"])
            await response(scope, receive, self._with_header(scope, send, started))
            return
        await self._app(scope, self._limited(receive), self._with_header(scope, send, started))

    def _too_large(self) -> ApiError:
        return ApiError(
            HttpErrorCode.PAYLOAD_TOO_LARGE, f"request body over {self._max_body_bytes} bytes"
        )

    def _limited(self, receive: Receive) -> Receive:
        """Counts a body sent without (or with a false) Content-Length; raising here reaches
        the route's body parsing, which FastAPI turns into this 413 untouched."""
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._max_body_bytes:
                    raise HTTPException(413)
            return message

        return limited

    @staticmethod
    def _with_header(scope: Scope, send: Send, started: float) -> Send:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                correlation_id = scope["state"]["correlation_id"]
                message["headers"] = [
                    *message.get("headers", []),
                    (CORRELATION_HEADER.encode(), correlation_id.encode()),
                ]
                route = getattr(scope.get("route"), "path", "unmatched")
                HTTP_REQUESTS.labels(scope["method"], route, message["status"]).inc()
                HTTP_SECONDS.labels(route).observe(time.perf_counter() - started)
            await send(message)

        return sending


def _admission_refusal(scope: Scope) -> ApiError | None:
    """The replica's admission, once its services run (the route takes the slot itself)."""
    services = getattr(scope["app"].state, "services", None)
    return None if services is None else services.in_flight.refusal()


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
