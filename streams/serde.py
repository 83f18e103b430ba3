"""Avro serde for envelopes, with the two wire framings the platform speaks.

* Single-object encoding (default): ``C3 01`` + 8-byte CRC-64-AVRO fingerprint + body. The
  fingerprint names the writer schema among the ``.avsc`` files in the repo.
* Confluent framing (when ``SCHEMA_REGISTRY_URL`` is set): ``00`` + 4-byte schema id + body;
  the id is resolved through the Schema Registry (subject = record full name).

Either way the body is decoded with writer-to-reader schema resolution against the newest
version of the type in the repo, so consumers read the current and older versions alike.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import parse_schema
from fastavro.validation import ValidationError, validate

from schemas import MessageSchema, SchemaCatalog, UnknownSchemaError
from streams.envelope import Envelope

__all__ = [
    "AvroSerde",
    "ConfluentFraming",
    "DecodeError",
    "EncodeError",
    "Framing",
    "SingleObjectFraming",
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


class DecodeError(ValueError):
    """Bytes that are not a message this platform can read; the runner dead-letters them."""


class EncodeError(ValueError):
    """An envelope that does not fit its schema; a bug in the writer, never sent."""


class Framing(Protocol):
    """How a writer schema is named in front of the Avro body."""

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
            # is the schema, so check it exactly before anything reaches the wire.
            validate(record, schema.parsed, raise_errors=True)
            schemaless_writer(buffer, schema.parsed, record)
        except (ValidationError, TypeError, ValueError, KeyError, AttributeError) as exc:
            raise EncodeError(
                f"{envelope.message_type}: payload does not fit schema: {exc}"
            ) from exc
        return self._framing.frame(schema, buffer.getvalue())

    def decode(self, data: bytes) -> Envelope:
        writer, message_type, offset = self._framing.writer_schema(data)
        reader = self._schema_for(message_type)
        try:
            record = schemaless_reader(io.BytesIO(data[offset:]), writer, reader.parsed)
        except Exception as exc:  # fastavro raises many types on corrupt bodies
            raise DecodeError(f"{message_type}: undecodable body: {exc}") from exc
        if not isinstance(record, dict):
            raise DecodeError(f"{message_type}: body is not a record")
        return _from_record(record, reader)

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


def _from_record(record: dict[str, Any], reader: MessageSchema) -> Envelope:
    declared_type = record[reader.type_field]
    if declared_type != reader.message_type:
        raise DecodeError(f"{reader.type_field} {declared_type!r} != schema {reader.message_type}")
    timestamp = record["timestamp"]
    if not isinstance(timestamp, datetime):
        raise DecodeError("timestamp is not a timestamp-micros value")
    return Envelope(
        message_type=reader.message_type,
        message_id=str(record[reader.id_field]),
        timestamp=timestamp,
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
