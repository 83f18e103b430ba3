"""What every write endpoint does before and while its command goes out: the key's rate limit,
the ``Idempotency-Key`` claim, and publishing with the broker's acknowledgement (503 if none).
Shared by chat completions and workflow submissions so both behave alike."""

from __future__ import annotations

import logging
import re
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from fastapi import Request
from pydantic import BaseModel

from api.auth import Principal
from api.errors import ApiError, HttpErrorCode
from api.idempotency import IdempotencyRecord, fingerprint
from api.metrics import PUBLISH_SECONDS, RATE_LIMITED
from api.rate_limits import retry_after_header
from api.services import Services, services_of
from streams.envelope import Envelope, new_message
from streams.errors import ErrorCode
from streams.redis_state import StoreUnavailable
from streams.tracing import producer_span_ids

__all__ = ["Claim", "claim_run", "command_for", "enforce_rate_limit", "publish", "remember"]

log = logging.getLogger("api")
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


async def enforce_rate_limit(services: Services, principal: Principal, tokens: int) -> None:
    wait = await services.limiter.admit(principal.key_id, principal.limits, tokens)
    if wait > 0:
        RATE_LIMITED.inc()
        raise ApiError(
            ErrorCode.RATE_LIMITED,
            f"rate limit of key {principal.key_id!r} reached "
            f"({principal.limits.rpm} requests, {principal.limits.tpm} tokens per minute)",
            headers={"Retry-After": retry_after_header(wait)},
        )


@dataclass(frozen=True)
class Claim:
    """The run this request is about: a new one, or (a retry) the one its key already names.
    ``command_id`` is reused by a retry so a re-sent command is deduplicated downstream."""

    correlation_id: str
    command_id: str
    key: str | None = None
    record: IdempotencyRecord | None = None
    retried: bool = False

    @property
    def must_publish(self) -> bool:
        return self.record is None or not self.record.published


async def claim_run(
    request: Request, principal: Principal, key: str | None, route: str, body: BaseModel
) -> Claim:
    """The run this request starts, or (a retry under the same ``Idempotency-Key``) the one it
    started before; the request's correlation id becomes the run's either way."""
    claim = await _claim(
        services_of(request),
        principal,
        request.state.correlation_id,
        key,
        route,
        body.model_dump(mode="json"),
    )
    request.state.correlation_id = claim.correlation_id
    return claim


async def _claim(
    services: Services,
    principal: Principal,
    correlation_id: str,
    key: str | None,
    route: str,
    body: Any,
) -> Claim:
    command_id = str(uuid.uuid4())
    if key is None:
        return Claim(correlation_id, command_id)
    record = IdempotencyRecord(correlation_id, command_id, fingerprint(route, body))
    try:
        existing = await services.idempotency.claim(principal.tenant, key, record)
    except StoreUnavailable as error:
        raise ApiError(
            ErrorCode.DEPENDENCY_UNAVAILABLE, "idempotency store unavailable; retry"
        ) from error
    if existing is None:
        return Claim(correlation_id, command_id, key, record)
    if existing.fingerprint != record.fingerprint:
        raise ApiError(
            HttpErrorCode.IDEMPOTENCY_CONFLICT,
            "this Idempotency-Key was used with a different request",
        )
    return Claim(existing.correlation_id, existing.command_id, key, existing, retried=True)


def command_for(
    services: Services,
    principal: Principal,
    claim: Claim,
    message_type: str,
    payload: Mapping[str, Any],
    traceparent: str | None,
) -> Envelope:
    """The command, in the client's trace when it sent a W3C ``traceparent``, else in a new
    one; the API is where the run's trace starts."""
    command = new_message(
        message_type,
        payload,
        correlation_id=claim.correlation_id,
        tenant_id=principal.tenant,
        writer=services.writer,
        ids=lambda: claim.command_id,
    )
    exported = producer_span_ids(
        f"publish {message_type}",
        traceparent,
        {"platform.correlation_id": claim.correlation_id, "messaging.message.id": claim.command_id},
    )
    if exported is not None:
        return replace(command, trace_id=exported[0], span_id=exported[1])
    match = _TRACEPARENT.match(traceparent or "")
    trace_id = match.group(1) if match and match.group(1).strip("0") else secrets.token_hex(16)
    return replace(command, trace_id=trace_id, span_id=secrets.token_hex(8))


async def remember(services: Services, principal: Principal, claim: Claim, **changes: Any) -> Claim:
    """Update the key's record (published, result); best effort once the run is under way."""
    if claim.key is None or claim.record is None:
        return claim
    record = claim.record.with_changes(**changes)
    try:
        await services.idempotency.save(principal.tenant, claim.key, record)
    except StoreUnavailable as error:  # a retry re-sends the same command id: deduplicated
        log.warning("idempotency record not updated for %s: %s", claim.correlation_id, error)
    return replace(claim, record=record)


async def publish(
    services: Services, principal: Principal, claim: Claim, command: Envelope
) -> Claim:
    """Send ``command`` and return once the broker acknowledged it; 503 otherwise."""
    if not claim.must_publish:
        return claim
    started = time.perf_counter()
    await services.publish(command)
    PUBLISH_SECONDS.observe(time.perf_counter() - started)
    return await remember(services, principal, claim, published=True)
