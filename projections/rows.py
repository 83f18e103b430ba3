"""An envelope as one ``events`` row in JSONEachRow: the envelope's typed columns and the payload
as a JSON object that ClickHouse stores as text (``input_format_json_read_objects_as_strings``).

Pure and deterministic: the same envelope always gives the same line, so a rebuild writes
byte-identical rows."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from streams.envelope import Envelope

__all__ = ["INSERT_SETTINGS", "event_row"]

# The settings every events insert uses (the dedup token is added per batch).
INSERT_SETTINGS = {
    "input_format_json_read_objects_as_strings": 1,
    "deduplicate_blocks_in_dependent_materialized_views": 1,
    "parallel_view_processing": 1,
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_encode = json.JSONEncoder(separators=(",", ":"), default=lambda v: _json_value(v)).encode


def event_row(envelope: Envelope) -> str:
    return _encode(
        {
            "event_id": envelope.message_id,
            "event_type": envelope.message_type,
            "schema_version": envelope.schema_version,
            "timestamp": _seconds_text(envelope.timestamp),
            "layer": envelope.layer,
            "service_name": envelope.service_name,
            "env": envelope.env,
            "trace_id": envelope.trace_id,
            "span_id": envelope.span_id,
            "correlation_id": envelope.correlation_id,
            "tenant_id": envelope.tenant_id,
            "causation_id": envelope.causation_id,
            "payload": envelope.payload,
        }
    )


def _seconds_text(moment: datetime) -> str:
    """Exact seconds.micros text: a float would lose the last digits of a DateTime64(6)."""
    micros = (moment - _EPOCH) // _MICROSECOND
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
