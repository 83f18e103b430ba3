"""API keys managed without editing YAML. ``auth.key.created`` and ``auth.key.revoked`` on the
compacted control topic are the key list: every API replica reads the topic whole at start and
then follows it, so a key created or revoked anywhere (the admin API of any replica, or the
CLI) works or stops working on every replica within a poll, with no restart. Only a key's
SHA-256 is ever written; the key itself is shown once, to whoever created it."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from api.auth import hash_key, new_key
from api.config import RateLimits
from streams.envelope import Envelope, WriterIdentity, new_message
from streams.serde import AvroSerde, DecodeError

__all__ = [
    "CREATED",
    "REVOKED",
    "KeyFollower",
    "KeyTable",
    "ManagedKey",
    "created_event",
    "revoked_event",
]

log = logging.getLogger(__name__)
CREATED = "auth.key.created"
REVOKED = "auth.key.revoked"
_POLL_S = 0.2
_RETRY_S = 1.0
_PREFIX_CHARS = 12  # "sk-plat-" and four characters of the secret


@dataclass(frozen=True)
class ManagedKey:
    key_id: str
    tenant: str
    name: str | None
    sha256: str
    prefix: str
    limits: RateLimits | None
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class KeyTable:
    """The fold of the key events (pure): the latest word on each key id wins; a revocation
    without its creation (compaction keeps only a key's last event) leaves nothing usable."""

    def __init__(self) -> None:
        self._keys: dict[str, ManagedKey] = {}
        self._active: dict[str, ManagedKey] = {}  # by hash

    def apply(self, event: Envelope) -> None:
        payload = event.payload
        if event.message_type == CREATED:
            limits = None
            if payload.get("rpm") is not None or payload.get("tpm") is not None:
                limits = RateLimits(
                    **{k: payload[k] for k in ("rpm", "tpm") if payload.get(k) is not None}
                )
            key = ManagedKey(
                key_id=payload["key_id"],
                tenant=event.tenant_id,
                name=payload.get("name"),
                sha256=payload["sha256"],
                prefix=payload["prefix"],
                limits=limits,
                created_at=event.timestamp,
                created_by=payload["created_by"],
            )
        elif event.message_type == REVOKED:
            known = self._keys.get(payload["key_id"])
            if known is None:
                return
            key = replace(known, revoked_at=event.timestamp, revoked_by=payload["revoked_by"])
        else:
            return
        previous = self._keys.get(key.key_id)
        if previous is not None:
            self._active.pop(previous.sha256, None)
        self._keys[key.key_id] = key
        if key.active:
            self._active[key.sha256] = key

    def active_by_hash(self, sha256: str) -> ManagedKey | None:
        return self._active.get(sha256)

    def get(self, key_id: str) -> ManagedKey | None:
        return self._keys.get(key_id)

    def keys(self) -> list[ManagedKey]:
        return sorted(self._keys.values(), key=lambda k: (k.created_at, k.key_id))


def created_event(
    writer: WriterIdentity,
    tenant: str,
    name: str | None,
    limits: RateLimits | None,
    created_by: str,
) -> tuple[Envelope, str]:
    """The event that creates a new key, and the key (its only appearance)."""
    secret = new_key()
    key_id = f"key_{hash_key(secret)[:16]}"
    payload = {
        "key_id": key_id,
        "name": name,
        "sha256": hash_key(secret),
        "prefix": secret[:_PREFIX_CHARS],
        "rpm": limits.rpm if limits else None,
        "tpm": limits.tpm if limits else None,
        "created_by": created_by,
    }
    event = new_message(CREATED, payload, correlation_id=key_id, tenant_id=tenant, writer=writer)
    return event, secret


def revoked_event(writer: WriterIdentity, key: ManagedKey, revoked_by: str) -> Envelope:
    payload = {"key_id": key.key_id, "revoked_by": revoked_by}
    return new_message(
        REVOKED, payload, correlation_id=key.key_id, tenant_id=key.tenant, writer=writer
    )


class KeyFollower:
    """Reads the key topic from its beginning on a thread of its own (librdkafka blocks) and
    keeps ``table`` current. ``ready`` once it has read what the topic held at start, so a
    replica never refuses a key that existed before it came up."""

    def __init__(self, bootstrap_servers: str, serde: AvroSerde, topic: str) -> None:
        self._bootstrap = bootstrap_servers
        self._serde = serde
        self._topic = topic
        self.table = KeyTable()
        self._lock = threading.Lock()
        self._caught_up = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._changed: Callable[[], None] = lambda: None
        self._changed_event = asyncio.Event()

    @property
    def ready(self) -> bool:
        return self._caught_up.is_set()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        event = self._changed_event

        def changed() -> None:
            loop.call_soon_threadsafe(event.set)

        self._changed = changed
        self._thread = threading.Thread(target=self._follow, name="key-follower", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    def lookup(self, sha256: str) -> ManagedKey | None:
        with self._lock:
            return self.table.active_by_hash(sha256)

    def listed(self) -> list[ManagedKey]:
        with self._lock:
            return self.table.keys()

    def get(self, key_id: str) -> ManagedKey | None:
        with self._lock:
            return self.table.get(key_id)

    async def until(self, seen: Callable[[KeyFollower], bool], timeout_s: float) -> bool:
        """Wait until ``seen`` holds (an event this replica wrote has come back), at most
        ``timeout_s``; False if it did not."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not seen(self):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._changed_event.clear()
            if seen(self):
                return True
            try:
                await asyncio.wait_for(self._changed_event.wait(), remaining)
            except TimeoutError:
                return seen(self)
        return True

    def read_all(self, timeout_s: float) -> KeyTable:
        """What the topic holds now, read on this thread (the CLI); raises ``TimeoutError``."""
        consumer = self._consumer()
        deadline = time.monotonic() + timeout_s
        try:
            ends = self._assign(consumer)
            while ends is None or ends:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"could not read {self._topic} within {timeout_s:.0f}s")
                ends = self._assign(consumer) if ends is None else self._pump(consumer, ends)
            return self.table
        finally:
            consumer.close()

    def _follow(self) -> None:
        consumer = self._consumer()
        try:
            ends = None
            while ends is None and not self._stopping.is_set():
                ends = self._assign(consumer)
                if ends is None:
                    self._stopping.wait(_RETRY_S)
            while not self._stopping.is_set() and ends is not None:
                ends = self._pump(consumer, ends)
                if not ends:
                    self._caught_up.set()
        finally:
            consumer.close()

    def _consumer(self) -> Consumer:
        return Consumer(
            {
                "bootstrap.servers": self._bootstrap,
                "group.id": "api-keys-unused",  # assigned, never subscribed nor committed
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )

    def _pump(self, consumer: Consumer, ends: dict[int, int]) -> dict[int, int]:
        """Apply what arrived; the partitions still short of their end at start."""
        for message in consumer.consume(num_messages=500, timeout=_POLL_S):
            self._take(message.value(), message.error())
        return _still_behind(consumer, self._topic, ends) if ends else ends

    def _assign(self, consumer: Consumer) -> dict[int, int] | None:
        """Every partition from its beginning; the offsets it must reach to be caught up."""
        try:
            metadata = consumer.list_topics(self._topic, timeout=5).topics[self._topic]
            if metadata.error is not None:
                raise RuntimeError(str(metadata.error))
            ends = {}
            for partition in metadata.partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(self._topic, partition), timeout=5
                )
                if high > low:
                    ends[partition] = high
        except Exception as error:
            log.warning(
                "keys: cannot read %s yet (broker down, or topics not created): %s",
                self._topic,
                error,
            )
            return None
        consumer.assign(
            [TopicPartition(self._topic, p, OFFSET_BEGINNING) for p in metadata.partitions]
        )
        return ends

    def _take(self, value: bytes | None, error: object) -> None:
        if error is not None or value is None:
            return
        try:
            event = self._serde.decode(value)
        except DecodeError as bad:
            log.warning("keys: skipped an undecodable event: %s", bad)
            return
        with self._lock:
            self.table.apply(event)
        self._changed()


def _still_behind(consumer: Consumer, topic: str, ends: dict[int, int]) -> dict[int, int]:
    """The partitions whose position has not reached the end they had at start."""
    positions = consumer.position([TopicPartition(topic, p) for p in ends])
    return {tp.partition: ends[tp.partition] for tp in positions if tp.offset < ends[tp.partition]}
