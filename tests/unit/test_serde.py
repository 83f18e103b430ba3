import dataclasses
import io
from datetime import UTC, datetime, timedelta

import pytest
from fastavro import schemaless_writer
from fastavro.schema import parse_schema, to_parsing_canonical_form

from schemas import default_catalog
from streams.serde import AvroSerde, DecodeError, EncodeError, SingleObjectFraming
from tests.factories import sample_envelope

CATALOG = default_catalog()
SERDE = AvroSerde(CATALOG, SingleObjectFraming(CATALOG))


@pytest.mark.parametrize("message_type", CATALOG.message_types())
def test_every_schema_round_trips(message_type: str) -> None:
    envelope = sample_envelope(CATALOG.latest(message_type))
    assert SERDE.decode(SERDE.encode(envelope)) == envelope


@pytest.mark.parametrize("message_type", CATALOG.message_types())
def test_single_object_header_is_marker_and_spec_fingerprint(message_type: str) -> None:
    schema = CATALOG.latest(message_type)
    data = SERDE.encode(sample_envelope(schema))
    canonical = to_parsing_canonical_form(parse_schema(schema.source))
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == crc64_avro(canonical.encode()).to_bytes(8, "little")


def crc64_avro(data: bytes) -> int:
    """The Rabin fingerprint exactly as the Avro specification spells it out."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def test_wire_names_follow_the_kind() -> None:
    command = sample_envelope(CATALOG.latest("llm.chat.requested"))
    field_names = [f["name"] for f in CATALOG.latest("llm.chat.requested").source["fields"]]
    assert field_names[:2] == ["command_id", "command_type"]
    assert SERDE.decode(SERDE.encode(command)).message_id == command.message_id


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "marker"),
        (b'{"json": true}', "marker"),
        (b"\xc3\x01" + b"\x00" * 8 + b"body", "fingerprint"),
    ],
)
def test_undecodable_bytes_raise_decode_error(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        SERDE.decode(data)


def test_truncated_body_raises_decode_error() -> None:
    data = SERDE.encode(sample_envelope(CATALOG.latest("llm.request.completed")))
    with pytest.raises(DecodeError, match="undecodable body"):
        SERDE.decode(data[: len(data) // 2])


@pytest.mark.parametrize(
    "change",
    [
        {"retryable": "maybe"},  # the writer alone would coerce it to True
        {"attempts": True},  # a bool where an int goes
        {"attempts": "3"},
    ],
)
def test_payload_that_does_not_fit_raises_encode_error(change: dict[str, object]) -> None:
    envelope = sample_envelope(CATALOG.latest("llm.request.failed"))
    broken = dataclasses.replace(envelope, payload={**envelope.payload, **change})
    with pytest.raises(EncodeError, match=r"llm\.request\.failed"):
        SERDE.encode(broken)


def test_unknown_message_type_raises_encode_error() -> None:
    envelope = sample_envelope(CATALOG.latest("llm.request.failed"))
    with pytest.raises(EncodeError, match="unknown message type"):
        SERDE.encode(dataclasses.replace(envelope, message_type="llm.request.exploded"))


def rewritten(data: bytes, **fields: object) -> bytes:
    """``data`` with envelope fields overwritten by raw Avro values (an id as any text, a
    timestamp as any long), as a writer outside this repo could send them."""
    schema = CATALOG.latest("llm.request.completed")
    plain = {**schema.source, "fields": [dict(f) for f in schema.source["fields"]]}
    for field in plain["fields"]:
        if field["name"] in ("event_id", "timestamp"):
            field["type"] = field["type"]["type"]
    record = {**SERDE.decode_wire(data).record, **fields}
    body = io.BytesIO()
    schemaless_writer(body, parse_schema(plain), record)
    return data[:10] + body.getvalue()


@pytest.mark.parametrize("message_type", CATALOG.message_types())
def test_decode_wire_gives_the_id_and_time_decode_gives(message_type: str) -> None:
    data = SERDE.encode(sample_envelope(CATALOG.latest(message_type)))
    wire, envelope = SERDE.decode_wire(data), SERDE.decode(data)
    assert (wire.message_type, wire.message_id) == (envelope.message_type, envelope.message_id)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert wire.timestamp_micros == (envelope.timestamp - epoch) // timedelta(microseconds=1)
    assert wire.record["payload"] == envelope.payload


def test_ids_in_another_uuid_form_decode_to_the_canonical_text() -> None:
    data = SERDE.encode(sample_envelope(CATALOG.latest("llm.request.completed")))
    upper = rewritten(data, event_id="{00000000-0000-4000-8000-00000000000A}")
    assert SERDE.decode(upper).message_id == "00000000-0000-4000-8000-00000000000a"
    assert SERDE.decode_wire(upper).message_id == "00000000-0000-4000-8000-00000000000a"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [({"event_id": "not-a-uuid"}, "undecodable body"), ({"timestamp": 2**62}, "out of range")],
)
def test_envelope_values_no_reader_accepts_raise_decode_error(
    fields: dict[str, object], reason: str
) -> None:
    data = SERDE.encode(sample_envelope(CATALOG.latest("llm.request.completed")))
    for decode in (SERDE.decode, SERDE.decode_wire):
        with pytest.raises(DecodeError, match=reason):
            decode(rewritten(data, **fields))
