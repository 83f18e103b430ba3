"""A real local broker keeps its messages and committed offsets through a SIGKILL and restart."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from streams.local_kafka import LocalKafka

TOPIC = "local-kafka-smoke"
GROUP = "local-kafka-smoke-group"
TIMEOUT_S = 30.0


def _create_topic(kafka: LocalKafka) -> None:
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    futures = admin.create_topics([NewTopic(TOPIC, num_partitions=1, replication_factor=1)])
    futures[TOPIC].result(timeout=TIMEOUT_S)


def _produce(kafka: LocalKafka, values: list[bytes]) -> None:
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            errors.append(err)

    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "acks": "all"})
    for value in values:
        producer.produce(TOPIC, value=value, on_delivery=on_delivery)
    assert producer.flush(TIMEOUT_S) == 0, "messages still undelivered"
    assert errors == []


def _consumer(kafka: LocalKafka, group: str) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([TOPIC])
    return consumer


def _next_value(consumer: Consumer) -> bytes | None:
    """Poll until a message arrives (group join and coordinator load take a moment), bounded."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is not None and msg.error() is None:
            value: bytes | None = msg.value()
            return value
    pytest.fail(f"no message from {TOPIC} within {TIMEOUT_S}s")


@pytest.mark.slow
def test_messages_and_committed_offset_survive_sigkill_and_restart() -> None:
    with LocalKafka() as kafka:
        _create_topic(kafka)
        _produce(kafka, [b"first", b"second"])
        consumer = _consumer(kafka, GROUP)
        assert _next_value(consumer) == b"first"
        consumer.commit(asynchronous=False)
        consumer.close()
        address = kafka.bootstrap_servers

        kafka.kill()
        assert not kafka.is_running
        kafka.restart()
        assert kafka.bootstrap_servers == address

        resumed = _consumer(kafka, GROUP)
        [committed] = resumed.committed([TopicPartition(TOPIC, 0)], timeout=TIMEOUT_S)
        assert committed.offset == 1
        assert _next_value(resumed) == b"second"
        resumed.close()

        replay = _consumer(kafka, "local-kafka-replay-group")
        assert _next_value(replay) == b"first"
        replay.close()
