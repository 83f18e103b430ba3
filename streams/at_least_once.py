"""At-least-once delivery: outputs are acknowledged by the broker before the input's offset is
committed, and offsets are committed only below the lowest unfinished message, so a crash never
skips work; redone work yields exact duplicates (deterministic ``event_id``s). Up to
``max_in_flight_per_partition`` messages of a partition are handled at once."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from streams.metrics import CONSUMER_LAG
from streams.offsets import OffsetTracker, PartitionKey
from streams.processing import EngineParts

__all__ = ["AtLeastOnce"]

log = logging.getLogger("streams.runner")
_GROUP_MOVED_ON = frozenset(
    {
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.REBALANCE_IN_PROGRESS,
        getattr(KafkaError, "_STATE"),  # noqa: B009 - "not a member of the group" locally
    }
)


class AtLeastOnce:
    def __init__(
        self, name: str, parts: EngineParts, commit_interval_s: float, drain_timeout_s: float
    ) -> None:
        self._name = name
        self._parts = parts
        self._commit_interval_s = commit_interval_s
        self._drain_timeout_s = drain_timeout_s
        self._tracker = OffsetTracker()
        self._pending: dict[PartitionKey, deque[Message]] = {}
        self._tasks: dict[PartitionKey, set[asyncio.Task[None]]] = {}
        self._paused: set[PartitionKey] = set()
        self._stopping = False
        self._fatal: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def stop(self) -> None:
        self._stopping = True

    async def run(self) -> None:
        """Until stopped: then started work finishes and is committed. Raises what made
        processing fatal (the producer failed), without committing past it."""
        self._loop = asyncio.get_running_loop()
        last_commit = 0.0
        while not self._stopping:
            self._apply_backpressure()
            batch = await self._parts.next_batch()
            for message in batch:
                key = (str(message.topic()), int(message.partition() or 0))
                if self._parts.processing.skips(message):
                    self._tracker.passed(key, int(message.offset() or 0))
                    continue
                self._tracker.start(key, int(message.offset() or 0))
                self._pending.setdefault(key, deque()).append(message)
                self._start_ready(key)
            await asyncio.sleep(0)
            if self._loop.time() - last_commit >= self._commit_interval_s:
                await self._commit()
                last_commit = self._loop.time()
        await self._finish(list(self._tasks))
        await self._commit()
        if self._fatal is not None:
            raise self._fatal

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Runs in the Kafka thread while the loop is free: finish started work on the revoked
        partitions, commit exactly up to it, and never commit for them again."""
        keys = [(p.topic, p.partition) for p in partitions]
        if self._loop is not None:
            offsets = asyncio.run_coroutine_threadsafe(self._finish(keys), self._loop).result()
            self._commit_offsets(consumer, offsets)
        self._tracker.forget(keys)
        for key in keys:
            self._paused.discard(key)

    def _start_ready(self, key: PartitionKey) -> None:
        pending = self._pending.get(key)
        tasks = self._tasks.setdefault(key, set())
        while pending and len(tasks) < self._parts.max_in_flight:
            message = pending.popleft()
            task = asyncio.ensure_future(self._parts.processing.process(message))
            tasks.add(task)
            task.add_done_callback(functools.partial(self._finished, key, message))

    def _finished(self, key: PartitionKey, message: Message, task: asyncio.Task[None]) -> None:
        self._tasks.get(key, set()).discard(task)
        if task.cancelled():
            return
        if task.exception() is not None:
            self._fatal = task.exception()  # the producer failed: stop, commit nothing more
            self._stopping = True
            log.error("fatal error in processing", exc_info=self._fatal)
            return
        self._tracker.finish(key, int(message.offset() or 0))
        self._start_ready(key)

    def _apply_backpressure(self) -> None:
        """Pause partitions with a full queue so one slow partition cannot grow memory."""
        limit = self._parts.max_in_flight + self._parts.batch_size
        for key, pending in self._pending.items():
            full = len(pending) >= limit
            if full and key not in self._paused:
                self._parts.consumer.pause([TopicPartition(*key)])
                self._paused.add(key)
            elif not full and key in self._paused:
                self._parts.consumer.resume([TopicPartition(*key)])
                self._paused.discard(key)

    async def _commit(self) -> None:
        """On the Kafka thread: a slow broker must not stall the runs in flight."""
        offsets = self._tracker.to_commit()
        if not offsets:
            return
        committed: bool = await self._parts.kafka.run(
            self._commit_offsets, self._parts.consumer, offsets
        )
        if committed:
            self._tracker.committed(offsets)
            self._export_lag(offsets)

    def _commit_offsets(self, consumer: Consumer, offsets: dict[PartitionKey, int]) -> bool:
        """Flush outputs first: an offset is committed only once its outputs are durable. A
        commit refused because the group moved on (a rebalance, a lost coordinator) is not
        fatal: the partitions' new owner redoes the work, as after any crash."""
        if not offsets or self._fatal is not None:
            return False
        self._parts.producer.flush()
        try:
            consumer.commit(
                offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                asynchronous=False,
            )
        except KafkaException as exc:
            if exc.args[0].code() not in _GROUP_MOVED_ON:
                raise
            log.warning("commit refused, the group moved on: %s", exc.args[0].str())
            return False
        return True

    async def _finish(self, keys: list[PartitionKey]) -> dict[PartitionKey, int]:
        """Let started work on ``keys`` end, cancelling what outlives the drain timeout; queued,
        unstarted and cancelled messages are left to redelivery. Returns the offsets now safe
        to commit for ``keys``."""
        for key in keys:
            self._pending.pop(key, None)
        tasks = [t for key in keys for t in self._tasks.get(key, set())]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self._drain_timeout_s)
            for task in late:  # past the drain: cancelled (a run stops paying providers)
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        return self._tracker.to_commit(keys)

    def _export_lag(self, offsets: dict[PartitionKey, int]) -> None:
        for (topic, partition), offset in offsets.items():
            _, high = self._parts.consumer.get_watermark_offsets(
                TopicPartition(topic, partition), cached=True
            )
            if high >= 0:
                CONSUMER_LAG.labels(self._name, topic, str(partition)).set(high - offset)
