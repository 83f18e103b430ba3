"""The event backbone shared by every layer: one envelope, one serde, one producer, one runner."""

from streams.config import ConfigError, ConfigProblem, load_config
from streams.envelope import (
    Clock,
    Envelope,
    IdSource,
    WriterIdentity,
    derived_id,
    new_message,
    random_ids,
    stamp_outputs,
    system_clock,
)
from streams.processing import Handler, Processor
from streams.producer import DeliveryError, EnvelopeProducer
from streams.runner import ProcessorRunner, RunnerOptions
from streams.serde import AvroSerde, ConfluentFraming, DecodeError, EncodeError, SingleObjectFraming
from streams.settings import Settings
from streams.topics import TopicCatalog, TopicSpec, ensure_topics, load_topic_catalog
from streams.wiring import serde_for, topics_for

__all__ = [
    "AvroSerde",
    "Clock",
    "ConfigError",
    "ConfigProblem",
    "ConfluentFraming",
    "DecodeError",
    "DeliveryError",
    "EncodeError",
    "Envelope",
    "EnvelopeProducer",
    "Handler",
    "IdSource",
    "Processor",
    "ProcessorRunner",
    "RunnerOptions",
    "Settings",
    "SingleObjectFraming",
    "TopicCatalog",
    "TopicSpec",
    "WriterIdentity",
    "derived_id",
    "ensure_topics",
    "load_config",
    "load_topic_catalog",
    "new_message",
    "random_ids",
    "serde_for",
    "stamp_outputs",
    "system_clock",
    "topics_for",
]
