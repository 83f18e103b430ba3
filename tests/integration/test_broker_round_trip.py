"""Every schema through the real broker, in both wire formats."""

from __future__ import annotations

import pytest

from schemas import default_catalog
from streams.envelope import Envelope
from streams.producer import EnvelopeProducer
from streams.serde import AvroSerde, ConfluentFraming, SingleObjectFraming
from streams.topics import TopicCatalog
from tests.factories import sample_envelope
from tests.integration.kafka_reading import TopicReader

CATALOG = default_catalog()


def round_trip(bootstrap: str, topics: TopicCatalog, serde: AvroSerde) -> list[Envelope]:
    sent = [
        sample_envelope(CATALOG.latest(t), correlation_id=f"run-{i}", n=i)
        for i, t in enumerate(CATALOG.message_types())
    ]
    producer = EnvelopeProducer(bootstrap, serde, topics)
    producer.send(sent)
    producer.flush()
    received: list[Envelope] = []
    for topic in sorted({topics.topic_for(t) for t in CATALOG.message_types()}):
        expected = sum(1 for e in sent if topics.topic_for(e.message_type) == topic)
        reader = TopicReader(bootstrap, topic, serde)
        reader.poll_until(lambda r, n=expected: len(r.envelopes) >= n, 30, f"{expected} on {topic}")
        received += reader.envelopes
        reader.close()
    assert sorted(received, key=lambda e: e.message_id) == sent
    return received


def test_single_object_encoding(bootstrap: str, topics: TopicCatalog) -> None:
    round_trip(bootstrap, topics, AvroSerde(CATALOG, SingleObjectFraming(CATALOG)))


def test_confluent_framing_with_a_real_registry(
    bootstrap: str, topics: TopicCatalog, schema_registry_url: str
) -> None:
    serde = AvroSerde(CATALOG, ConfluentFraming.from_url(CATALOG, schema_registry_url))
    round_trip(bootstrap, topics, serde)
    fresh_reader = AvroSerde(CATALOG, ConfluentFraming.from_url(CATALOG, schema_registry_url))
    data = serde.encode(sample_envelope(CATALOG.latest("llm.chat.requested")))
    assert data[0] == 0 and int.from_bytes(data[1:5], "big") > 0
    assert fresh_reader.decode(data).message_type == "llm.chat.requested"


@pytest.mark.parametrize("framing", ["single-object", "confluent"])
def test_a_reader_of_the_other_framing_rejects_cleanly(
    framing: str, schema_registry_url: str
) -> None:
    from streams.serde import DecodeError

    single = AvroSerde(CATALOG, SingleObjectFraming(CATALOG))
    confluent = AvroSerde(CATALOG, ConfluentFraming.from_url(CATALOG, schema_registry_url))
    writer, reader = (single, confluent) if framing == "single-object" else (confluent, single)
    data = writer.encode(sample_envelope(CATALOG.latest("llm.request.failed")))
    with pytest.raises(DecodeError):
        reader.decode(data)
