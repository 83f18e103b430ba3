"""Counting a case from the topics: what the broker acknowledged against what came out on the
events topic, read back in full after the processor stopped."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka.admin import AdminClient

from streams.envelope import Envelope
from streams.topics import TopicCatalog
from tests.faults.load import SERDE, Deliveries
from tests.integration.kafka_reading import TopicReader, end_offsets

TERMINAL = frozenset({"llm.request.completed", "llm.request.failed"})
REPORT: list[Tally] = []  # every case's row, printed as one table at the end of the session


class EventLog:
    """The events topic from the beginning, decoded."""

    def __init__(self, bootstrap: str, topics: TopicCatalog) -> None:
        self._bootstrap = bootstrap
        topic = topics.topic_for("llm.request.completed")
        partitions_of(bootstrap, topic)
        self._reader = TopicReader(bootstrap, topic, SERDE)
        self._scanned = 0
        self._ended: set[str] = set()  # commands (by message id) with a terminal event so far

    @property
    def envelopes(self) -> list[Envelope]:
        return self._reader.envelopes

    def wait_for_terminals(self, commands: Iterable[str], timeout_s: float) -> bool:
        """Read until every command has a terminal event; False if ``timeout_s`` passed first
        (the tally then shows the losses)."""
        waiting = set(commands)

        def all_ended(reader: TopicReader) -> bool:
            for event in reader.envelopes[self._scanned :]:
                if event.message_type in TERMINAL and event.causation_id is not None:
                    self._ended.add(event.causation_id)
            self._scanned = len(reader.envelopes)
            return waiting <= self._ended

        try:
            self._reader.poll_until(all_ended, timeout_s, "a terminal event per command")
        except AssertionError:
            return False
        return True

    def read_to_end(self, timeout_s: float = 60.0) -> None:
        """Everything written so far (call once no writer is left): late duplicates included."""
        end = sum(end_offsets(self._bootstrap, self._reader.topic).values())
        self._reader.poll_until(lambda r: len(r.messages) >= end, timeout_s, f"{end} events")

    def close(self) -> None:
        self._reader.close()


def partitions_of(bootstrap: str, topic: str, timeout_s: float = 30.0) -> dict[int, Any]:
    """A topic's partition metadata, once the broker has it: a topic just created may not be
    in the metadata yet, and a reader assigned then would get no partitions and wait forever."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout_s
    while not (partitions := admin.list_topics(topic, timeout=timeout_s).topics[topic].partitions):
        assert time.monotonic() < deadline, f"{topic} has no partitions after {timeout_s}s"
        time.sleep(0.1)  # poll interval, bounded by the deadline
    return dict(partitions)


@dataclass(frozen=True)
class Tally:
    """One case's counts. ``duplicates`` are events seen again under an id already seen with
    the same type, cause and payload (harmless: consumers drop them by id); ``inexact`` are
    ids seen again with different content, and ``split`` commands with more than one distinct
    terminal event id: both must be zero."""

    case: str
    accepted: int
    refused: int
    terminal: int
    duplicates: int
    inexact: int
    split: int
    lost: int
    p95_ms: float | None
    outcomes: Mapping[str, int]
    restarts: int
    seconds: float
    in_projection: int | None = None  # runs visible in the projection; see count()

    HEADER = (
        "case",
        "accepted",
        "refused",
        "terminal",
        "duplicates",
        "inexact",
        "lost",
        "p95 e2e ms",
        "restarts",
        "outcomes",
        "in projection",
        "time s",
    )

    def cells(self) -> tuple[str, ...]:
        outcomes = ", ".join(f"{label} {n}" for label, n in sorted(self.outcomes.items()))
        return (
            self.case,
            str(self.accepted),
            str(self.refused),
            str(self.terminal),
            str(self.duplicates),
            str(self.inexact + self.split),
            str(self.lost),
            "-" if self.p95_ms is None else f"{self.p95_ms:.0f}",
            str(self.restarts),
            outcomes,
            "n/a" if self.in_projection is None else str(self.in_projection),
            f"{self.seconds:.0f}",
        )


def count(
    case: str, deliveries: Deliveries, events: list[Envelope], restarts: int, seconds: float
) -> Tally:
    accepted = deliveries.accepted
    first: dict[str, Envelope] = {}
    duplicates = inexact = 0
    terminal_ids: dict[str, set[str]] = {}
    terminals: dict[str, Envelope] = {}  # the first terminal event of each command
    for event in events:
        seen = first.setdefault(event.message_id, event)
        if seen is not event:
            same = (seen.message_type, seen.causation_id, seen.payload) == (
                event.message_type,
                event.causation_id,
                event.payload,
            )
            duplicates += same
            inexact += not same
        if event.message_type in TERMINAL and event.causation_id in accepted:
            terminal_ids.setdefault(event.causation_id, set()).add(event.message_id)
            terminals.setdefault(event.causation_id, event)
    latencies = sorted(
        (terminal.timestamp - accepted[command].timestamp).total_seconds() * 1000
        for command, terminal in terminals.items()
    )
    return Tally(
        case=case,
        accepted=len(accepted),
        refused=len(deliveries.refused),
        terminal=sum(len(ids) for ids in terminal_ids.values()),
        duplicates=duplicates,
        inexact=inexact,
        split=sum(len(ids) > 1 for ids in terminal_ids.values()),
        lost=len(accepted.keys() - terminal_ids.keys()),
        p95_ms=latencies[int(0.95 * (len(latencies) - 1))] if latencies else None,
        outcomes=Counter(_outcome(event) for event in terminals.values()),
        restarts=restarts,
        seconds=seconds,
        # HOOK(projections): once the run projection exists (issue 5), count the accepted
        # commands whose run it shows as finished, exactly once, and put it here.
        in_projection=None,
    )


def _outcome(terminal: Envelope) -> str:
    payload = terminal.payload
    if terminal.message_type == "llm.request.completed":
        return "completed via fallback" if payload.get("fallback_used") else "completed"
    retryable = " (retryable)" if payload.get("retryable") else ""
    return f"failed {payload.get('error_code')}{retryable}"


def table(rows: Iterable[Tally]) -> str:
    """A Markdown table, as pasted into docs/RELIABILITY.md."""
    lines = [Tally.HEADER, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(Tally.HEADER))]
    rendered = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |"
        for line in lines
    ]
    rendered.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(rendered)
