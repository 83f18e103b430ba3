"""The one Kafka consumer of an API replica: every event topic, from the end of the log at
start-up, dispatched on the event loop to the requests waiting for a run (by correlation id)
and to the live feed.

Each replica reads *all* partitions under a consumer group of its own (assigned, not
subscribed: no rebalances, no join delay, no commits), so whichever replica a client's request
landed on sees that run's events: no sticky routing, and one consumer however many requests
wait. Start offsets are the high watermarks read before the replica reports ready, so an
event produced after readiness is never missed; a waiter registers before its command is
published, so its run's events cannot pass by unseen.

Every event goes to the replica's buffer of recent events (``RecentEvents``), which chat
retries, run views and feed resumes read, whether or not any feed client is connected. Only
what someone here uses is decoded (Avro to JSON): events of a run a request waits for, and of a
tenant with a live feed client. The consumer thread judges by the ``correlation_id`` and
``tenant_id`` headers; the rest stays bytes (``RawEvent``) in the buffer, where a resume, a
retry or a run view decodes it if it ever needs it. Interest that arrived after the thread
judged is caught on the event loop, which decodes such an event before routing it.
Messages without those headers (older producers) are decoded as they come."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition

from api.config import HUB_BATCH
from api.metrics import EVENTS_CONSUMED, RUN_WAITERS
from api.recent_events import Buffered, FeedEvent, Mark, Positions, RawEvent, RecentEvents
from streams.batches import next_batch
from streams.envelope import Envelope, envelope_json
from streams.producer import (
    CORRELATION_ID_HEADER,
    MESSAGE_TYPE_HEADER,
    TENANT_ID_HEADER,
    header_pairs,
)
from streams.serde import AvroSerde, DecodeError

__all__ = ["Event", "EventHub", "HubEvent", "RunWatch"]

log = logging.getLogger("api")
_POLL_S = 0.1
_METADATA_TIMEOUT_S = 2.0
_RETRY_S = 1.0
_SWEEP_S = 5.0
_UNWATCHED: frozenset[str] = frozenset({"<no watch>"})

Event = dict[str, Any]
"""An envelope as JSON (``streams.envelope.envelope_json``): what every reader of the hub gets."""


@dataclass(frozen=True)
class HubEvent:
    """An event (decoded when its tenant has a live client) and the replica's read position
    just after it: everything before ``cursor`` has been dispatched, which is what a resume
    token needs."""

    item: Buffered
    cursor: Positions


class RunWatch:
    """One waiting request's view of one run: its events of the types it ``wants`` (all when
    None) in log order, as they arrive; the others are never decoded for it. It ends when closed
    or, at the latest, when ``expires_at`` (loop time) has passed, so a request that vanished
    without closing it leaks nothing; ``on_first_event`` runs when the run's first event of any
    type arrives (admission measures queueing by it), ``on_end`` runs once when it ends (a
    streamed response whose body never started frees its admission slot this way too)."""

    def __init__(
        self,
        hub: EventHub,
        correlation_id: str,
        tenant: str,
        expires_at: float,
        wants: frozenset[str] | None = None,
        on_end: Callable[[], None] | None = None,
        on_first_event: Callable[[], None] | None = None,
    ) -> None:
        self._hub = hub
        self.on_first_event = on_first_event
        self.correlation_id = correlation_id
        self.tenant = tenant
        self.expires_at = expires_at
        self.wants = wants
        self.on_end = on_end
        self.events: asyncio.Queue[Event] = asyncio.Queue()

    def arrived(self, event: FeedEvent | None) -> None:
        """An event of the run arrived: ``event`` decoded when this watch wants its type."""
        if self.on_first_event is not None:
            self.on_first_event()
            self.on_first_event = None
        if event is not None:
            self.events.put_nowait(dict(event.event))

    def close(self) -> None:
        self._hub.unwatch(self)

    def __enter__(self) -> RunWatch:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


Listener = Callable[[list[HubEvent]], None]
TenantInterest = Callable[[str], bool]
"""Whether a listener needs a tenant's events decoded now; asked from the consumer thread too."""


class EventHub:
    def __init__(
        self, bootstrap_servers: str, serde: AvroSerde, topics: list[str], recent: RecentEvents
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._recent = recent
        self._serde = serde
        self._topics = topics
        self.group_id = f"api-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._watches: dict[str, set[RunWatch]] = {}
        self._wanted_types: dict[str, frozenset[str] | None] = {}  # per run, for the thread
        self._listeners: list[Listener] = []
        self._interests: list[TenantInterest] = []
        self._positions: Positions = {}
        self.start_positions: Positions = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_sweep = 0.0

    @property
    def ready(self) -> bool:
        """Positions are known and the consumer runs: no event of these topics goes unseen."""
        return bool(self.start_positions) and self._thread is not None and self._thread.is_alive()

    def positions(self) -> Positions:
        return dict(self._positions)

    def add_listener(self, listener: Listener, decodes_for: TenantInterest) -> None:
        """Before ``start``: ``listener`` gets every event, decoded where ``decodes_for``."""
        self._listeners.append(listener)
        self._interests.append(decodes_for)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._consume, args=(loop,), name="event-hub", daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    def watch(
        self,
        correlation_id: str,
        tenant: str,
        expires_at: float,
        wants: frozenset[str] | None = None,
        on_end: Callable[[], None] | None = None,
        on_first_event: Callable[[], None] | None = None,
    ) -> RunWatch:
        """Events of ``correlation_id`` (of ``tenant`` only, of the types in ``wants``, all
        when None) from now until the watch closes."""
        watch = RunWatch(self, correlation_id, tenant, expires_at, wants, on_end, on_first_event)
        self._watches.setdefault(correlation_id, set()).add(watch)
        self._index_types(correlation_id)
        RUN_WAITERS.inc()
        return watch

    def unwatch(self, watch: RunWatch) -> None:
        watchers = self._watches.get(watch.correlation_id)
        if watchers is None or watch not in watchers:
            return
        RUN_WAITERS.dec()
        watchers.discard(watch)
        if not watchers:
            del self._watches[watch.correlation_id]
        self._index_types(watch.correlation_id)
        if watch.on_end is not None:
            watch.on_end()

    def _index_types(self, correlation_id: str) -> None:
        """What the run's watches want, replaced whole so the consumer thread reads it safely."""
        watchers = self._watches.get(correlation_id)
        if not watchers:
            self._wanted_types.pop(correlation_id, None)
            return
        wants = [w.wants for w in watchers]
        union = None if None in wants else frozenset().union(*(w for w in wants if w))
        self._wanted_types[correlation_id] = union

    def _wanted(self, correlation_id: str, tenant: str, event_type: str) -> bool:
        """Someone here needs this event decoded. Only lookups of values replaced whole, so the
        consumer thread may ask while the loop changes the watches."""
        types = self._wanted_types.get(correlation_id, _UNWATCHED)
        if types is not _UNWATCHED and (types is None or not event_type or event_type in types):
            return True
        return any(i(tenant) for i in self._interests)

    def _dispatch(self, items: list[Buffered]) -> None:
        """On the event loop: advance positions, then hand each event out in log order."""
        events = []
        for read in items:
            item: Buffered | None = read
            if isinstance(read, RawEvent) and self._wanted(
                read.correlation_id, read.tenant_id, read.event_type
            ):
                item = read.decoded()  # wanted since the consumer thread judged it
            self._positions[read.where] = read.next_mark
            if item is None:
                continue
            self._recent.add(item)
            events.append(HubEvent(item, dict(self._positions)))
            for watch in self._watches.get(item.correlation_id, ()):
                if watch.tenant == item.tenant_id:
                    watch.arrived(_delivered(item, watch.wants))
        EVENTS_CONSUMED.inc(len(events))
        for listener in self._listeners:
            listener(events)
        self._sweep()

    def _sweep(self) -> None:
        now = asyncio.get_running_loop().time()
        if now < self._next_sweep:
            return
        self._next_sweep = now + _SWEEP_S
        expired = [w for ws in self._watches.values() for w in ws if w.expires_at < now]
        for watch in expired:
            self.unwatch(watch)

    def _assigned(self, positions: Positions) -> None:
        self._positions = dict(positions)
        self.start_positions = dict(positions)

    def _consume(self, loop: asyncio.AbstractEventLoop) -> None:
        """The consumer thread: librdkafka calls block, so they stay off the event loop."""
        consumer = Consumer(
            {
                "bootstrap.servers": self._bootstrap,
                "group.id": self.group_id,
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        try:
            while not self._stopping.is_set() and not self._assign(consumer, loop):
                self._stopping.wait(_RETRY_S)
            while not self._stopping.is_set():
                batch = self._read(next_batch(consumer, HUB_BATCH, _POLL_S))
                if batch:
                    loop.call_soon_threadsafe(self._dispatch, batch)
        finally:
            consumer.close()

    def _assign(self, consumer: Consumer, loop: asyncio.AbstractEventLoop) -> bool:
        """Every partition of every topic at its current end; False (retried) if the broker
        does not answer."""
        started = int(time.time() * 1_000_000)  # later events are stamped later, up to clock skew
        try:
            positions: Positions = {}
            for topic in self._topics:
                metadata = consumer.list_topics(topic, timeout=_METADATA_TIMEOUT_S).topics[topic]
                if metadata.error is not None:
                    raise RuntimeError(str(metadata.error))
                for partition in metadata.partitions:
                    _, high = consumer.get_watermark_offsets(
                        TopicPartition(topic, partition), timeout=_METADATA_TIMEOUT_S
                    )
                    positions[(topic, partition)] = Mark(high, started)
        except Exception as error:
            log.warning("event hub: broker not reachable yet: %s", error)
            return False
        consumer.assign([TopicPartition(t, p, m.offset) for (t, p), m in positions.items()])
        loop.call_soon_threadsafe(self._assigned, positions)
        log.info("event hub reading %d partitions from their end", len(positions))
        return True

    def _read(self, messages: list[Message]) -> list[Buffered]:
        """On the consumer thread, so the event loop only routes: what is wanted is decoded
        here, the rest kept as bytes with its routing headers."""
        read: list[Buffered] = []
        for message in messages:
            value, offset = message.value(), message.offset()
            if message.error() is not None or value is None or offset is None:
                continue
            topic, partition = str(message.topic()), int(message.partition() or 0)
            routing = _routing(message)
            if routing is None or self._wanted(*routing):
                decoded = self._decoded(topic, partition, offset, value)
                if decoded is not None:
                    read.append(decoded)
                continue
            _, millis = message.timestamp()
            micros = max(millis, 0) * 1000
            run, tenant, kind = routing
            read.append(
                RawEvent(topic, partition, offset, micros, run, tenant, value, self._json, kind)
            )
        return read

    def _decoded(self, topic: str, partition: int, offset: int, value: bytes) -> FeedEvent | None:
        envelope = self._envelope(value)
        if envelope is None:
            return None
        micros = int(envelope.timestamp.timestamp() * 1_000_000)
        return FeedEvent(topic, partition, offset, micros, envelope_json(envelope))

    def _json(self, value: bytes) -> Event | None:
        """A ``RawEvent``'s decoder, for whoever reads it later (on the event loop)."""
        envelope = self._envelope(value)
        return None if envelope is None else envelope_json(envelope)

    def _envelope(self, value: bytes) -> Envelope | None:
        try:
            return self._serde.decode(value)
        except DecodeError as error:  # the processors dead-letter these; we skip them
            log.warning("undecodable event skipped: %s", error)
            return None


def _delivered(item: Buffered, wants: frozenset[str] | None) -> FeedEvent | None:
    """``item`` as a watch wanting ``wants`` gets it: decoded, or None for a type it skips."""
    if not isinstance(item, FeedEvent):
        return None
    if wants is None or item.event["event_type"] in wants:
        return item
    return None


def _routing(message: Message) -> tuple[str, str, str] | None:
    """``(correlation_id, tenant_id, message_type)`` from the headers (the type empty when a
    producer set none); None when it set neither of the first two."""
    wanted = (CORRELATION_ID_HEADER, TENANT_ID_HEADER, MESSAGE_TYPE_HEADER)
    found = {k: v.decode(errors="replace") for k, v in header_pairs(message) if k in wanted}
    if CORRELATION_ID_HEADER not in found or TENANT_ID_HEADER not in found:
        return None
    return (
        found[CORRELATION_ID_HEADER],
        found[TENANT_ID_HEADER],
        found.get(MESSAGE_TYPE_HEADER, ""),
    )
