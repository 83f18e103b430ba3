"""``POST /v1/chat/completions``: OpenAI's endpoint over the event log. The request becomes an
``llm.chat.requested`` command; the answer is the run's terminal event, read by this replica's
hub (plain) or its deltas as they come (``stream=true``). The API never calls a provider."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from api.admission import (
    Claim,
    claim_run,
    command_for,
    enforce_rate_limit,
    publish,
    remember,
)
from api.auth import Principal
from api.chat_mapping import command_payload, completion_of, failure_of, routed_command
from api.chat_schema import ChatCompletion, ChatCompletionRequest
from api.errors import error_responses
from api.event_hub import Event, RunWatch
from api.metrics import CHAT_SECONDS
from api.rate_limits import estimate_tokens
from api.replies import known_terminal, run_events, terminal_event
from api.services import Services, authenticated, services_of
from api.sse import sse_chunks
from schemas.chat_run import DELTA, FAILED, RAG_FAILED, RESUMED, TERMINAL

__all__ = ["router"]

router = APIRouter(tags=["chat"])
ROUTE = "/v1/chat/completions"
_WATCH_GRACE_S = 5.0
_STREAMED = TERMINAL | {DELTA, RESUMED}  # a streamed answer's events; a plain one needs TERMINAL
_SSE_EVENT = {  # one server-sent event (OpenAPI before 3.2 describes each event)
    "type": "object",
    "properties": {
        "data": {
            "type": "string",
            "description": "a chat.completion.chunk as JSON, an {error} object, or [DONE]",
        },
        "event": {"type": "string"},
    },
    "required": ["data"],
}  # a watch outlives its request's deadline by this, then the hub drops it


@router.post(
    ROUTE,
    response_model=ChatCompletion,
    responses={
        200: {
            "description": "The completion; with stream=true, server-sent chunks",
            "content": {"text/event-stream": {"schema": _SSE_EVENT}},
        },
        **error_responses(400, 401, 403, 409, 413, 422, 429, 500, 502, 503, 504),
    },
    summary="Create a chat completion (OpenAI-compatible)",
)
async def chat_completions(
    request: Request,
    body: ChatCompletionRequest,
    principal: Annotated[Principal, Depends(authenticated)],
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=256)] = None,
    x_request_timeout: Annotated[
        float | None, Header(gt=0, le=3600, description="Seconds to wait at most")
    ] = None,
    cache_control: Annotated[
        str | None, Header(max_length=256, description="no-cache: skip the answer cache")
    ] = None,
    traceparent: Annotated[str | None, Header(max_length=128)] = None,
) -> Response:
    services = services_of(request)
    settings = services.config.chat
    hub = services.kafka().hub
    slot = services.in_flight.take()  # first: a refused request is charged and claims nothing
    try:
        messages = [m.model_dump(mode="json") for m in body.messages]
        tokens = estimate_tokens(messages, body.completion_limit(), principal.limits)
        await enforce_rate_limit(services, principal, tokens)
        wait_s = min(x_request_timeout or settings.wait_timeout_s, settings.wait_timeout_s)
        deadline = asyncio.get_running_loop().time() + wait_s
        claim = await claim_run(request, principal, idempotency_key, ROUTE, body)
    except BaseException:
        slot.release()
        raise
    payload = command_payload(
        body,
        deadline=datetime.now(UTC) + timedelta(seconds=settings.run_deadline_s),
        idempotency_key=idempotency_key,
        bypass_cache="no-cache" in (cache_control or "") or "no-store" in (cache_control or ""),
    )
    message_type, payload, ends = routed_command(body, payload)
    command = command_for(services, principal, claim, message_type, payload, traceparent)
    watch = hub.watch(
        claim.correlation_id,
        principal.tenant,
        deadline + _WATCH_GRACE_S,
        wants=_STREAMED if body.stream else ends,
        on_end=slot.release,
        on_first_event=slot.started,
    )
    streaming = False
    try:
        claim = await publish(services, principal, claim, command)
        settle = _Settlement(services, principal, claim, tokens)
        earlier = await _already_known(services, principal, claim, ends)
        if body.stream:
            streaming = True  # the stream owns the watch now
            return StreamingResponse(
                _stream(watch, deadline, earlier, body, settle),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        terminal = await terminal_event(watch, deadline, earlier, ends)
        await settle(terminal)
        if terminal["event_type"] in (FAILED, RAG_FAILED):
            raise failure_of(terminal)
        return JSONResponse(completion_of(terminal).model_dump(mode="json"))
    finally:
        if not streaming:
            watch.close()


async def _already_known(
    services: Services, principal: Principal, claim: Claim, ends: frozenset[str]
) -> list[Event]:
    """A retry's run may have ended before this request started watching."""
    if not claim.retried or claim.record is None:
        return []
    terminal = await known_terminal(services, principal.tenant, claim.record, ends)
    return [terminal] if terminal is not None else []


async def _stream(
    watch: RunWatch,
    deadline: float,
    earlier: list[Event],
    body: ChatCompletionRequest,
    settle: _Settlement,
) -> AsyncIterator[str]:
    try:
        async for line in sse_chunks(
            run_events(watch, deadline, earlier),
            correlation_id=watch.correlation_id,
            created=int(time.time()),
            model=body.model or "auto",
            include_usage=bool(body.stream_options and body.stream_options.include_usage),
            on_terminal=settle,
        ):
            yield line
    finally:
        watch.close()


class _Settlement:
    """Once the run ended: correct the key's token charge with the real usage (a retry that
    started nothing gives its estimate back), record the result under the idempotency key,
    and time the reply."""

    def __init__(self, services: Services, principal: Principal, claim: Claim, tokens: int) -> None:
        self._services = services
        self._principal = principal
        self._claim = claim
        self._tokens = tokens
        self._published_at = time.perf_counter()

    async def __call__(self, terminal: Mapping[str, Any]) -> None:
        CHAT_SECONDS.observe(time.perf_counter() - self._published_at)
        payload = terminal["payload"]
        used = 0 if self._claim.retried else int(payload.get("total_tokens") or 0)
        limits = self._principal.limits
        await self._services.limiter.correct(self._principal.key_id, limits, used - self._tokens)
        if self._claim.record is not None and self._claim.record.result is None:
            await remember(self._services, self._principal, self._claim, result=dict(terminal))
