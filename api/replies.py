"""Waiting for a run: its events in order up to the terminal one, from the live hub, or, when
the run may have ended before this request started watching (an idempotent retry), from
wherever its terminal event is already known: the idempotency record, this replica's recent
events, the projections."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from api.errors import ApiError
from api.event_hub import Event, RunWatch
from api.idempotency import IdempotencyRecord
from api.services import Services
from schemas.chat_run import TERMINAL
from streams.errors import ErrorCode
from streams.projections_client import ProjectionsUnavailable

__all__ = ["known_terminal", "run_events", "terminal_event"]

log = logging.getLogger("api")


async def run_events(
    watch: RunWatch,
    deadline: float,
    earlier: list[Event] | None = None,
    ends: frozenset[str] = TERMINAL,
) -> AsyncIterator[Event]:
    """``earlier`` then the live events, each once (redeliveries carry the same id), ending
    with the terminal event; past ``deadline`` (loop time) ``DEADLINE_EXCEEDED`` (504): the
    run itself goes on and can be read from ``/v1/runs`` later."""
    seen: set[str] = set()
    loop = asyncio.get_running_loop()
    pending = list(earlier or [])
    while True:
        if pending:
            event = pending.pop(0)
        else:
            try:
                event = await asyncio.wait_for(watch.events.get(), deadline - loop.time())
            except TimeoutError:
                raise ApiError(
                    ErrorCode.DEADLINE_EXCEEDED,
                    "no answer before the deadline; the run goes on: "
                    f"GET /v1/runs/{watch.correlation_id}",
                ) from None
        if event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        yield event
        if event["event_type"] in ends:
            return


async def terminal_event(
    watch: RunWatch,
    deadline: float,
    earlier: list[Event] | None = None,
    ends: frozenset[str] = TERMINAL,
) -> Event:
    """The run's last event: one of ``ends`` (a mode rag run ends after layer 1's answer)."""
    async for event in run_events(watch, deadline, earlier, ends):
        if event["event_type"] in ends:
            return event
    raise AssertionError("run_events ends with a terminal event or raises")


async def known_terminal(
    services: Services, tenant: str, record: IdempotencyRecord, ends: frozenset[str] = TERMINAL
) -> Event | None:
    """The run's terminal event if it already happened somewhere we can see."""
    if record.result is not None:
        return record.result
    correlation_id = record.correlation_id
    for item in reversed(services.recent.of_run(tenant, correlation_id)):
        if item.event["event_type"] in ends:
            return dict(item.event)
    try:
        events = await services.history.run_events(
            tenant, correlation_id, services.config.feed.history_limit
        )
    except ProjectionsUnavailable as error:
        log.warning("projections unavailable for %s: %s", correlation_id, error)
        return None
    return next((e for e in reversed(events) if e["event_type"] in ends), None)
