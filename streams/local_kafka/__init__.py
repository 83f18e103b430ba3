"""A real local Apache Kafka broker for development and tests, from Maven jars (no Docker)."""

from streams.local_kafka.broker import (
    LocalKafka,
    LocalKafkaError,
    cache_dir,
    ensure_jars,
    kafka_version,
)

__all__ = ["LocalKafka", "LocalKafkaError", "cache_dir", "ensure_jars", "kafka_version"]
