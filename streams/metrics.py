"""Prometheus metrics of the runtime, labelled by processor (consumer group) and topic."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "CONSUMER_LAG",
    "DEAD_LETTERED",
    "HANDLER_ERRORS",
    "HANDLER_SECONDS",
    "MESSAGES_IN",
    "MESSAGES_OUT",
]

MESSAGES_IN = Counter(
    "platform_messages_consumed_total", "Messages consumed", ["processor", "topic"]
)
MESSAGES_OUT = Counter(
    "platform_messages_produced_total", "Messages produced by a processor", ["processor", "topic"]
)
HANDLER_SECONDS = Histogram(
    "platform_handler_seconds",
    "Time spent in a processor's handler per message",
    ["processor"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
HANDLER_ERRORS = Counter(
    "platform_handler_errors_total", "Handler exceptions (each retry counts)", ["processor"]
)
DEAD_LETTERED = Counter(
    "platform_dead_lettered_total", "Messages sent to a dead-letter topic", ["processor", "topic"]
)
CONSUMER_LAG = Gauge(
    "platform_consumer_lag", "High watermark minus position", ["processor", "topic", "partition"]
)
