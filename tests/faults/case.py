"""One fault case, the same way every time: start the processor and the projector, run steady
load, let the fault strike, wait for every acknowledged command's terminal event, stop the
processor, read the events topic to its end, wait for the projector to catch up, and count. The
invariants every case must keep are asserted here; a case adds what is specific to its fault
(which outcomes are allowed)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka.admin import AdminClient

from streams.envelope import Envelope
from streams.errors import RETRYABLE
from streams.local_jvm import free_ports
from streams.topics import TopicCatalog, ensure_topics, load_topic_catalog
from tests.factories import chat_command
from tests.faults.load import LoadShape, SteadyLoad
from tests.faults.projection import ProjectionEndpoint
from tests.faults.services import RedisServer, Supervised, foundation_processor, projector
from tests.faults.tally import REPORT, EventLog, Restarts, Tally, count

RATE = 100.0  # commands/s: steady and modest, so the 2-core machine is not the bottleneck
DURATION_S = 15.0
SERVED = frozenset({"completed", "completed via fallback"})
# A transient failure tells the client to retry: acceptable under a fault, never a silent loss.
RETRY_LATER = frozenset(f"failed {code.value} (retryable)" for code in RETRYABLE)
_TERMINAL_TIMEOUT_S = 150.0
_PROJECTION_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Rig:
    """Where a case runs: a broker or cluster, a fresh topic namespace on it, a Redis of its
    own, a scratch dir and the processor's extra environment."""

    bootstrap: str
    topics: TopicCatalog
    redis: RedisServer
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Strike:
    """What a fault can reach while the load runs."""

    load: SteadyLoad
    processor: Supervised
    projector: Supervised
    shape: LoadShape

    def at_fraction(self, fraction: float) -> None:
        """Block until that share of the load is acknowledged: "mid-load", by count."""
        self.load.wait_accepted(int(self.shape.total * fraction))


def fresh_topics(bootstrap: str, replication_factor: int = 1) -> TopicCatalog:
    """The repo's catalog under a new prefix, created with ``replication_factor``."""
    catalog = load_topic_catalog(prefix=f"f{uuid.uuid4().hex[:10]}.")
    defaults = catalog.defaults.model_copy(update={"replication_factor": replication_factor})
    catalog = catalog.model_copy(update={"defaults": defaults})
    ensure_topics(AdminClient({"bootstrap.servers": bootstrap}), catalog)
    return catalog


def chat_load(stream: bool = False, words: int = 0) -> Callable[[int], Envelope]:
    """Distinct prompts (no cache hits), one run each, as the API would send them; ``words``
    more words make the echoed answers long enough to stream text before they end."""
    run = uuid.uuid4().hex[:8]
    filler = " ".join(f"word{n}" for n in range(words))
    return lambda i: chat_command(
        f"{run}-{i}", stream=stream, content=f"hello {run}-{i} {filler}".rstrip()
    )


def run_case(
    case: str,
    rig: Rig,
    fault: Callable[[Strike], None],
    *,
    allowed: Collection[str] = SERVED | RETRY_LATER,
    shape: LoadShape | None = None,
) -> Tally:
    """Run ``fault`` under load and assert: every acknowledged command has exactly one
    distinct terminal event id, duplicates are exact, nothing is lost, every outcome is in
    ``allowed`` (by default: served, or a failure the client may retry), the projection shows
    every run ended as on the topic with every event once and no duplicate visible to a query,
    and the processor and the projector end cleanly. The row goes to the session's table."""
    shape = shape or LoadShape(RATE, DURATION_S, chat_load())
    started = time.monotonic()
    env = {"REDIS_URL": rig.redis.url, **rig.env}
    group = f"faults-{uuid.uuid4().hex[:8]}"
    projector_group = f"{group}-projector"
    (port,) = free_ports(1)
    events = EventLog(rig.bootstrap, rig.topics)
    endpoint = ProjectionEndpoint(port)
    try:
        with (
            foundation_processor(
                rig.bootstrap, rig.topics, group, rig.workdir / "processor.log", env
            ) as processor,
            projector(
                rig.bootstrap,
                rig.topics,
                rig.workdir / "chdb",
                port,
                projector_group,
                rig.workdir / "projector.log",
            ) as projections,
        ):
            load = SteadyLoad(rig.bootstrap, rig.topics, shape)
            _warm_up(load, events, endpoint, shape)
            fault(Strike(load.start(), processor, projections, shape))
            deliveries = load.finish()
            events.wait_for_terminals(deliveries.accepted, _TERMINAL_TIMEOUT_S)
            exit_code = processor.stop()
            events.read_to_end()
            endpoint.wait_caught_up(
                rig.bootstrap, rig.topics, projector_group, _PROJECTION_TIMEOUT_S
            )
            projection = endpoint.read()
            projector_exit_code = projections.stop()
        restarts = Restarts(len(processor.exits), len(projections.exits))
        tally = count(
            case, deliveries, events.envelopes, projection, restarts, time.monotonic() - started
        )
    finally:
        endpoint.close()
        events.close()
    REPORT.append(tally)
    print(" | ".join(tally.cells()))
    context = (
        f"{tally}\nexits: {processor.exits}, projector: {projections.exits}\n"
        f"processor log:\n{processor.log_tail()}\nprojector log:\n{projections.log_tail()}"
    )
    assert exit_code == 0, context
    assert projector_exit_code == 0, context
    assert tally.accepted > 0, context
    assert tally.refused == 0, context  # the producer retries through every fault here
    assert tally.lost == 0, context
    assert set(tally.outcomes) <= set(allowed), context
    assert tally.split == 0, context
    assert tally.inexact == 0, context
    assert tally.in_projection == tally.accepted - tally.lost, context
    assert tally.unprojected == 0, context
    assert tally.visible_duplicates == 0, context
    assert tally.strays == 0, context
    return tally


def _warm_up(
    load: SteadyLoad, events: EventLog, endpoint: ProjectionEndpoint, shape: LoadShape
) -> None:
    """One command answered and projected before the load starts: both groups have joined and
    the pipeline is built, so the first second of load does not queue behind start-up."""
    warm_up = shape.make(-1)
    load.prime(warm_up)
    assert events.wait_for_terminals([warm_up.message_id], _TERMINAL_TIMEOUT_S), "no warm-up"
    endpoint.wait_for_run(warm_up.correlation_id, _PROJECTION_TIMEOUT_S)
