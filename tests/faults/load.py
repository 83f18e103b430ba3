"""Steady load: commands produced at a fixed rate from a background thread, as an API would
send them, each remembered once the broker acknowledged it (``acks=all``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, Message

from schemas import default_catalog
from streams.envelope import Envelope
from streams.producer import MESSAGE_TYPE_HEADER, EnvelopeProducer
from streams.serde import AvroSerde, SingleObjectFraming
from streams.topics import TopicCatalog

CATALOG = default_catalog()
SERDE = AvroSerde(CATALOG, SingleObjectFraming(CATALOG))
_TICK_S = 0.02  # the longest wait between two polls for delivery reports
_FLUSH_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class LoadShape:
    """``rate`` commands a second for ``duration_s``; ``make(i)`` builds the i-th command."""

    rate: float
    duration_s: float
    make: Callable[[int], Envelope]

    @property
    def total(self) -> int:
        return int(self.rate * self.duration_s)


@dataclass
class Deliveries:
    """What the broker said about each command: acknowledged (by message id) or refused."""

    accepted: dict[str, Envelope] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)


class SteadyLoad:
    """Produces ``shape`` on the platform's own producer (idempotent, ``acks=all``) in a thread.

    The fault runs in the test's thread meanwhile; ``wait_accepted`` lets it strike mid-load,
    at a point defined by acknowledged commands rather than by a guessed delay."""

    def __init__(self, bootstrap: str, topics: TopicCatalog, shape: LoadShape) -> None:
        self._producer = EnvelopeProducer(bootstrap, SERDE, topics).kafka
        self._topics = topics
        self._shape = shape
        self.deliveries = Deliveries()
        self._thread = threading.Thread(target=self._produce_all, name="steady-load", daemon=True)
        self._error: BaseException | None = None

    def prime(self, command: Envelope) -> None:
        """Send one command ahead of the load and wait for its acknowledgement (a warm-up)."""
        self.send(command)
        assert self._producer.flush(_FLUSH_TIMEOUT_S) == 0, "the warm-up command was not delivered"

    def start(self) -> SteadyLoad:
        self._thread.start()
        return self

    def wait_accepted(self, count: int, timeout_s: float = 60.0) -> None:
        """Block until ``count`` commands are acknowledged."""
        with self.deliveries.changed:
            if not self.deliveries.changed.wait_for(
                lambda: len(self.deliveries.accepted) >= count, timeout_s
            ):
                raise AssertionError(f"{count} commands not acknowledged within {timeout_s}s")

    def finish(self) -> Deliveries:
        """Wait for the last command to be sent and every delivery report to come back."""
        self._thread.join(self._shape.duration_s + _FLUSH_TIMEOUT_S)
        if self._error is not None:
            raise self._error
        remaining = self._producer.flush(_FLUSH_TIMEOUT_S)
        assert remaining == 0, f"{remaining} commands without a delivery report"
        return self.deliveries

    def _produce_all(self) -> None:
        try:
            started = time.monotonic()
            for index in range(self._shape.total):
                due = started + index / self._shape.rate
                while time.monotonic() < due:
                    self._producer.poll(min(_TICK_S, max(0.0, due - time.monotonic())))
                self.send(self._shape.make(index))
        except BaseException as exc:  # re-raised by finish(), in the test's thread
            self._error = exc

    def send(self, command: Envelope) -> None:
        """One command more, counted like the load's own (thread-safe)."""

        def delivered(error: KafkaError | None, message: Message) -> None:
            with self.deliveries.changed:
                if error is None:
                    self.deliveries.accepted[command.message_id] = command
                else:
                    self.deliveries.refused.append(error.str())
                self.deliveries.changed.notify_all()

        self._producer.produce(
            self._topics.topic_for(command.message_type),
            key=command.correlation_id.encode(),
            value=SERDE.encode(command),
            headers=[(MESSAGE_TYPE_HEADER, command.message_type.encode())],
            on_delivery=delivered,
        )
