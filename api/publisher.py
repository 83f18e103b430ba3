"""Commands to Kafka with a per-request answer to "did the broker acknowledge it?".

The shared ``EnvelopeProducer`` reports delivery at ``flush()``, for everything sent so far.
Requests therefore join a group commit: one task sends the waiting commands and flushes, and
no command is sent while a flush runs, so each flush's verdict covers exactly its batch. A
request is told "published" only after the broker acknowledged (``acks=all``) its command.

``message.timeout.ms`` is the publish timeout, so librdkafka gives up on a command by the time
the request is answered 503: a command the client was told failed is not delivered later by a
background retry (one that reached the broker but whose acknowledgement was lost may exist;
retrying with the same ``Idempotency-Key`` re-sends the same command id, which is
deduplicated downstream)."""

from __future__ import annotations

import asyncio
import logging

from streams.envelope import Envelope
from streams.producer import DeliveryError, EnvelopeProducer
from streams.serde import AvroSerde, EncodeError
from streams.topics import TopicCatalog

__all__ = ["CommandPublisher", "PublishFailed"]

log = logging.getLogger("api")
_FLUSH_MARGIN_S = 1.0
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
        self._pending: list[tuple[Envelope, asyncio.Future[None]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._commit_groups(), name="command-publisher")

    async def publish(self, command: Envelope) -> None:
        """Return once the broker acknowledged ``command``; raise ``PublishFailed`` if not."""
        if self._task is None or self._task.done():
            raise PublishFailed("publisher is not running")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((command, done))
        self._wakeup.set()
        await done

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for _, done in self._pending:
            if not done.done():
                done.set_exception(PublishFailed("the API is shutting down"))
        await asyncio.to_thread(self._producer.kafka.flush, self._timeout_s)

    async def _commit_groups(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, self._pending = self._pending, []
            errors = await asyncio.to_thread(self._send_and_flush, [c for c, _ in batch])
            for (_, done), error in zip(batch, errors, strict=True):
                if done.done():  # the request was cancelled (client went away)
                    continue
                if error is None:
                    done.set_result(None)
                else:
                    done.set_exception(error)

    def _send_and_flush(self, commands: list[Envelope]) -> list[Exception | None]:
        """Runs on a worker thread; the only code that touches the producer. An
        ``EncodeError`` (a translation bug) fails its own request only."""
        errors: list[Exception | None] = []
        for command in commands:
            try:
                self._producer.send([command])
                errors.append(None)
            except EncodeError as error:
                errors.append(error)
        try:
            self._producer.flush(self._timeout_s + _FLUSH_MARGIN_S)
        except DeliveryError as error:
            log.warning("broker did not acknowledge %d commands: %s", len(commands), error)
            return [e or PublishFailed(_UNACKNOWLEDGED) for e in errors]
        return errors
