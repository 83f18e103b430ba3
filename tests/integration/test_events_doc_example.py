"""A user with only docs/EVENTS.md, confluent-kafka and fastavro can produce a valid command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from schemas import default_catalog
from streams.docgen import EVENTS_DOC
from streams.serde import AvroSerde, SingleObjectFraming
from streams.topics import TopicCatalog
from tests.integration.kafka_reading import TopicReader


def test_the_page_alone_is_enough_to_produce_a_command(
    bootstrap: str, topics: TopicCatalog, tmp_path: Path
) -> None:
    page = EVENTS_DOC.read_text(encoding="utf-8")
    example = re.search(r"```python\n(.*?)```", page, re.S)
    section = page[page.index("### `llm.chat.requested`") :]
    schema_json = re.search(r"```json\n(.*?)```", section, re.S)
    assert example is not None and schema_json is not None
    (tmp_path / "llm.chat.requested.avsc").write_text(schema_json.group(1))
    (tmp_path / "produce.py").write_text(example.group(1))
    command_topic = topics.topic_for("llm.chat.requested")
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "COMMAND_TOPIC": command_topic}
    run = subprocess.run(
        [sys.executable, "produce.py"], cwd=tmp_path, env=env, capture_output=True, check=True
    )
    correlation_id = run.stdout.decode().strip()

    catalog = default_catalog()
    reader = TopicReader(bootstrap, command_topic, AvroSerde(catalog, SingleObjectFraming(catalog)))
    [command] = reader.poll_until(lambda r: len(r.envelopes) >= 1, 30, "the command").envelopes
    assert command.correlation_id == correlation_id
    assert command.message_type == "llm.chat.requested"
    assert command.payload["messages"][0]["content"] == "Hello"
