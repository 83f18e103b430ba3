"""Real services for the test session: a local Kafka broker (unless KAFKA_BOOTSTRAP_SERVERS
names one), started once and stopped at the end; each test gets its own topic namespace."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient

from streams.local_kafka import LocalKafka
from streams.local_registry import LocalSchemaRegistry
from streams.topics import TopicCatalog, ensure_topics, load_topic_catalog


@pytest.fixture(scope="session")
def kafka() -> Iterator[LocalKafka | str]:
    """The broker handle (restartable) or, when one is configured, just its address."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    with LocalKafka() as broker:
        yield broker


@pytest.fixture(scope="session")
def bootstrap(kafka: LocalKafka | str) -> str:
    return kafka if isinstance(kafka, str) else kafka.bootstrap_servers


@pytest.fixture
def topics(bootstrap: str) -> TopicCatalog:
    """The repo's topic catalog under a fresh prefix, created on the broker."""
    catalog = load_topic_catalog(prefix=f"t{uuid.uuid4().hex[:10]}.")
    ensure_topics(AdminClient({"bootstrap.servers": bootstrap}), catalog)
    return catalog


@pytest.fixture(scope="session")
def schema_registry_url() -> Iterator[str]:
    """A real Confluent-compatible Schema Registry (SCHEMA_REGISTRY_URL, or a local Apicurio)."""
    configured = os.environ.get("SCHEMA_REGISTRY_URL")
    if configured:
        yield configured
        return
    with LocalSchemaRegistry() as registry:
        yield registry.url
