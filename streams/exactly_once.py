"""Exactly-once delivery: a batch's outputs and its input offsets commit in one Kafka
transaction, so ``read_committed`` consumers see each output once. Within a batch, up to
``max_in_flight_per_partition`` messages of a partition are handled at once (started in offset
order), as in at-least-once mode; a transaction the broker aborts is rewound and redone."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from streams.offsets import PartitionKey
from streams.processing import EngineParts, ProducerFailed

__all__ = ["ExactlyOnce"]

log = logging.getLogger("streams.runner")
_TRANSACTION_TIMEOUT_S = 60.0


class ExactlyOnce:
    def __init__(self, parts: EngineParts) -> None:
        self._parts = parts
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Nothing to finish: a batch's transaction ends before the next poll, which is where
        a rebalance can happen."""

    async def run(self) -> None:
        await self._parts.kafka.run(
            self._parts.producer.kafka.init_transactions, _TRANSACTION_TIMEOUT_S
        )
        while not self._stopping:
            batch = await self._parts.next_batch()
            if batch:
                await self._transact(batch)

    async def _transact(self, batch: list[Message]) -> None:
        self._parts.producer.kafka.begin_transaction()
        try:
            await self._handle(batch)
            positions = _next_offsets(batch)
            await self._parts.kafka.run(
                self._parts.producer.kafka.send_offsets_to_transaction,
                [TopicPartition(t, p, o) for (t, p), o in positions.items()],
                self._parts.consumer.consumer_group_metadata(),
            )
            await self._parts.kafka.run(
                self._parts.producer.kafka.commit_transaction, _TRANSACTION_TIMEOUT_S
            )
        except (KafkaException, ProducerFailed) as exc:
            error: KafkaError = exc.error if isinstance(exc, ProducerFailed) else exc.args[0]
            if not error.txn_requires_abort():
                raise
            log.warning("transaction aborted, rewinding batch: %s", error.str())
            await self._parts.kafka.run(
                self._parts.producer.kafka.abort_transaction, _TRANSACTION_TIMEOUT_S
            )
            for (topic, partition), offset in _first_offsets(batch).items():
                await self._parts.kafka.run(
                    self._parts.consumer.seek, TopicPartition(topic, partition, offset)
                )

    async def _handle(self, batch: list[Message]) -> None:
        """Every message of the batch, each partition's up to ``max_in_flight`` at once; the
        first failure cancels the rest (the transaction is then aborted or the runner stops)."""
        by_partition: dict[PartitionKey, list[Message]] = {}
        for message in batch:
            if self._parts.processing.skips(message):
                continue
            key = (str(message.topic()), int(message.partition() or 0))
            by_partition.setdefault(key, []).append(message)
        try:
            async with asyncio.TaskGroup() as group:
                for messages in by_partition.values():
                    bound = asyncio.Semaphore(self._parts.max_in_flight)
                    for message in messages:  # tasks start in creation order: offset order
                        group.create_task(_bounded(bound, self._parts.processing.process, message))
        except BaseExceptionGroup as failures:
            raise failures.exceptions[0] from None


async def _bounded(
    bound: asyncio.Semaphore, work: Callable[[Message], Awaitable[None]], message: Message
) -> None:
    async with bound:
        await work(message)


def _next_offsets(batch: list[Message]) -> dict[PartitionKey, int]:
    result: dict[PartitionKey, int] = {}
    for message in batch:
        key = (str(message.topic()), int(message.partition() or 0))
        result[key] = max(result.get(key, 0), int(message.offset() or 0) + 1)
    return result


def _first_offsets(batch: list[Message]) -> dict[PartitionKey, int]:
    result: dict[PartitionKey, int] = {}
    for message in batch:
        key = (str(message.topic()), int(message.partition() or 0))
        result.setdefault(key, int(message.offset() or 0))
    return result
