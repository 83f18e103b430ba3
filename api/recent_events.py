"""What a replica remembers of the live log: per tenant, its most recent events, and resume
tokens that say exactly where in the log a client stands.

A token is the vector of next offsets over every (topic, partition) the replica reads, taken
right after the event it accompanies: everything before it was either delivered or did not
match. Offsets are the log's own, so a token from one replica resumes on any other."""

from __future__ import annotations

import base64
import binascii
import json
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FeedEvent",
    "Mark",
    "Positions",
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
class FeedEvent:
    """An event (envelope JSON) at its place in the log; ``micros`` is its timestamp."""

    topic: str
    partition: int
    offset: int
    micros: int
    event: Mapping[str, Any]

    @property
    def where(self) -> tuple[str, int]:
        return (self.topic, self.partition)

    @property
    def next_mark(self) -> Mark:
        """The position right after this event."""
        return Mark(self.offset + 1, self.micros)


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
        self._events: dict[str, deque[FeedEvent]] = {}
        self._evicted: dict[str, Positions] = {}

    def add(self, item: FeedEvent) -> None:
        tenant = str(item.event["tenant_id"])
        buffer = self._events.setdefault(tenant, deque())
        if len(buffer) == self._per_tenant:
            dropped = buffer.popleft()
            self._evicted.setdefault(tenant, {})[dropped.where] = dropped.next_mark
        buffer.append(item)

    def of_tenant(self, tenant: str) -> Iterator[FeedEvent]:
        return iter(self._events.get(tenant, ()))

    def of_run(self, tenant: str, correlation_id: str) -> list[FeedEvent]:
        return [e for e in self.of_tenant(tenant) if e.event["correlation_id"] == correlation_id]

    def complete_from(self, tenant: str, start: Mapping[tuple[str, int], Mark]) -> Positions:
        return merged(start, self._evicted.get(tenant, {}))
