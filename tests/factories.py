"""Valid messages of every schema, built from the schemas themselves, for round-trip tests."""

from __future__ import annotations

import io
import secrets
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.utils import generate_one

from schemas import MessageSchema
from streams.envelope import Envelope, WriterIdentity, new_message

FIXED_TIME = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC)


def sample_payload(schema: MessageSchema) -> dict[str, Any]:
    """A random but schema-valid payload, in the form a reader returns (logical types too)."""
    payload_schema = parse_schema(
        next(f["type"] for f in schema.source["fields"] if f["name"] == "payload")
    )
    generated = generate_one(payload_schema)
    buffer = io.BytesIO()
    schemaless_writer(buffer, payload_schema, generated)
    buffer.seek(0)
    payload: dict[str, Any] = schemaless_reader(buffer, payload_schema, payload_schema)
    return payload


def sample_envelope(schema: MessageSchema, correlation_id: str = "run-1", n: int = 0) -> Envelope:
    return Envelope(
        message_type=schema.message_type,
        message_id=f"00000000-0000-4000-8000-{n:012d}",
        timestamp=FIXED_TIME,
        correlation_id=correlation_id,
        tenant_id="tenant-a",
        payload=sample_payload(schema),
        service_name="tests",
        layer=1,
        env="dev",
        schema_version=schema.version,
        trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id="b7ad6b7169203331",
    )


def chat_command(
    correlation_id: str,
    *,
    explode: bool = False,
    tenant: str = "tenant-a",
    content: str | None = None,
    **payload: Any,
) -> Envelope:
    """A valid ``llm.chat.requested`` as the API would send it, in a trace of its own;
    ``payload`` overrides fields (``max_tokens=20``, ``cache="bypass"``, ...)."""
    command = new_message(
        "llm.chat.requested",
        {
            "messages": [{"role": "user", "content": content or f"hello {correlation_id}"}],
            "mode": "direct",
            "stop": [],
            "stream": False,
            "cache": "default",
            "metadata": {"explode": "yes"} if explode else {},
            "model": None,
            "tools_json": None,
            "tool_choice_json": None,
            "response_format_json": None,
            "max_tokens": None,
            "temperature": None,
            "top_p": None,
            "budget": None,
            "idempotency_key": None,
            "deadline": None,
            **payload,
        },
        correlation_id=correlation_id,
        tenant_id=tenant,
        writer=WriterIdentity("tests", 5, "dev"),
    )
    return replace(command, trace_id=secrets.token_hex(16), span_id=secrets.token_hex(8))


def completed_payload(**changes: Any) -> dict[str, Any]:
    """A valid ``llm.request.completed`` payload (a short answer from ``p``/``m``); ``changes``
    override fields."""
    return {
        "provider": "p",
        "model": "m",
        "output_text": "Paris.",
        "tool_calls_json": None,
        "finish_reason": "stop",
        "prompt_tokens": 3,
        "completion_tokens": 5,
        "total_tokens": 8,
        "cost_usd": 0.0,
        "latency_ms": 10,
        "cache_hit": False,
        "saved_cost_usd": 0.0,
        "fallback_used": False,
        "attempts": 1,
        "status": "ok",
        "safety_flags": [],
        **changes,
    }
