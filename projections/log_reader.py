"""Reads explicit partitions from chosen offsets up to per-partition targets, for replays.

A fresh consumer with its own throwaway group id that only ``assign``s and never commits, so
the live projector's group and offsets are untouched. Targets start as the end offsets seen
when the reader opens (the snapshot a replay rebuilds) and can be raised while it reads."""

from __future__ import annotations

import uuid
from datetime import datetime

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from projections.batch import collect
from streams.offsets import PartitionKey

__all__ = ["LogReader"]


class LogReader:
    def __init__(
        self, bootstrap_servers: str, topics: list[str], since: datetime | None = None
    ) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                "group.id": f"projector-replay-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "isolation.level": "read_committed",
            }
        )
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(
                self._consumer.list_topics(topic, timeout=30).topics[topic].partitions
            )
        ]
        self.targets: dict[PartitionKey, int] = {}
        self.starts: dict[PartitionKey, int] = {}
        for tp in partitions:
            low, high = self._consumer.get_watermark_offsets(tp, timeout=30)
            self.targets[(tp.topic, tp.partition)] = high
            self.starts[(tp.topic, tp.partition)] = low
        if since is not None:
            millis = int(since.timestamp() * 1000)
            asked = [TopicPartition(tp.topic, tp.partition, millis) for tp in partitions]
            for found in self._consumer.offsets_for_times(asked, timeout=30):
                key = (found.topic, found.partition)
                self.starts[key] = found.offset if found.offset >= 0 else self.targets[key]
        self.positions = dict(self.starts)
        self._paused: set[PartitionKey] = set()
        self._consumer.assign(
            [
                TopicPartition(t, p, self.starts[(t, p)] if since else OFFSET_BEGINNING)
                for t, p in self.targets
            ]
        )
        for key in self.targets:
            self._pause_if_done(key)

    @property
    def total(self) -> int:
        return sum(max(0, self.targets[k] - self.starts[k]) for k in self.targets)

    @property
    def done_count(self) -> int:
        return sum(
            max(0, min(self.positions[k], self.targets[k]) - self.starts[k]) for k in self.targets
        )

    def finished(self) -> bool:
        return all(self.positions[k] >= self.targets[k] for k in self.targets)

    def raise_targets(self, offsets: dict[PartitionKey, int]) -> None:
        """Read further on these partitions (a live projector inserted past the snapshot)."""
        for key, offset in offsets.items():
            if key in self.targets and offset > self.targets[key]:
                self.targets[key] = offset
                if key in self._paused:
                    self._consumer.resume([TopicPartition(*key)])
                    self._paused.discard(key)

    def read(self, max_messages: int, max_wait_s: float) -> list[Message]:
        """Messages below their partition's target; a partition that reached its target is
        parked exactly there (seeked back, paused) until its target is raised."""
        messages, ends = collect(self._consumer, max_messages, max_wait_s)
        kept = []
        beyond: set[PartitionKey] = set()
        for message in messages:
            key = (str(message.topic()), int(message.partition() or 0))
            offset = int(message.offset() or 0)
            if offset < self.targets[key]:
                kept.append(message)
                self.positions[key] = offset + 1
            else:
                beyond.add(key)
        for key, offset in ends.items():
            # The end of the log may lie past the target; what lies between was dropped above.
            self.positions[key] = max(self.positions[key], min(offset, self.targets[key]))
        for key in beyond:
            self.positions[key] = max(self.positions[key], self.targets[key])
            self._consumer.seek(TopicPartition(*key, self.targets[key]))
        for key in {*beyond, *ends}:
            self._pause_if_done(key)
        return kept

    def close(self) -> None:
        self._consumer.close()

    def _pause_if_done(self, key: PartitionKey) -> None:
        if self.positions[key] >= self.targets[key] and key not in self._paused:
            self._consumer.pause([TopicPartition(*key)])
            self._paused.add(key)
