"""The topic catalog (``configs/topics.yaml``): which topic carries which message type, and
its partitions, retention and dead-letter topic; created idempotently with the AdminClient."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from confluent_kafka.admin import (  # type: ignore[attr-defined]  # not re-exported in stubs
    AdminClient,
    NewTopic,
)
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas import UnknownSchemaError, default_catalog
from streams.config import load_config

__all__ = ["TopicCatalog", "TopicSpec", "ensure_topics", "load_topic_catalog"]

CONFIG_ROOT = Path(__file__).resolve().parent.parent / "configs"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Defaults(_Strict):
    partitions: int = Field(6, ge=1)
    replication_factor: int = Field(1, ge=1)
    retention_ms: int = Field(604_800_000, ge=-1)


class _DeadLetter(_Strict):
    suffix: str = Field(".dlq", min_length=1)
    partitions: int = Field(1, ge=1)
    retention_ms: int = Field(2_592_000_000, ge=-1)


class TopicSpec(_Strict):
    """One topic as it must exist on the broker."""

    name: str = Field(pattern=r"^(commands|events)\.[a-z0-9_.-]+$")
    partitions: int | None = Field(None, ge=1)
    replication_factor: int | None = Field(None, ge=1)
    retention_ms: int | None = Field(None, ge=-1)
    cleanup_policy: Literal["delete", "compact"] = "delete"
    # Control-plane facts (API keys) the services that need them read whole; they are no
    # run's events, so projectors and live readers leave them out.
    control: bool = False
    carries: list[str] = Field(default_factory=list)

    @field_validator("carries")
    @classmethod
    def _known_message_types(cls, carries: list[str]) -> list[str]:
        for message_type in carries:
            try:
                default_catalog().latest(message_type)
            except UnknownSchemaError as exc:
                raise ValueError(f"{exc} (no schemas/*/{message_type}/v*.avsc)") from None
        return carries


class TopicCatalog(_Strict):
    """Topic names may carry a prefix (per environment, or per test) applied at load time."""

    defaults: _Defaults = _Defaults()
    dead_letter: _DeadLetter = _DeadLetter()
    topics: list[TopicSpec]

    @model_validator(mode="after")
    def _each_type_on_one_topic(self) -> TopicCatalog:
        seen: dict[str, str] = {}
        for topic in self.topics:
            for message_type in topic.carries:
                if message_type in seen:
                    raise ValueError(
                        f"{message_type} is on both {seen[message_type]} and {topic.name}"
                    )
                seen[message_type] = topic.name
        return self

    def topic_for(self, message_type: str) -> str:
        for topic in self.topics:
            if message_type in topic.carries:
                return topic.name
        raise LookupError(f"no topic carries {message_type}")

    def event_topics(self) -> list[str]:
        """Topics that carry run events (not commands, not control): what projectors and live
        readers read."""
        schemas = default_catalog()
        return [
            topic.name
            for topic in self.topics
            if topic.carries
            and not topic.control
            and all(schemas.latest(t).kind == "event" for t in topic.carries)
        ]

    def dead_letter_of(self, topic: str) -> str:
        return topic + self.dead_letter.suffix

    def with_prefix(self, prefix: str) -> TopicCatalog:
        renamed = [t.model_copy(update={"name": prefix + t.name}) for t in self.topics]
        return self.model_copy(update={"topics": renamed})

    def new_topics(self) -> list[NewTopic]:
        """Every topic and its dead-letter topic, with their settings."""
        result = []
        for topic in self.topics:
            result.append(
                NewTopic(
                    topic.name,
                    num_partitions=topic.partitions or self.defaults.partitions,
                    replication_factor=topic.replication_factor or self.defaults.replication_factor,
                    config={
                        "retention.ms": str(topic.retention_ms or self.defaults.retention_ms),
                        "cleanup.policy": topic.cleanup_policy,
                    },
                )
            )
            result.append(
                NewTopic(
                    self.dead_letter_of(topic.name),
                    num_partitions=self.dead_letter.partitions,
                    replication_factor=topic.replication_factor or self.defaults.replication_factor,
                    config={"retention.ms": str(self.dead_letter.retention_ms)},
                )
            )
        return result


def load_topic_catalog(path: Path = CONFIG_ROOT / "topics.yaml", prefix: str = "") -> TopicCatalog:
    catalog = load_config(path, TopicCatalog)
    return catalog.with_prefix(prefix) if prefix else catalog


def ensure_topics(admin: AdminClient, catalog: TopicCatalog, timeout_s: float = 30.0) -> list[str]:
    """Create what is missing; existing topics are left as they are. Returns the created names."""
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [t for t in catalog.new_topics() if t.topic not in existing]
    if not missing:
        return []
    created = []
    for name, future in admin.create_topics(missing, operation_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
            created.append(name)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return created
