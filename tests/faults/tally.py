"""Counting a case from the topics and the projection: what the broker acknowledged against
what came out on the events topic (read back in full after the processor stopped), and against
what queries on the projector's tables return once it has caught up."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka.admin import AdminClient

from api.errors import ApiError
from api.sse import StreamAssembler
from schemas.chat_run import COMPLETED, DELTA, FAILED, RESUMED, TERMINAL
from streams.envelope import Envelope
from streams.topics import TopicCatalog
from tests.faults.load import SERDE, Deliveries
from tests.faults.projection import Projection
from tests.integration.kafka_reading import TopicReader, end_offsets

REPORT: list[Tally] = []  # every case's row, printed as one table at the end of the session


class EventLog:
    """The events topic from the beginning, decoded."""

    def __init__(self, bootstrap: str, topics: TopicCatalog) -> None:
        self._bootstrap = bootstrap
        topic = topics.topic_for("llm.request.completed")
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
    """A topic's partition metadata (replicas, leaders), once the broker asked has it."""
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
    terminal event id: both must be zero.

    From the projection: ``in_projection`` accepted commands whose run ``runs_latest`` shows
    ended as its terminal event says (status and error code); ``unprojected`` events on the
    topic that ``events`` lacks, plus terminal events ``metrics_minute`` does not count;
    ``visible_duplicates`` rows a query sees more than once (an ``event_id`` in ``events``, a
    run in ``runs_latest``) plus requests ``metrics_minute`` counts beyond the terminal events;
    ``strays`` events or runs in the projection that the case never caused. The last three
    must be zero, and ``in_projection`` every accepted command that is not lost.

    ``client_failures``: runs whose client would have seen an error: a failed run, or a stream
    whose deltas, assembled as the API assembles them, do not make its final answer."""

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
    client_failures: int
    restarts: int
    projector_restarts: int
    in_projection: int
    unprojected: int
    visible_duplicates: int
    strays: int
    seconds: float

    HEADER = (
        "case",
        "accepted",
        "refused",
        "terminal",
        "duplicates",
        "inexact",
        "lost",
        "p95 e2e ms",
        "restarts proc/proj",
        "outcomes",
        "client failures",
        "in projection",
        "unprojected",
        "visible dup",
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
            f"{self.restarts}/{self.projector_restarts}",
            outcomes,
            str(self.client_failures),
            str(self.in_projection),
            str(self.unprojected),
            str(self.visible_duplicates),
            f"{self.seconds:.0f}",
        )


@dataclass(frozen=True)
class Restarts:
    """Times each supervised process exited on its own (or was killed) and was started again."""

    processor: int
    projector: int


def count(
    case: str,
    deliveries: Deliveries,
    events: list[Envelope],
    projection: Projection,
    restarts: Restarts,
    seconds: float,
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
    projected = _count_projection(projection, first, terminals, accepted)
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
        client_failures=_client_failures(first.values(), accepted),
        restarts=restarts.processor,
        projector_restarts=restarts.projector,
        in_projection=projected.in_projection,
        unprojected=projected.unprojected,
        visible_duplicates=projected.visible_duplicates,
        strays=projected.strays,
        seconds=seconds,
    )


def _client_failures(events: Iterable[Envelope], accepted: Mapping[str, Envelope]) -> int:
    """``events``: each id once, in topic order (a run's events share a partition)."""
    streams: dict[str, StreamAssembler] = {}
    failed: set[str] = set()
    for event in events:
        command = event.causation_id
        if command not in accepted or command in failed:
            continue
        stream = streams.setdefault(command, StreamAssembler())
        if event.message_type == DELTA:
            stream.on_delta(event.payload)
        elif event.message_type == RESUMED:
            stream.on_resumed(event.payload)
        elif event.message_type == FAILED:
            failed.add(command)
        elif event.message_type == COMPLETED:
            try:
                stream.on_completed(event.payload)
            except ApiError:
                failed.add(command)
    return len(failed)


@dataclass(frozen=True)
class _Projected:
    in_projection: int
    unprojected: int
    visible_duplicates: int
    strays: int


def _count_projection(
    projection: Projection,
    on_topic: Mapping[str, Envelope],
    terminals: Mapping[str, Envelope],
    accepted: Mapping[str, Envelope],
) -> _Projected:
    """``on_topic``: the first copy of every event id on the topic; ``terminals``: each
    accepted command's first terminal event."""
    runs: dict[str, tuple[str, str]] = {}
    run_rows = Counter(correlation_id for correlation_id, _, _ in projection.runs)
    for correlation_id, status, error_code in projection.runs:
        runs.setdefault(correlation_id, (status, error_code))
    ended_as_on_topic = sum(
        runs.get(accepted[command].correlation_id) == _run_outcome(terminal)
        for command, terminal in terminals.items()
    )
    terminal_events = sum(event.message_type in TERMINAL for event in on_topic.values())
    caused = {event.correlation_id for event in on_topic.values()}
    return _Projected(
        in_projection=ended_as_on_topic,
        unprojected=len(on_topic.keys() - projection.event_rows.keys())
        + max(0, terminal_events - projection.requests),
        visible_duplicates=sum(n - 1 for n in projection.event_rows.values())
        + sum(n - 1 for n in run_rows.values())
        + max(0, projection.requests - terminal_events),
        strays=len(projection.event_rows.keys() - on_topic.keys()) + len(run_rows.keys() - caused),
    )


def _run_outcome(terminal: Envelope) -> tuple[str, str]:
    """How ``runs_latest`` shows a run that ended with ``terminal``: (status, error_code)."""
    if terminal.message_type == "llm.request.completed":
        return ("completed", "")
    return ("failed", str(terminal.payload.get("error_code") or ""))


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
