"""SLO burn-rate alerting replayed in event time, on the real broker and engine: eight hours of
traffic with a blip and a burst go through Kafka into the projections; the alerter, stepped
minute by minute over them and restarted mid-incident, pages within two minutes of the burst,
never for the blip, resolves after recovery, and fires each alert once."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from processors.observability.alerting.alert_states import RESOLVED, TRIGGERED
from processors.observability.alerting.alerter import Alerter
from processors.observability.config import Alerting
from projections.query_server import QueryServer
from streams.envelope import Envelope, WriterIdentity
from streams.producer import EnvelopeProducer
from streams.projections_client import ProjectionsClient
from streams.topics import TopicCatalog
from tests.factories import completed_payload
from tests.integration.test_projections_support import (
    ProjectionDb,
    projection_db,
    running_projector,
    scalar,
    serde,
    wait_until,
)

pytestmark = pytest.mark.anyio

START = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=8)
PER_MINUTE = 10
BLIP = 390  # minute with 2 failed runs of 10
BURST = range(420, 425)  # every run fails
MINUTES = 470
WRITER = WriterIdentity("tests", 1, "dev")
ALERTER = WriterIdentity("alerter", 4, "dev")
CONFIG = Alerting.model_validate(
    {"slos": [{"name": "availability", "indicator": "availability", "objective": 0.999}]}
)


def _run_end(minute: int, index: int, failed: bool) -> Envelope:
    payload: dict[str, Any] = (
        {
            "provider": "p",
            "model": "m",
            "latency_ms": 120,
            "error_code": "PROVIDER_ERROR",
            "message": "upstream 500",
            "retryable": True,
            "attempts": 1,
        }
        if failed
        else completed_payload(latency_ms=120)
    )
    return Envelope(
        message_type="llm.request.failed" if failed else "llm.request.completed",
        message_id=str(uuid.uuid4()),
        timestamp=START + timedelta(minutes=minute, seconds=index * 5),
        correlation_id=f"req_{minute}_{index}",
        tenant_id="acme",
        payload=payload,
        service_name=WRITER.service_name,
        layer=WRITER.layer,
        env=WRITER.env,
    )


def traffic() -> list[Envelope]:
    return [
        _run_end(minute, i, failed=minute in BURST or (minute == BLIP and i < 2))
        for minute in range(MINUTES)
        for i in range(PER_MINUTE)
    ]


@pytest.fixture
def projected(bootstrap: str, topics: TopicCatalog, tmp_path: Path) -> Iterator[ProjectionDb]:
    """The traffic projected by a live projector, which keeps projecting (alerts too)."""
    events = traffic()
    producer = EnvelopeProducer(bootstrap, serde(), topics)
    producer.send(events)
    producer.flush()
    with projection_db(tmp_path) as db, running_projector(db, bootstrap, topics):
        wait_until(lambda: db.count() == len(events), 120, "the traffic projected")
        yield db


@pytest.fixture
def clickhouse_url(projected: ProjectionDb) -> Iterator[str]:
    """ClickHouse over HTTP, as the alerter reads it: the server, or the query endpoint."""
    server_url = os.environ.get("CLICKHOUSE_URL")
    if server_url:
        yield server_url
        return
    server = QueryServer(projected.reader, projected.database, 0).start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.close()


def _at(minute: int) -> datetime:
    """The end of a minute of traffic: every run of that minute is in."""
    return START + timedelta(minutes=minute, seconds=59)


async def test_a_burst_pages_within_two_minutes_a_blip_does_not_and_recovery_resolves(
    projected: ProjectionDb, clickhouse_url: str, bootstrap: str, topics: TopicCatalog
) -> None:
    client = ProjectionsClient(clickhouse_url, projected.database)
    producer = EnvelopeProducer(bootstrap, serde(), topics)
    alerter = Alerter(CONFIG, client, producer, ALERTER)
    await alerter.restore()
    assert alerter.firing == {}
    emitted: list[tuple[int, Envelope]] = []
    for minute in range(BLIP - 10, MINUTES):
        if minute == BURST.start + 2:  # restarted mid-incident, from what the log says
            before = alerter.firing
            _wait_for_projected(projected, TRIGGERED, len(emitted))
            alerter = Alerter(CONFIG, client, producer, ALERTER)
            await alerter.restore()
            assert alerter.firing.keys() == before.keys()
        emitted += [(minute, event) for event in await alerter.evaluate(_at(minute))]
    await client.aclose()

    seen = [(m, e.message_type, e.payload["severity"]) for m, e in emitted]
    assert seen == [
        (BURST.start, TRIGGERED, "page"),
        (BURST.start, TRIGGERED, "ticket"),
        # The 6h/30m pair keeps paging until the burst leaves the 30-minute window.
        (BURST.stop - 1 + 30, RESOLVED, "page"),
    ]
    paged = emitted[0][1]
    assert paged.payload["fired_at"] - (START + timedelta(minutes=BURST.start)) <= timedelta(
        minutes=2
    )
    assert paged.payload["labels"] == {"tenant": "acme"}
    assert paged.payload["value"] >= 14.4
    assert emitted[2][1].correlation_id == paged.correlation_id  # one alert, fired then resolved

    _wait_for_projected(projected, RESOLVED, 1)
    alerts = "SELECT alert_id, state FROM alerts FINAL"
    assert sorted(projected.reader.query(alerts, "TabSeparated").decode().splitlines()) == sorted(
        [f"{paged.payload['alert_id']}\tresolved", f"{emitted[1][1].payload['alert_id']}\tfiring"]
    )


def _wait_for_projected(db: ProjectionDb, event_type: str, count: int) -> None:
    sql = f"SELECT count() FROM events WHERE event_type = '{event_type}'"  # noqa: S608
    wait_until(lambda: scalar(db.reader, sql) == count, 60, f"{count} {event_type} projected")
