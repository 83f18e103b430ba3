"""What a replica remembers of the live log: per tenant, its most recent events, and resume
tokens that say exactly where in the log a client stands.

An event nobody on the replica waited for is kept as it came (``RawEvent``: its bytes and the
routing headers) and decoded only when a resume, a retry or a run view reads it, so the hub
pays for decoding only what someone uses.

A token is the vector of next offsets over every (topic, partition) the replica reads, taken
right after the event it accompanies: everything before it was either delivered or did not
match. Offsets are the log's own, so a token from one replica resumes on any other."""

from __future__ import annotations

import base64
import binascii
import json
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import takewhile
from typing import Any

__all__ = [
    "Buffered",
    "FeedEvent",
    "Mark",
    "Positions",
    "RawEvent",
    "RecentEvents",
    "decode_token",
    "encode_token",
    "merged",
]


@dataclass(frozen=True, order=True)
class Mark:
    """A place in one partition: the next offset, and the time stamped on the event before it
    (the lower bound for what follows, used where the projections hold no offsets)."""

    offset: int
    micros: int = 0


Positions = dict[tuple[str, int], Mark]


@dataclass(frozen=True)
class _Placed:
    """Where an event sits in the log, and the position right after it."""

    topic: str
    partition: int
    offset: int
    micros: int

    @property
    def where(self) -> tuple[str, int]:
        return (self.topic, self.partition)

    @property
    def next_mark(self) -> Mark:
        """The position right after this event."""
        return Mark(self.offset + 1, self.micros)


@dataclass(frozen=True)
class FeedEvent(_Placed):
    """An event (envelope JSON) at its place in the log; ``micros`` is its timestamp."""

    event: Mapping[str, Any]

    @property
    def correlation_id(self) -> str:
        return str(self.event["correlation_id"])

    @property
    def tenant_id(self) -> str:
        return str(self.event["tenant_id"])


@dataclass(frozen=True)
class RawEvent(_Placed):
    """An event not decoded yet, placed and routed by its headers; ``micros`` is the broker's
    timestamp (the envelope's is inside the bytes). ``decode`` gives the envelope JSON, or None
    for bytes that are no event (the processors dead-letter those; readers skip them)."""

    correlation_id: str
    tenant_id: str
    value: bytes
    decode: Callable[[bytes], Mapping[str, Any] | None]
    event_type: str = ""  # from the message_type header; empty when a producer set none

    def decoded(self) -> FeedEvent | None:
        event = self.decode(self.value)
        if event is None:
            return None
        return FeedEvent(self.topic, self.partition, self.offset, self.micros, event)


Buffered = FeedEvent | RawEvent


def encode_token(positions: Mapping[tuple[str, int], Mark]) -> str:
    rows = sorted([t, p, m.offset, m.micros] for (t, p), m in positions.items())
    text = json.dumps(rows, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


def decode_token(token: str) -> Positions:
    """Raise ``ValueError`` for anything that is not a token we issued."""
    try:
        rows = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        positions = {(str(t), int(p)): Mark(int(o), int(us)) for t, p, o, us in rows}
    except (binascii.Error, json.JSONDecodeError, TypeError, ValueError, UnicodeDecodeError):
        raise ValueError("not a resume token") from None
    if any(p < 0 or m.offset < 0 or m.micros < 0 for (_, p), m in positions.items()):
        raise ValueError("not a resume token")
    return positions


def merged(a: Mapping[tuple[str, int], Mark], b: Mapping[tuple[str, int], Mark]) -> Positions:
    """Per partition the later mark: a client past both is past either."""
    return {key: max(a.get(key, Mark(0)), b.get(key, Mark(0))) for key in a.keys() | b.keys()}


class RecentEvents:
    """A bounded buffer per tenant (tenants come from the key config, so their number is
    bounded too). ``complete_from`` says from which offset on each partition the buffer still
    holds every event of the tenant: what is older must come from the projections."""

    def __init__(self, per_tenant: int) -> None:
        self._per_tenant = per_tenant
        self._events: dict[str, deque[Buffered]] = {}
        self._evicted: dict[str, Positions] = {}

    def add(self, item: Buffered) -> None:
        tenant = item.tenant_id
        buffer = self._events.setdefault(tenant, deque())
        if len(buffer) == self._per_tenant:
            dropped = buffer.popleft()
            self._evicted.setdefault(tenant, {})[dropped.where] = dropped.next_mark
        buffer.append(item)

    def of_tenant(
        self, tenant: str, wanted: Callable[[Buffered], bool] = lambda _: True
    ) -> list[FeedEvent]:
        """The tenant's events that ``wanted`` keeps (judged before decoding), in log order."""
        return list(_decoded(e for e in self._events.get(tenant, ()) if wanted(e)))

    def of_run(
        self, tenant: str, correlation_id: str, before: Buffered | None = None
    ) -> list[FeedEvent]:
        """The run's events, all of them or those buffered before ``before``."""
        buffered = takewhile(lambda e: e is not before, self._events.get(tenant, ()))
        return list(_decoded(e for e in buffered if e.correlation_id == correlation_id))

    def complete_from(self, tenant: str, start: Mapping[tuple[str, int], Mark]) -> Positions:
        return merged(start, self._evicted.get(tenant, {}))


def _decoded(items: Iterable[Buffered]) -> Iterable[FeedEvent]:
    for item in items:
        decoded = item if isinstance(item, FeedEvent) else item.decoded()
        if decoded is not None:
            yield decoded
