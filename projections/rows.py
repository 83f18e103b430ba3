"""A decoded event as one ``events`` row in JSONEachRow: the envelope's typed columns and the
payload as a JSON object that ClickHouse stores as text
(``input_format_json_read_objects_as_strings``).

Built from the wire values (``AvroSerde.decode_wire``), skipping the ``Envelope`` and its
``datetime``: the projector's hot path. Pure and deterministic: the same message always gives
the same line, so a rebuild writes byte-identical rows."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from streams.serde import WireMessage

__all__ = ["INSERT_SETTINGS", "event_row"]

# The settings every events insert uses (the dedup token is added per batch).
INSERT_SETTINGS = {
    "input_format_json_read_objects_as_strings": 1,
    "deduplicate_blocks_in_dependent_materialized_views": 1,
    "parallel_view_processing": 1,
}
_encode = json.JSONEncoder(separators=(",", ":"), default=lambda v: _json_value(v)).encode


def event_row(message: WireMessage) -> str:
    record = message.record
    return _encode(
        {
            "event_id": message.message_id,
            "event_type": message.message_type,
            "schema_version": record["schema_version"],
            "timestamp": _seconds_text(message.timestamp_micros),
            "layer": record["layer"],
            "service_name": record["service_name"],
            "env": record["env"],
            "trace_id": record["trace_id"],
            "span_id": record["span_id"],
            "correlation_id": record["correlation_id"],
            "tenant_id": record["tenant_id"],
            "causation_id": record["causation_id"],
            "payload": record["payload"],
        }
    )


def _seconds_text(micros: int) -> str:
    """Exact seconds.micros text: a float would lose the last digits of a DateTime64(6)."""
    seconds, fraction = divmod(micros, 1_000_000)
    return f"{seconds}.{fraction:06d}"


def _json_value(value: Any) -> Any:
    """Avro logical and binary values in a payload: timestamps as RFC 3339 (as in the JSON
    views of EVENTS.md), bytes as base64, uuids and decimals as text."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)
