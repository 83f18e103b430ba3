"""The foundation processor as deployed: ``python -m streams run processors.foundation...``,
the repo's default configs (simulated providers), the real broker and real Redis."""

from __future__ import annotations

import uuid
from pathlib import Path

from schemas import default_catalog
from streams.producer import EnvelopeProducer
from streams.serde import AvroSerde, SingleObjectFraming
from streams.topics import TopicCatalog
from tests.factories import chat_command
from tests.integration.kafka_reading import TopicReader
from tests.integration.processes import start_processor

CATALOG = default_catalog()
SERDE = AvroSerde(CATALOG, SingleObjectFraming(CATALOG))
TERMINAL = {"llm.request.completed", "llm.request.failed"}


def test_every_command_ends_in_exactly_one_terminal_event(
    bootstrap: str, topics: TopicCatalog, redis_url: str, tmp_path: Path
) -> None:
    first = [chat_command(f"run-{i}", content=f"question {i}") for i in range(50)]
    first += [chat_command("bad", tools_json="{broken")]
    first += [chat_command("pii", content="mail me at jane.doe@example.com")]
    repeats = [chat_command(f"again-{i}", content=f"question {i % 50}") for i in range(250)]
    commands = first + repeats
    process = start_processor(
        "processors.foundation.processor:PROCESSOR",
        bootstrap,
        topics,
        f"foundation-{uuid.uuid4().hex}",
        tmp_path / "foundation.log",
        env={"REDIS_URL": redis_url},
    )
    try:
        producer = EnvelopeProducer(bootstrap, SERDE, topics)
        events = TopicReader(bootstrap, topics.topic_for("llm.request.completed"), SERDE)
        for batch, expected in ((first, len(first)), (repeats, len(commands))):
            producer.send(batch)  # repeats go after the answers exist, so they hit the cache
            producer.flush()
            events.poll_until(
                lambda r, n=expected: sum(e.message_type in TERMINAL for e in r.envelopes) >= n,
                120,
                "a terminal event per command",
            )
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0, (tmp_path / "foundation.log").read_text()[-3000:]
    terminal = {}
    for event in events.envelopes:
        if event.message_type in TERMINAL:
            assert event.correlation_id not in terminal, (
                f"two terminal events for {event.correlation_id}"
            )
            terminal[event.correlation_id] = event
    assert set(terminal) == {c.correlation_id for c in commands}
    assert terminal["bad"].payload["error_code"] == "INVALID_REQUEST"
    completed = [e.payload for e in terminal.values() if e.message_type == "llm.request.completed"]
    assert len(completed) == len(commands) - 1
    assert sum(p["cache_hit"] for p in completed) == 250
    assert "jane.doe@example.com" not in str([e.payload for e in events.envelopes])
    causes = {e.causation_id for e in events.envelopes}
    assert causes == {c.message_id for c in commands}
