"""The one Kafka consumer of an API replica: every event topic, from the end of the log at
start-up, dispatched on the event loop to the requests waiting for a run (by correlation id)
and to the live feed.

Each replica reads *all* partitions under a consumer group of its own (assigned, not
subscribed: no rebalances, no join delay, no commits), so whichever replica a client's request
landed on sees that run's events: no sticky routing, and one consumer however many requests
wait. Start offsets are the high watermarks read before the replica reports ready, so an
event produced after readiness is never missed; a waiter registers before its command is
published, so its run's events cannot pass by unseen."""

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
from api.recent_events import Mark, Positions
from api.run_view import envelope_json
from streams.batches import next_batch
from streams.serde import AvroSerde, DecodeError

__all__ = ["Event", "EventHub", "HubEvent", "RunWatch"]

log = logging.getLogger("api")
_POLL_S = 0.1
_METADATA_TIMEOUT_S = 2.0
_RETRY_S = 1.0
_SWEEP_S = 5.0

Event = dict[str, Any]
"""An envelope as JSON (``run_view.envelope_json``): what every reader of the hub gets."""


@dataclass(frozen=True)
class HubEvent:
    """An event with where it sits in the log and the replica's read position just after it:
    everything before ``cursor`` has been dispatched, which is what a resume token needs."""

    topic: str
    partition: int
    offset: int
    event: Event
    cursor: Positions


class RunWatch:
    """One waiting request's view of one run: its events in log order, as they arrive. It
    ends when closed or, at the latest, when ``expires_at`` (loop time) has passed, so a
    request that vanished without closing it leaks nothing; ``on_end`` runs once when it ends
    (a streamed response whose body never started frees its admission slot this way too)."""

    def __init__(
        self,
        hub: EventHub,
        correlation_id: str,
        tenant: str,
        expires_at: float,
        on_end: Callable[[], None] | None = None,
    ) -> None:
        self._hub = hub
        self.correlation_id = correlation_id
        self.tenant = tenant
        self.expires_at = expires_at
        self.on_end = on_end
        self.events: asyncio.Queue[Event] = asyncio.Queue()

    def close(self) -> None:
        self._hub.unwatch(self)

    def __enter__(self) -> RunWatch:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


Listener = Callable[[list[HubEvent]], None]


class EventHub:
    def __init__(self, bootstrap_servers: str, serde: AvroSerde, topics: list[str]) -> None:
        self._bootstrap = bootstrap_servers
        self._serde = serde
        self._topics = topics
        self.group_id = f"api-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._watches: dict[str, set[RunWatch]] = {}
        self._listeners: list[Listener] = []
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

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

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
        on_end: Callable[[], None] | None = None,
    ) -> RunWatch:
        """Events of ``correlation_id`` (of ``tenant`` only) from now until the watch closes."""
        watch = RunWatch(self, correlation_id, tenant, expires_at, on_end)
        self._watches.setdefault(correlation_id, set()).add(watch)
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
        if watch.on_end is not None:
            watch.on_end()

    def _dispatch(self, messages: list[tuple[str, int, int, int, Event]]) -> None:
        """On the event loop: advance positions, then hand each event out in log order."""
        events = []
        for topic, partition, offset, micros, event in messages:
            self._positions[(topic, partition)] = Mark(offset + 1, micros)
            events.append(HubEvent(topic, partition, offset, event, dict(self._positions)))
            for watch in self._watches.get(event["correlation_id"], ()):
                if watch.tenant == event["tenant_id"]:
                    watch.events.put_nowait(event)
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
                batch = self._decode(next_batch(consumer, HUB_BATCH, _POLL_S))
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

    def _decode(self, messages: list[Message]) -> list[tuple[str, int, int, int, Event]]:
        """On the consumer thread, so the event loop only routes ready JSON."""
        decoded = []
        for message in messages:
            value, offset = message.value(), message.offset()
            if message.error() is not None or value is None or offset is None:
                continue
            try:
                envelope = self._serde.decode(value)
            except DecodeError as error:  # the processors dead-letter these; we skip them
                log.warning(
                    "undecodable event at %s/%s: %s", message.topic(), message.offset(), error
                )
                continue
            micros = int(envelope.timestamp.timestamp() * 1_000_000)
            where = (str(message.topic()), int(message.partition() or 0), offset)
            decoded.append((*where, micros, envelope_json(envelope)))
        return decoded
