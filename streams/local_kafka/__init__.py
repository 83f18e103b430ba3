"""A real local Apache Kafka broker or cluster for development and tests, from Maven jars (no
Docker)."""

from streams.local_kafka.broker import (
    KRaftQuorum,
    LocalKafka,
    LocalKafkaError,
    cache_dir,
    ensure_jars,
    kafka_version,
)
from streams.local_kafka.cluster import LocalKafkaCluster

__all__ = [
    "KRaftQuorum",
    "LocalKafka",
    "LocalKafkaCluster",
    "LocalKafkaError",
    "cache_dir",
    "ensure_jars",
    "kafka_version",
]
