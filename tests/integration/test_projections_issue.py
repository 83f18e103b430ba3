"""The issue's acceptance test: after 100,000 mixed events (every event type, several tenants,
providers and models, built and encoded through the schemas) the checksum of every projection
table is identical before and after a full rebuild from the topics, and identical when every
event was delivered twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.projector_workload import mixed_events
from projections import Replay, ReplayRequest, table_digests
from streams import TopicCatalog
from tests.integration.test_projections_support import (
    START,
    assert_projected_exactly,
    encode,
    events_topic,
    produce,
    projection_db,
    running_projector,
    serde,
    wait_committed,
    wait_until,
)

EVENTS = 100_000


@pytest.mark.slow
def test_checksums_survive_a_full_rebuild_and_a_second_delivery(
    bootstrap: str, topics: TopicCatalog, tmp_path: Path
) -> None:
    events = mixed_events(EVENTS, START, seed=5, spacing_ms=20)
    missing = event_kinds(topics) - {e.message_type for e in events}
    assert not missing, f"bench/projector_workload.py does not generate {sorted(missing)}"
    encoded = encode(events)
    topic = events_topic(topics)
    produce(bootstrap, topic, encoded)
    group = "issue-5"
    with projection_db(tmp_path) as db:
        with running_projector(db, bootstrap, topics, group) as live:
            rebuild = Replay(
                db.store, serde(), bootstrap, topics.event_topics(), db.database, live=live
            )
            wait_until(lambda: db.count() >= EVENTS, 120, "100,000 events projected")
            wait_committed(bootstrap, group, topics)  # every insert returned, views included
            assert_projected_exactly(db.reader, events)
            projected = table_digests(db.reader, db.database)
            assert projected["runs"].split(":")[0] == str(len({e.correlation_id for e in events}))
            checksum = db.checksum()

            rebuild.run(ReplayRequest(), lambda line: None)
            assert table_digests(db.reader, db.database) == projected
            assert db.checksum() == checksum

            produce(bootstrap, topic, encoded)  # every event again
            wait_committed(bootstrap, group, topics)
            assert db.checksum() == checksum
            rebuild.run(ReplayRequest(), lambda line: None)  # a log holding each event twice
            assert db.checksum() == checksum


def event_kinds(topics: TopicCatalog) -> set[str]:
    return {
        kind
        for topic in topics.topics
        if topic.name == events_topic(topics)
        for kind in topic.carries
    }
