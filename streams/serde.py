"""Avro serde for envelopes, with the two wire framings the platform speaks.

* Single-object encoding (default): ``C3 01`` + 8-byte CRC-64-AVRO fingerprint + body. The
  fingerprint names the writer schema among the ``.avsc`` files in the repo.
* Confluent framing (when ``SCHEMA_REGISTRY_URL`` is set): ``00`` + 4-byte schema id + body;
  the id is resolved through the Schema Registry (subject = record full name).

Either way the body is decoded with writer-to-reader schema resolution against the newest
version of the type in the repo, so consumers read the current and older versions alike.

Decoding is planned once per writer schema (keyed by the framing header): resolution is skipped
when the writer schema is the reader schema, and the envelope's id and timestamp are read as
their plain Avro values (text, microseconds) and checked here, which is cheaper than fastavro's
``UUID`` and ``datetime`` round trip. ``decode_wire`` stops there, for consumers (the projector)
that want the wire values; ``decode`` builds the ``Envelope``.
"""

from __future__ import annotations

import io
import json
import re
import struct
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol

from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import parse_schema
from fastavro.validation import ValidationError, validate

from schemas import MessageSchema, SchemaCatalog, UnknownSchemaError
from streams.avro_check import Check, compile_check
from streams.envelope import Envelope

__all__ = [
    "AvroSerde",
    "ConfluentFraming",
    "DecodeError",
    "EncodeError",
    "Framing",
    "SingleObjectFraming",
    "WireMessage",
]

_ENVELOPE_FIELDS = (
    "schema_version",
    "timestamp",
    "layer",
    "service_name",
    "env",
    "trace_id",
    "span_id",
    "correlation_id",
    "tenant_id",
    "causation_id",
    "payload",
)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# timestamp-micros values that are datetimes (fastavro's reading fails outside these).
_MIN_MICROS = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // _MICROSECOND
_MAX_MICROS = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // _MICROSECOND
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_WIRE_TYPES = {"timestamp": ("long", "timestamp-micros")}


class WireMessage(NamedTuple):
    """A decoded message before it becomes an ``Envelope``: ``record`` is the Avro record as
    read (payload included); its id and timestamp fields hold wire values, the checked ones
    are ``message_id`` (canonical uuid text) and ``timestamp_micros``."""

    message_type: str
    message_id: str
    timestamp_micros: int
    record: dict[str, Any]


class DecodeError(ValueError):
    """Bytes that are not a message this platform can read; the runner dead-letters them."""


class EncodeError(ValueError):
    """An envelope that does not fit its schema; a bug in the writer, never sent."""


class Framing(Protocol):
    """How a writer schema is named in front of the Avro body, in ``HEADER_SIZE`` bytes."""

    HEADER_SIZE: int

    def frame(self, schema: MessageSchema, body: bytes) -> bytes: ...

    def writer_schema(self, data: bytes) -> tuple[dict[str, Any], str, int]:
        """Parsed writer schema, its message type and where the body starts."""
        ...


class SingleObjectFraming:
    """Avro single-object encoding, resolved against the repo's schemas."""

    MARKER = b"\xc3\x01"
    HEADER_SIZE = 10

    def __init__(self, catalog: SchemaCatalog) -> None:
        self._catalog = catalog

    def frame(self, schema: MessageSchema, body: bytes) -> bytes:
        return self.MARKER + schema.fingerprint + body

    def writer_schema(self, data: bytes) -> tuple[dict[str, Any], str, int]:
        if len(data) < self.HEADER_SIZE or data[:2] != self.MARKER:
            raise DecodeError("not Avro single-object encoded (missing C3 01 marker)")
        try:
            schema = self._catalog.by_fingerprint(data[2:10])
        except UnknownSchemaError as exc:
            raise DecodeError(str(exc)) from exc
        return schema.parsed, schema.message_type, self.HEADER_SIZE


class SchemaRegistry(Protocol):
    """The part of ``confluent_kafka.schema_registry.SchemaRegistryClient`` used here."""

    def register_schema(self, subject_name: str, schema: Any) -> int: ...

    def get_schema(self, schema_id: int) -> Any: ...


class ConfluentFraming:
    """Confluent Schema Registry framing; ids are cached, so the registry is asked once each."""

    MAGIC = b"\x00"
    HEADER_SIZE = 5

    def __init__(self, catalog: SchemaCatalog, registry: SchemaRegistry) -> None:
        self._catalog = catalog
        self._registry = registry
        self._ids: dict[bytes, int] = {}
        self._writers: dict[int, tuple[dict[str, Any], str]] = {}

    @classmethod
    def from_url(cls, catalog: SchemaCatalog, url: str) -> ConfluentFraming:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        return cls(catalog, SchemaRegistryClient({"url": url}))

    def frame(self, schema: MessageSchema, body: bytes) -> bytes:
        schema_id = self._ids.get(schema.fingerprint)
        if schema_id is None:
            from confluent_kafka.schema_registry import Schema

            text = json.dumps(schema.source)
            schema_id = self._registry.register_schema(schema.full_name, Schema(text, "AVRO"))
            self._ids[schema.fingerprint] = schema_id
        return self.MAGIC + struct.pack(">I", schema_id) + body

    def writer_schema(self, data: bytes) -> tuple[dict[str, Any], str, int]:
        if len(data) < self.HEADER_SIZE or data[:1] != self.MAGIC:
            raise DecodeError("not Confluent framed (missing magic byte 0)")
        (schema_id,) = struct.unpack(">I", data[1:5])
        writer = self._writers.get(schema_id)
        if writer is None:
            writer = self._fetch_writer(schema_id)
            self._writers[schema_id] = writer
        return (*writer, self.HEADER_SIZE)

    def _fetch_writer(self, schema_id: int) -> tuple[dict[str, Any], str]:
        """The writer may be newer than this repo; its record full name names the type."""
        try:
            source = json.loads(self._registry.get_schema(schema_id).schema_str)
        except Exception as exc:
            raise DecodeError(f"schema id {schema_id} not resolvable: {exc}") from exc
        full_name = f"{source.get('namespace')}.{source.get('name')}"
        try:
            known = self._catalog.by_full_name(full_name)
        except UnknownSchemaError as exc:
            raise DecodeError(str(exc)) from exc
        writer = parse_schema(source)
        if not isinstance(writer, dict):
            raise DecodeError(f"schema id {schema_id} is not a record schema")
        return writer, known.message_type


class AvroSerde:
    """Envelope <-> bytes, with the newest schema of each type unless ``pins`` names a version.

    Pins serve rolling upgrades: ship ``v<N+1>.avsc`` to every service pinned at ``v<N>`` (they
    read and write ``v<N>``, and can already resolve ``v<N+1>`` data), then drop the pin."""

    def __init__(
        self, catalog: SchemaCatalog, framing: Framing, pins: Mapping[str, int] | None = None
    ) -> None:
        self._catalog = catalog
        self._framing = framing
        self._pins = dict(pins or {})
        self._plans: dict[bytes, _DecodePlan] = {}
        self._payload_checks: dict[bytes, Check] = {}

    @property
    def catalog(self) -> SchemaCatalog:
        return self._catalog

    def encode(self, envelope: Envelope) -> bytes:
        try:
            schema = self._schema_for(envelope.message_type)
        except UnknownSchemaError as exc:
            raise EncodeError(str(exc)) from exc
        buffer = io.BytesIO()
        record = _to_record(envelope, schema)
        try:
            # fastavro's writer coerces some wrong types (a str into a boolean); the contract
            # is the schema, so the payload must fit it exactly. The compiled check says so in
            # a few microseconds; fastavro's validation runs only when it does not (to accept
            # what the writer legitimately converts, or to name what is wrong).
            if not self._payload_check(schema)(record["payload"]):
                validate(record, schema.parsed, raise_errors=True)
            schemaless_writer(buffer, schema.parsed, record)
        except (ValidationError, TypeError, ValueError, KeyError, AttributeError) as exc:
            raise EncodeError(
                f"{envelope.message_type}: payload does not fit schema: {exc}"
            ) from exc
        return self._framing.frame(schema, buffer.getvalue())

    def decode(self, data: bytes) -> Envelope:
        return _envelope(self.decode_wire(data))

    def decode_wire(self, data: bytes) -> WireMessage:
        """The record as on the wire, with its id and timestamp checked as ``decode`` does."""
        header = data[: self._framing.HEADER_SIZE]
        plan = self._plans.get(header)
        if plan is None:
            plan = self._plans[header] = self._plan(data)
        body = io.BytesIO(data)
        body.seek(len(header))
        try:
            record = schemaless_reader(body, plan.writer, plan.reader)
        except Exception as exc:  # fastavro raises many types on corrupt bodies
            raise DecodeError(f"{plan.message_type}: undecodable body: {exc}") from exc
        if not isinstance(record, dict):
            raise DecodeError(f"{plan.message_type}: body is not a record")
        if record[plan.type_field] != plan.message_type:
            raise DecodeError(
                f"{plan.type_field} {record[plan.type_field]!r} != schema {plan.message_type}"
            )
        micros = record["timestamp"]
        if not _MIN_MICROS <= micros <= _MAX_MICROS:
            raise DecodeError(f"{plan.message_type}: timestamp {micros} out of range")
        message_id = record[plan.id_field]
        if not _CANONICAL_UUID.fullmatch(message_id):
            message_id = _uuid_text(message_id, plan.message_type)
        return WireMessage(plan.message_type, message_id, micros, record)

    def _plan(self, data: bytes) -> _DecodePlan:
        writer, message_type, _ = self._framing.writer_schema(data)
        reader = self._schema_for(message_type)
        wire_types = {**_WIRE_TYPES, reader.id_field: ("string", "uuid")}
        return _DecodePlan(
            writer=_plain_envelope(writer, wire_types),
            reader=None if writer == reader.parsed else _plain_envelope(reader.parsed, wire_types),
            message_type=reader.message_type,
            id_field=reader.id_field,
            type_field=reader.type_field,
        )

    def _payload_check(self, schema: MessageSchema) -> Check:
        check = self._payload_checks.get(schema.fingerprint)
        if check is None:
            payload = next(f for f in schema.parsed["fields"] if f["name"] == "payload")
            check = self._payload_checks[schema.fingerprint] = compile_check(payload["type"])
        return check

    def _schema_for(self, message_type: str) -> MessageSchema:
        pinned = self._pins.get(message_type)
        if pinned is None:
            return self._catalog.latest(message_type)
        return self._catalog.version(message_type, pinned)


def _to_record(envelope: Envelope, schema: MessageSchema) -> dict[str, Any]:
    record: dict[str, Any] = {name: getattr(envelope, name) for name in _ENVELOPE_FIELDS}
    record[schema.id_field] = envelope.message_id
    record[schema.type_field] = envelope.message_type
    record["schema_version"] = schema.version
    record["payload"] = dict(envelope.payload)
    return record


class _DecodePlan(NamedTuple):
    """How to read the bodies of one writer schema; ``reader`` is None when no resolution is
    needed (the writer schema is the reader schema)."""

    writer: dict[str, Any]
    reader: dict[str, Any] | None
    message_type: str
    id_field: str
    type_field: str


def _plain_envelope(
    parsed: dict[str, Any], wire_types: dict[str, tuple[str, str]]
) -> dict[str, Any]:
    """``parsed`` with the logical types of the envelope fields in ``wire_types`` dropped (the
    binary encoding is the same); any other type there is not our envelope."""
    fields = []
    for field in parsed["fields"]:
        expected = wire_types.get(field["name"])
        if expected is not None:
            kind = field["type"]
            if not isinstance(kind, dict) or (kind["type"], kind.get("logicalType")) != expected:
                raise DecodeError(f"{parsed['name']}.{field['name']} is not {'/'.join(expected)}")
            field = {**field, "type": expected[0]}
        fields.append(field)
    return {**parsed, "fields": fields}


def _uuid_text(value: str, message_type: str) -> str:
    """Canonical text of a uuid written in another form (as fastavro's ``UUID`` would give)."""
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise DecodeError(f"{message_type}: undecodable body: {exc}") from exc


def _envelope(message: WireMessage) -> Envelope:
    record = message.record
    return Envelope(
        message_type=message.message_type,
        message_id=message.message_id,
        timestamp=_EPOCH + timedelta(microseconds=message.timestamp_micros),
        correlation_id=record["correlation_id"],
        tenant_id=record["tenant_id"],
        payload=record["payload"],
        service_name=record["service_name"],
        layer=record["layer"],
        env=record["env"],
        schema_version=record["schema_version"],
        causation_id=record["causation_id"],
        trace_id=record["trace_id"],
        span_id=record["span_id"],
    )
