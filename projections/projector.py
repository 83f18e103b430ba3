"""The live projector: every ``events.*`` topic into ClickHouse, in batches, each event once.

One cycle, in the consumer's thread: collect messages by size and time, cut them per partition,
decode (poison -> the topic's DLQ), group the batches into one insert, wait for the previous
cycle's insert, flush dead letters, commit the previous batches' end offsets together with the
new batches' ranges as intents, then hand the new group to the writer thread (so decoding
overlaps the insert).

* An offset is committed only after its batch's insert returned (rows written as parts).
* A batch's range (and its group's) is committed as an intent before its insert starts; a crash
  leaves the intent, and whoever owns the partition next rebuilds exactly that range and group
  first (``pending.py``), so the retried insert dedups against the interrupted one
  (``writer.py``).
* SIGTERM: stop collecting, let the in-flight insert finish (retrying up to ``drain_timeout_s``
  if the store is down), commit, return."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from projections.batch import InsertGroup, PartitionBatch, collect, decode_batch
from projections.pending import PendingMessages, intent_metadata, read_intent
from projections.settings import ProjectionSettings
from projections.store import ProjectionStore
from projections.writer import EventWriter, WriteInterrupted
from streams.batches import BATCHING_FETCH, committing_consumer
from streams.dead_letter import parked
from streams.envelope import Clock, system_clock
from streams.metrics import CONSUMER_LAG, MESSAGES_IN
from streams.offsets import PartitionKey
from streams.producer import EnvelopeProducer
from streams.serde import AvroSerde
from streams.topics import TopicCatalog
from streams.tracing import batch_span

__all__ = ["PROCESSOR_NAME", "Projector"]

log = logging.getLogger("projections.projector")
PROCESSOR_NAME = "projector"


class Projector:
    """One consumer in the projector group; start more processes to share the partitions."""

    def __init__(
        self,
        store: ProjectionStore,
        serde: AvroSerde,
        topics: TopicCatalog,
        bootstrap_servers: str,
        settings: ProjectionSettings,
        consumer_overrides: Mapping[str, Any] | None = None,
        drain_timeout_s: float = 30.0,
        clock: Clock = system_clock,
    ) -> None:
        self._serde = serde
        self._topics = topics
        self._settings = settings
        self._drain_timeout_s = drain_timeout_s
        self._clock = clock
        self._input_topics = topics.event_topics()
        self._consumer = committing_consumer(
            bootstrap_servers, settings.group_id, {**BATCHING_FETCH, **(consumer_overrides or {})}
        )
        self._dead_letters = EnvelopeProducer(bootstrap_servers, serde, topics)
        self._stopping = threading.Event()
        self._abandon = threading.Event()  # the writer gives up retrying only once this is set
        self._give_up: threading.Timer | None = None
        self._writer = EventWriter(store, f"{settings.database}.events", self._abandon, live=True)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="insert")
        self._in_flight: tuple[list[InsertGroup], Future[None]] | None = None
        self._pending: PendingMessages[Message] = PendingMessages()
        self._unchecked: list[TopicPartition] = []  # assigned, intents not read yet
        self._write_lock = threading.Lock()
        self._inserted: dict[PartitionKey, int] = {}

    @property
    def stopping(self) -> threading.Event:
        """Set once ``stop`` was called; work started on behalf of this process checks it."""
        return self._stopping

    def stop(self) -> None:
        """Finish the in-flight batch, commit and return from ``run`` (thread-safe)."""
        self._stopping.set()

    @contextmanager
    def writes_paused(self) -> Iterator[dict[PartitionKey, int]]:
        """Holds the writer between batches; yields the offset each partition is inserted up to.
        A replay swaps its tables inside this, so no live insert lands in a table being swapped."""
        with self._write_lock:
            yield dict(self._inserted)

    def run(self) -> None:
        self._consumer.subscribe(
            self._input_topics, on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        log.info("projector started", extra={"topic": ",".join(self._input_topics)})
        wait_s = self._settings.batch_wait_ms / 1000
        try:
            while not self._stopping.is_set():
                messages, _ = collect(self._consumer, self._settings.batch_size, wait_s)
                for topic, count in Counter(str(m.topic()) for m in messages).items():
                    MESSAGES_IN.labels(PROCESSOR_NAME, topic).inc(count)
                self._pending.add(messages)
                self._read_intents()
                self._advance(self._cut())
            self._advance([])
        except WriteInterrupted as exc:
            log.warning("stopped with an unwritten batch; it will be redelivered: %s", exc)
        finally:
            if self._give_up is not None:
                self._give_up.cancel()
            self._pool.shutdown(wait=True)
            self._consumer.close()
        log.info("projector stopped")

    # --- one cycle ---------------------------------------------------------------------------

    def _cut(self) -> list[InsertGroup]:
        """The cycle's batches as insert groups: the fresh ones together, each interrupted
        group rebuilt from its members as before."""
        fresh: list[PartitionBatch] = []
        resumed: dict[str, list[PartitionBatch]] = {}
        for ready in self._pending.take():
            batch = decode_batch(ready.messages, self._serde, self._dead_letter)
            if ready.group is None:
                fresh.append(batch)
            else:
                resumed.setdefault(ready.group, []).append(batch)
        return [*map(InsertGroup.of, resumed.values()), *InsertGroup.split(fresh)]

    def _advance(self, groups: list[InsertGroup]) -> None:
        """Commit what the previous cycle made durable, with the new groups' intents; then
        start inserting the new groups."""
        offsets = {
            b.key: TopicPartition(b.topic, b.partition, b.end)
            for group in self._finish()
            for b in group.batches
        }
        for group in groups:
            for batch in group.batches:
                offsets[batch.key] = TopicPartition(
                    batch.topic,
                    batch.partition,
                    batch.start,
                    metadata=intent_metadata(batch.end, group.ranges),
                )
        self._commit(list(offsets.values()))
        if groups:
            self._in_flight = (groups, self._pool.submit(self._write, groups))

    def _write(self, groups: list[InsertGroup]) -> None:
        traced = (  # read only when spans are exported
            row.traceparent
            for group in groups
            for batch in group.batches
            for row in batch.rows
            if row.traceparent is not None
        )
        with (
            self._write_lock,
            batch_span("projector insert", traced, {"platform.groups": len(groups)}),
        ):
            self._writer.write(groups)
            for group in groups:
                for batch in group.batches:
                    self._inserted[batch.key] = batch.end

    def _finish(self) -> list[InsertGroup]:
        """Wait for the in-flight inserts; raises if they failed (nothing gets committed).

        While the store is down this waits, retrying, for as long as it takes; once stopping
        is requested the writer gets ``drain_timeout_s`` more, then gives up (the batch is
        redelivered, and its intent makes the retry exact)."""
        if self._in_flight is None:
            return []
        groups, future = self._in_flight
        self._in_flight = None
        while True:
            try:
                future.result(timeout=0.25)
                break
            except TimeoutError:
                if self._stopping.is_set() and self._give_up is None:
                    self._give_up = threading.Timer(self._drain_timeout_s, self._abandon.set)
                    self._give_up.start()
        self._dead_letters.flush()  # dead letters of these batches are durable before commit
        return groups

    def _commit(self, offsets: list[TopicPartition]) -> None:
        if not offsets:
            return
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # e.g. a rebalance took the partitions: the new owner redoes the uncommitted
            # tail, and duplicates of what was inserted are dropped before insert.
            log.warning("commit failed: %s", exc)
            return
        for tp in offsets:
            _, high = self._consumer.get_watermark_offsets(tp, cached=True)
            if high >= 0:
                CONSUMER_LAG.labels(PROCESSOR_NAME, tp.topic, str(tp.partition)).set(
                    high - tp.offset
                )

    def _dead_letter(self, message: Message, error: str) -> None:
        outgoing = parked(message, error, PROCESSOR_NAME, self._topics, self._clock())
        self._dead_letters.send_raw(outgoing)

    # --- rebalances --------------------------------------------------------------------------

    def _read_intents(self) -> None:
        """Intents of newly assigned partitions (read outside the callback: it is a request)."""
        if not self._unchecked:
            return
        partitions, self._unchecked = self._unchecked, []
        for tp in self._consumer.committed(partitions, timeout=30):
            intent = read_intent(tp.metadata)
            if intent is not None:
                log.warning(
                    "resuming an interrupted batch",
                    extra={"topic": tp.topic, "offset": intent.end, "group": intent.group},
                )
                self._pending.pin((tp.topic, tp.partition), intent)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._unchecked.extend(partitions)
        log.info("assigned %s", [(p.topic, p.partition) for p in partitions])

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Finish and commit the in-flight inserts while we still own their partitions; the
        collected but unwritten messages go to the next owner."""
        self._advance([])
        keys = [(p.topic, p.partition) for p in partitions]
        self._pending.forget(keys)
        self._unchecked = [p for p in self._unchecked if (p.topic, p.partition) not in keys]
        log.info("revoked %s", keys)
