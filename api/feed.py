"""The live feed, ``GET /v1/ws``: a tenant's events as they happen, to WebSocket clients.

One subscription per connection, its first message: the whole tenant, or some correlation ids
(whose runs are first replayed from their start). ``last_event_id`` (the ``id`` of the last
message a client processed) resumes exactly after it, on any replica: the replica's buffer
of recent events covers what it can, the projections' events table what is older.

Every client has a bounded queue that only the hub's dispatch fills (``put_nowait``, never
awaiting a client): a client too slow to drain it is cut off with close code 4429, and nobody
else waits for it. Tenant isolation: a client only ever sees events whose envelope names its
key's tenant."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from api.config import FeedSettings
from api.errors import error_payload
from api.event_hub import EventHub, HubEvent
from api.history import EventHistory
from api.metrics import FEED_CLIENTS, FEED_DISCONNECTS
from api.recent_events import (
    Buffered,
    FeedEvent,
    Mark,
    Positions,
    RecentEvents,
    decode_token,
    encode_token,
    merged,
)
from api.run_view import RunSummary
from streams.errors import ErrorCode
from streams.projections_client import ProjectionsUnavailable

__all__ = ["CLOSE_CODES", "Feed", "SubscribeMessage"]

log = logging.getLogger("api")

CLOSE_CODES = {
    "bad_request": 4400,  # the first message was not a valid subscription
    "unauthenticated": 4401,
    "too_far_behind": 4410,  # the resume point is older than the history we replay
    "too_slow": 4429,  # the client did not drain its queue
    "unavailable": 1013,  # try again later
    "going_away": 1001,
}
_SUBSCRIBE_TIMEOUT_S = 30.0
_CLOSE_WAIT_S = 30.0
_CLOCK_SKEW = timedelta(seconds=5)  # between writers' clocks, for the time-bounded history
_RUN_STATES = 50_000
CorrelationId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]


class SubscribeMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["subscribe"]
    tenant: bool = False
    correlation_ids: list[CorrelationId] = Field(default_factory=list, max_length=100)
    last_event_id: str | None = Field(None, max_length=4096)

    @model_validator(mode="after")
    def _one_scope(self) -> SubscribeMessage:
        if self.tenant == bool(self.correlation_ids):
            raise ValueError("subscribe to the tenant or to correlation_ids (one of them)")
        return self


@dataclass(frozen=True)
class _Live:
    """One live event as every client of its tenant gets it, rendered once."""

    item: FeedEvent
    cursor: Positions
    token: str  # the cursor, encoded
    text: str  # the event as JSON text
    state: str | None  # a run.state message, when this event changed the run's status


@dataclass(eq=False)
class _Client:
    tenant: str
    ids: frozenset[str] | None  # None: the whole tenant
    queue: asyncio.Queue[str]
    floor: Positions | None = None  # a resume point ahead of this replica: skip what is before
    held: list[_Live] | None = field(default_factory=list)  # live events while replaying
    too_slow: asyncio.Event = field(default_factory=asyncio.Event)

    def wants(self, item: Buffered) -> bool:
        if self.ids is not None and item.correlation_id not in self.ids:
            return False
        mark = self.floor.get(item.where) if self.floor else None
        return mark is None or item.offset >= mark.offset

    def deliver(self, live: _Live) -> None:
        if not self.wants(live.item):
            return
        if self.held is not None:  # still replaying: keep order, bounded like the queue
            self.held.append(live)
            if len(self.held) > self.queue.maxsize:
                self.too_slow.set()
            return
        token = live.token
        if self.floor is not None:
            if all(live.cursor.get(k, Mark(0)).offset >= m.offset for k, m in self.floor.items()):
                self.floor = None  # caught up: from here on the replica's cursor says it all
            else:
                token = encode_token(merged(live.cursor, self.floor))
        self.offer(_event_message(live.item.event["event_type"], live.text, token))
        if live.state is not None:
            self.offer(live.state)

    def offer(self, message: str) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.too_slow.set()


_ALERT_MESSAGES = {
    "alert.rule.triggered": "alert.triggered",
    "alert.rule.resolved": "alert.resolved",
}


def _event_message(event_type: str, event_text: str, token: str) -> str:
    """Assembled from text rendered once per event (the token is URL-safe base64)."""
    alert = _ALERT_MESSAGES.get(event_type)
    kind, key = (alert, "alert") if alert is not None else ("run.event", "event")
    return f'{{"type":"{kind}","id":"{token}","{key}":{event_text}}}'


def _replayed_message(event: Mapping[str, Any], position: Positions) -> str:
    return _event_message(str(event["event_type"]), json.dumps(event), encode_token(position))


def _state_message(summary: RunSummary) -> str:
    return json.dumps(
        {"type": "run.state", "correlation_id": summary.correlation_id, "state": summary.state()}
    )


class Feed:
    def __init__(
        self, hub: EventHub, recent: RecentEvents, history: EventHistory, settings: FeedSettings
    ) -> None:
        self._hub = hub
        self._recent = recent
        self._history = history
        self._settings = settings
        self._clients: dict[str, set[_Client]] = {}
        self._runs: OrderedDict[str, RunSummary] = OrderedDict()
        self._stopping = asyncio.Event()
        hub.add_listener(self._on_events, decodes_for=self._has_clients)

    def stop(self) -> None:
        self._stopping.set()

    def _has_clients(self, tenant: str) -> bool:
        return bool(self._clients.get(tenant))

    def _on_events(self, events: list[HubEvent]) -> None:
        """Only a tenant with clients has its events folded and rendered, and they arrive
        decoded for it (the hub has already put every event in the recent buffer)."""
        for hub_event in events:
            item = hub_event.item
            clients = self._clients.get(item.tenant_id)
            if not clients or not isinstance(item, FeedEvent):
                self._runs.pop(item.correlation_id, None)  # folded afresh if a client comes
                continue
            state = self._fold(item)
            cursor = hub_event.cursor
            live = _Live(item, cursor, encode_token(cursor), json.dumps(item.event), state)
            for client in clients:
                client.deliver(live)

    def _fold(self, item: FeedEvent) -> str | None:
        """The run's new state as a message when this event changed its status. A run not
        folded yet (its tenant had no client) starts from what the buffer holds of it."""
        key = item.correlation_id
        summary = self._runs.pop(key, None) or self._folded_before(item)
        self._runs[key] = summary
        if len(self._runs) > _RUN_STATES:
            self._runs.popitem(last=False)
        return _state_message(summary) if summary.apply(item.event) else None

    def _folded_before(self, item: FeedEvent) -> RunSummary:
        earlier = [e.event for e in self._recent.of_run(item.tenant_id, item.correlation_id, item)]
        return RunSummary.of(earlier) or RunSummary(item.correlation_id, item.tenant_id)

    async def serve(self, websocket: WebSocket, tenant: str) -> None:
        """One accepted connection, until it ends or is cut off."""
        try:
            raw = await asyncio.wait_for(websocket.receive_text(), _SUBSCRIBE_TIMEOUT_S)
            request = SubscribeMessage.model_validate_json(raw)
            resume = decode_token(request.last_event_id) if request.last_event_id else None
        except (TimeoutError, ValidationError, ValueError) as error:
            await _close(websocket, "bad_request", _reason(error))
            return
        except WebSocketDisconnect:
            return
        ids = frozenset(request.correlation_ids) if request.correlation_ids else None
        client = _Client(tenant, ids, asyncio.Queue(self._settings.client_queue))
        self._clients.setdefault(tenant, set()).add(client)
        FEED_CLIENTS.inc()
        try:
            await self._run_client(websocket, client, resume)
        finally:
            FEED_CLIENTS.dec()
            self._clients[tenant].discard(client)

    async def _run_client(
        self, websocket: WebSocket, client: _Client, resume: Positions | None
    ) -> None:
        now = self._hub.positions()  # taken with the registration: live events from here on
        start = resume if resume is not None else ({} if client.ids else now)
        try:
            replayed, position = await self._replay(client, start, now)
        except _Refused as refusal:
            await _close(websocket, refusal.reason, refusal.detail)
            return
        for message in replayed:
            await websocket.send_text(message)
        await websocket.send_text(
            json.dumps({"type": "subscribed", "id": encode_token(merged(position, now))})
        )
        held, client.held = client.held or [], None
        client.floor = position
        for live in held:
            client.deliver(live)
        await self._pump(websocket, client)

    async def _replay(
        self, client: _Client, start: Positions, now: Positions
    ) -> tuple[list[str], Positions]:
        """What the client lacks before ``now``: the projections' events older than this
        replica's buffer, then the buffer's, in log order per partition. Each message's ``id``
        resumes right after it."""
        complete = self._recent.complete_from(client.tenant, self._hub.start_positions)
        behind = [k for k in now if start.get(k, Mark(0)).offset < complete[k].offset]
        buffered = self._recent.of_tenant(
            client.tenant,
            lambda item: (
                client.wants(item)
                and start.get(item.where, Mark(0)).offset <= item.offset < now[item.where].offset
            ),
        )
        older = await self._older(client, start, behind) if behind else []
        seen = {item.event["event_id"] for item in buffered}
        seen |= {live.item.event["event_id"] for live in client.held or []}
        replayed = [event for event in older if event["event_id"] not in seen]
        messages = [_replayed_message(event, start) for event in replayed]
        position = dict(start)
        for item in buffered:
            position[item.where] = max(position.get(item.where, Mark(0)), item.next_mark)
            messages.append(_replayed_message(item.event, position))
            replayed.append(dict(item.event))
        for cid in sorted(client.ids or ()):
            summary = RunSummary.of(e for e in replayed if e["correlation_id"] == cid)
            if summary is not None:
                messages.append(_state_message(summary))
        return messages, position

    async def _older(
        self, client: _Client, start: Positions, behind: list[tuple[str, int]]
    ) -> list[dict[str, Any]]:
        limit = self._settings.history_limit
        try:
            if client.ids is not None and not start:
                events = [
                    event
                    for cid in sorted(client.ids)
                    for event in await self._history.run_events(client.tenant, cid, limit)
                ]
            else:
                micros = min(start.get(k, Mark(0)).micros for k in behind)
                since = datetime.fromtimestamp(micros / 1e6, UTC) - _CLOCK_SKEW
                events = await self._history.events_since(client.tenant, client.ids, since, limit)
        except ProjectionsUnavailable as error:
            log.warning("feed history unavailable: %s", error)
            raise _Refused("unavailable", "history unavailable; retry") from error
        if len(events) >= limit:
            raise _Refused("too_far_behind", "resume point too old; read /v1/runs instead")
        return events

    async def _pump(self, websocket: WebSocket, client: _Client) -> None:
        """Send, heartbeat and listen until the client leaves, falls behind or we stop."""
        tasks = {
            asyncio.create_task(self._send(websocket, client)),
            asyncio.create_task(self._listen(websocket, client)),
            asyncio.create_task(self._heartbeat(client)),
            asyncio.create_task(client.too_slow.wait()),
            asyncio.create_task(self._stopping.wait()),
        }
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if client.too_slow.is_set():
            FEED_DISCONNECTS.labels("too_slow").inc()
            await _close(websocket, "too_slow", f"more than {client.queue.maxsize} messages queued")
        elif self._stopping.is_set():
            await _close(websocket, "going_away", "server shutting down")

    @staticmethod
    async def _send(websocket: WebSocket, client: _Client) -> None:
        while True:
            await websocket.send_text(await client.queue.get())

    @staticmethod
    async def _listen(websocket: WebSocket, client: _Client) -> None:
        """After subscribing a client may only ping; anything else gets an error message."""
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                text = await websocket.receive_text()
                try:
                    kind = json.loads(text).get("type")
                except (json.JSONDecodeError, AttributeError):
                    kind = None
                if kind == "ping":
                    client.offer(json.dumps({"type": "pong"}))
                else:
                    refusal = error_payload(
                        ErrorCode.INVALID_REQUEST.value,
                        "only ping is accepted after subscribe",
                        False,
                        None,
                    )
                    client.offer(json.dumps({"type": "error", **refusal}))

    async def _heartbeat(self, client: _Client) -> None:
        while True:
            await asyncio.sleep(self._settings.heartbeat_s)
            client.offer(json.dumps({"type": "heartbeat", "ts": datetime.now(UTC).isoformat()}))


class _Refused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _reason(error: Exception) -> str:
    if isinstance(error, TimeoutError):
        return "no subscribe message in time"
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        return f"{'.'.join(map(str, first['loc']))}: {first['msg']}"[:120]
    return str(error)[:120]


async def _close(websocket: WebSocket, reason: str, detail: str) -> None:
    """Close with our code. The frame queues behind what the client has not read yet, so the
    wait is bounded: a client that never reads again is dropped without it."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(websocket.close(CLOSE_CODES[reason], detail[:120]), _CLOSE_WAIT_S)
