"""Commands to Kafka with a per-request answer to "did the broker acknowledge it?".

Each command is produced with a delivery report of its own, on the event loop (``produce`` only
queues it); one thread serves the shared producer's reports, and each report resolves its
request's future on the loop. No thread hop per request and no flush: a request waits exactly
for its own acknowledgement. A request is told "published" only after the broker acknowledged
(``acks=all``) its command.

``message.timeout.ms`` is the publish timeout, so librdkafka gives up on a command (and reports
it failed) by the time the request is answered 503: a command the client was told failed is not
delivered later by a background retry (one that reached the broker but whose acknowledgement
was lost may exist; retrying with the same ``Idempotency-Key`` re-sends the same command id,
which is deduplicated downstream)."""

from __future__ import annotations

import asyncio
import logging
import threading

from confluent_kafka import KafkaError, Message

from streams.envelope import Envelope
from streams.producer import EnvelopeProducer
from streams.serde import AvroSerde
from streams.topics import TopicCatalog

__all__ = ["CommandPublisher", "PublishFailed"]

log = logging.getLogger("api")
_REPORT_MARGIN_S = 1.0  # librdkafka reports a timed-out command by then; past it, a bug
_POLL_S = 0.1
_UNACKNOWLEDGED = "the broker did not acknowledge the command in time"


class PublishFailed(RuntimeError):
    """The broker did not acknowledge the command within the publish timeout."""


class CommandPublisher:
    def __init__(
        self, bootstrap_servers: str, serde: AvroSerde, topics: TopicCatalog, timeout_s: float
    ) -> None:
        self._producer = EnvelopeProducer(
            bootstrap_servers,
            serde,
            topics,
            {"message.timeout.ms": int(timeout_s * 1000), "linger.ms": 1},
        )
        self._timeout_s = timeout_s
        self._stopping = threading.Event()
        self._reporter: threading.Thread | None = None

    def start(self) -> None:
        self._reporter = threading.Thread(
            target=self._serve_reports, name="command-publisher", daemon=True
        )
        self._reporter.start()

    async def publish(self, command: Envelope) -> None:
        """Return once the broker acknowledged ``command``; raise ``PublishFailed`` if not. An
        ``EncodeError`` (a translation bug) is raised before anything is sent."""
        if self._reporter is None or not self._reporter.is_alive():
            raise PublishFailed("publisher is not running")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def reported(error: KafkaError | None, _: Message) -> None:
            loop.call_soon_threadsafe(_settle, done, error)

        async def sent_and_acknowledged() -> None:
            await self._producer.send_async([command], on_delivery=reported)  # a full queue
            await done  # is waited out off the loop, within the same timeout

        try:
            await asyncio.wait_for(sent_and_acknowledged(), self._timeout_s + _REPORT_MARGIN_S)
        except TimeoutError:
            raise PublishFailed(_UNACKNOWLEDGED) from None

    async def aclose(self) -> None:
        """Stop serving reports, then flush: every command still queued is acknowledged or
        reported failed (its request answered) within the publish timeout."""
        self._stopping.set()
        if self._reporter is not None:
            await asyncio.to_thread(self._reporter.join)
        await asyncio.to_thread(self._producer.kafka.flush, self._timeout_s)

    def _serve_reports(self) -> None:
        """The one thread that runs delivery reports; ``poll`` returns as soon as one came."""
        while not self._stopping.is_set():
            self._producer.poll(_POLL_S)


def _settle(done: asyncio.Future[None], error: KafkaError | None) -> None:
    """On the event loop; a request that went away (cancelled) has nothing to settle."""
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        log.warning("broker did not acknowledge a command: %s", error.str())
        done.set_exception(PublishFailed(f"{_UNACKNOWLEDGED}: {error.str()}"))
