"""Which offset is safe to commit while messages finish out of order."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["OffsetTracker", "PartitionKey"]

PartitionKey = tuple[str, int]


@dataclass
class _Partition:
    in_flight: set[int] = field(default_factory=set)
    next_offset: int | None = None
    committed: int | None = None

    def safe_offset(self) -> int | None:
        """The lowest unfinished offset, or one past the last started: a commit here never
        skips work that has not finished, so a crash redoes at most the in-flight tail."""
        if self.in_flight:
            return min(self.in_flight)
        return self.next_offset


class OffsetTracker:
    """Per-partition record of started and finished offsets; pure, so it is unit-tested alone."""

    def __init__(self) -> None:
        self._partitions: dict[PartitionKey, _Partition] = {}

    def start(self, key: PartitionKey, offset: int) -> None:
        partition = self._partitions.setdefault(key, _Partition())
        partition.in_flight.add(offset)
        if partition.next_offset is None or offset >= partition.next_offset:
            partition.next_offset = offset + 1

    def passed(self, key: PartitionKey, offset: int) -> None:
        """A message read and left alone (not for this reader): done as soon as it is seen."""
        self.start(key, offset)
        self.finish(key, offset)

    def finish(self, key: PartitionKey, offset: int) -> None:
        partition = self._partitions.get(key)
        if partition is not None:
            partition.in_flight.discard(offset)

    def in_flight(self, key: PartitionKey) -> int:
        partition = self._partitions.get(key)
        return len(partition.in_flight) if partition else 0

    def total_in_flight(self) -> int:
        return sum(len(p.in_flight) for p in self._partitions.values())

    def to_commit(self, keys: list[PartitionKey] | None = None) -> dict[PartitionKey, int]:
        """Offsets that advanced since the last ``committed()`` call, per partition."""
        result = {}
        for key, partition in self._partitions.items():
            if keys is not None and key not in keys:
                continue
            safe = partition.safe_offset()
            if safe is not None and safe != partition.committed:
                result[key] = safe
        return result

    def committed(self, offsets: dict[PartitionKey, int]) -> None:
        for key, offset in offsets.items():
            if key in self._partitions:
                self._partitions[key].committed = offset

    def forget(self, keys: list[PartitionKey]) -> None:
        """After a revoke: never commit for these partitions again (their new owner does)."""
        for key in keys:
            self._partitions.pop(key, None)
