"""Reading topics back in tests: bounded polls on the real broker, never fixed sleeps."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import ClassVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from streams.envelope import Envelope
from streams.serde import AvroSerde


class TopicReader:
    """Reads every partition of a topic from the beginning (read_committed), keeping
    the raw messages and, given a serde, the decoded envelopes."""

    open_readers: ClassVar[list[TopicReader]] = []  # closed after each test (conftest)

    def __init__(self, bootstrap: str, topic: str, serde: AvroSerde | None = None) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"reader-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        self.topic = topic
        partitions = _partitions(self._consumer, topic)
        self._consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        self._serde = serde
        self.messages: list[Message] = []
        self.envelopes: list[Envelope] = []
        TopicReader.open_readers.append(self)

    def poll_until(
        self, done: Callable[[TopicReader], bool], timeout_s: float, what: str
    ) -> TopicReader:
        deadline = time.monotonic() + timeout_s
        while not done(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
            for message in self._consumer.consume(num_messages=1000, timeout=0.5):
                if message.error() is None:
                    self.messages.append(message)
                    if self._serde is not None:
                        self.envelopes.append(self._serde.decode(message.value()))
        return self

    def of_type(self, message_type: str) -> list[Envelope]:
        return [e for e in self.envelopes if e.message_type == message_type]

    def close(self) -> None:
        if self in TopicReader.open_readers:
            TopicReader.open_readers.remove(self)
            self._consumer.close()


def _partitions(consumer: Consumer, topic: str, within_s: float = 30.0) -> list[int]:
    """The topic's partitions, once the broker this client asks knows them. Each broker of a
    cluster learns of a new topic from the controller in its own time: asked too early, one
    answers with no partitions, and a reader assigned none would wait forever, silently."""
    deadline = time.monotonic() + within_s
    while not (partitions := consumer.list_topics(topic, timeout=10).topics[topic].partitions):
        assert time.monotonic() < deadline, f"{topic} has no partitions after {within_s}s"
        time.sleep(0.1)  # poll interval, bounded by the deadline
    return sorted(partitions)


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset per partition (partitions without a commit are absent)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return {tp.partition: tp.offset for tp in committed if tp.offset >= 0}
    finally:
        consumer.close()


_NOT_READY = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
    }
)


def end_offsets(bootstrap: str, topic: str, within_s: float = 30.0) -> dict[int, int]:
    """High watermarks; retried while partitions have no leader yet (a broker just started)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"w-{uuid.uuid4().hex}"})
    deadline = time.monotonic() + within_s
    try:
        while True:
            try:
                partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
                return {
                    p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    for p in partitions
                }
            except KafkaException as exc:
                if exc.args[0].code() not in _NOT_READY or time.monotonic() > deadline:
                    raise
    finally:
        consumer.close()


def assert_all_committed(bootstrap: str, group: str, topic: str) -> None:
    """The group's commits reach the end of every non-empty partition of ``topic``."""
    ends = {p: end for p, end in end_offsets(bootstrap, topic).items() if end > 0}
    assert committed_offsets(bootstrap, group, topic) == ends
