"""Builds the runtime's parts from ``Settings``, so every entry point wires them the same way."""

from __future__ import annotations

from schemas import default_catalog
from streams.serde import AvroSerde, ConfluentFraming, Framing, SingleObjectFraming
from streams.settings import Settings
from streams.topics import TopicCatalog, load_topic_catalog

__all__ = ["bootstrap_servers", "serde_for", "topics_for"]


def serde_for(settings: Settings) -> AvroSerde:
    """Confluent framing when a Schema Registry is configured, single-object encoding if not."""
    catalog = default_catalog()
    framing: Framing = (
        ConfluentFraming.from_url(catalog, settings.schema_registry_url)
        if settings.schema_registry_url
        else SingleObjectFraming(catalog)
    )
    return AvroSerde(catalog, framing)


def topics_for(settings: Settings) -> TopicCatalog:
    return load_topic_catalog(prefix=settings.topic_prefix)


def bootstrap_servers(settings: Settings) -> str:
    if not settings.kafka_bootstrap_servers:
        raise SystemExit(
            "KAFKA_BOOTSTRAP_SERVERS is not set: start a local broker with "
            "`python -m streams.local_kafka` or run `./dev up`"
        )
    return settings.kafka_bootstrap_servers
