"""The one envelope every command and event travels in, and how ids and times enter it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "Clock",
    "Envelope",
    "IdSource",
    "WriterIdentity",
    "derived_id",
    "envelope_json",
    "new_message",
    "random_ids",
    "stamp_outputs",
    "system_clock",
]

Clock = Callable[[], datetime]
IdSource = Callable[[], str]

# Namespace for ids derived from a parent message id; changing it would break exact duplicates.
_DERIVED_ID_NAMESPACE = uuid.UUID("6f1c3a52-1d8e-4b5e-9a43-0c2f8e7d5b10")


def system_clock() -> datetime:
    return datetime.now(UTC)


def random_ids() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class WriterIdentity:
    """Who writes a message: stamped into every envelope the writer produces."""

    service_name: str
    layer: int
    env: str


@dataclass(frozen=True)
class Envelope:
    """A command or event. ``message_id``/``message_type`` are ``<kind>_id``/``<kind>_type`` on
    the wire; the kind comes from the schema catalog. ``schema_version`` is the writer's
    version: the serde sets it on encode and reports it on decode."""

    message_type: str
    message_id: str
    timestamp: datetime
    correlation_id: str
    tenant_id: str
    payload: Mapping[str, Any]
    service_name: str
    layer: int
    env: str
    schema_version: int = 0
    causation_id: str | None = None
    trace_id: str | None = None
    span_id: str | None = None

    def derive(
        self, message_type: str, payload: Mapping[str, Any], message_id: str | None = None
    ) -> Envelope:
        """An output caused by this message, for a handler to return.

        Correlation, tenant and trace are inherited. Timestamp and writer identity are
        provisional, and so is the id unless the handler names it (``derived_id`` of a slot):
        the runner stamps them (``stamp_outputs``) so handlers stay pure. Built field by field
        rather than with ``dataclasses.replace``, which costs several times more on a path
        taken for every event."""
        return Envelope(
            message_type,
            message_id or self.message_id,
            self.timestamp,
            self.correlation_id,
            self.tenant_id,
            payload,
            self.service_name,
            self.layer,
            self.env,
            0,
            self.message_id,
            self.trace_id,
            self.span_id,
        )


def derived_id(parent_id: str, slot: int | str) -> str:
    """Deterministic id of the output of ``parent_id`` in ``slot`` (its position, or a name
    such as ``terminal``): reprocessing the same input yields the same ids, so downstream
    consumers can drop exact duplicates."""
    return str(uuid.uuid5(_DERIVED_ID_NAMESPACE, f"{parent_id}/{slot}"))


def stamp_outputs(
    source: Envelope,
    outputs: list[Envelope],
    writer: WriterIdentity,
    now: datetime,
    first_position: int = 0,
) -> list[Envelope]:
    """Give each handler output its deterministic id, its cause, the time and the writer;
    positions count from ``first_position`` (outputs streamed one at a time). An output whose
    handler already named its id (``derived_id`` of a slot) keeps it."""
    return [
        Envelope(
            output.message_type,
            derived_id(source.message_id, position)
            if output.message_id == source.message_id
            else output.message_id,
            now,
            output.correlation_id,
            output.tenant_id,
            output.payload,
            writer.service_name,
            writer.layer,
            writer.env,
            output.schema_version,
            source.message_id,
            output.trace_id,
            output.span_id,
        )
        for position, output in enumerate(outputs, start=first_position)
    ]


def new_message(
    message_type: str,
    payload: Mapping[str, Any],
    *,
    correlation_id: str,
    tenant_id: str,
    writer: WriterIdentity,
    clock: Clock = system_clock,
    ids: IdSource = random_ids,
) -> Envelope:
    """A message entering the system (a command from the API, say): fresh id, no cause."""
    return Envelope(
        message_type=message_type,
        message_id=ids(),
        timestamp=clock(),
        correlation_id=correlation_id,
        tenant_id=tenant_id,
        payload=payload,
        service_name=writer.service_name,
        layer=writer.layer,
        env=writer.env,
    )


def envelope_json(envelope: Envelope) -> dict[str, Any]:
    """The envelope as JSON, in the wire's field names (``event_id``, ``event_type``, ...)."""
    return {
        "event_id": envelope.message_id,
        "event_type": envelope.message_type,
        "schema_version": envelope.schema_version,
        "timestamp": envelope.timestamp.isoformat(),
        "layer": envelope.layer,
        "service_name": envelope.service_name,
        "env": envelope.env,
        "trace_id": envelope.trace_id,
        "span_id": envelope.span_id,
        "correlation_id": envelope.correlation_id,
        "tenant_id": envelope.tenant_id,
        "causation_id": envelope.causation_id,
        "payload": json.loads(json.dumps(envelope.payload, default=_jsonable)),
    }


def _jsonable(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
