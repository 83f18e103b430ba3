"""W3C trace context on every message: ``traceparent`` header plus envelope trace/span ids."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, TraceFlags

from streams.envelope import Envelope

__all__ = ["TRACEPARENT", "ids_of", "install_tracer_provider", "message_span", "traceparent_of"]

TRACEPARENT = "traceparent"
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_tracer = trace.get_tracer("streams.runner")


def traceparent_of(envelope: Envelope) -> str | None:
    if envelope.trace_id is None or envelope.span_id is None:
        return None
    return f"00-{envelope.trace_id}-{envelope.span_id}-01"


def _parent_context(traceparent: str | None) -> Context | None:
    match = _TRACEPARENT.match(traceparent or "")
    if match is None:
        return None
    parent = SpanContext(
        trace_id=int(match.group(1), 16),
        span_id=int(match.group(2), 16),
        is_remote=True,
        trace_flags=TraceFlags(int(match.group(3), 16)),
    )
    return trace.set_span_in_context(NonRecordingSpan(parent))


@contextmanager
def message_span(name: str, traceparent: str | None, envelope: Envelope | None) -> Iterator[Span]:
    """A consumer span that continues the message's trace (header first, then envelope ids)."""
    parent = traceparent or (traceparent_of(envelope) if envelope else None)
    attributes = {"messaging.system": "kafka"}
    if envelope is not None:
        attributes["messaging.message.id"] = envelope.message_id
        attributes["platform.correlation_id"] = envelope.correlation_id
    with _tracer.start_as_current_span(
        name, context=_parent_context(parent), kind=trace.SpanKind.CONSUMER, attributes=attributes
    ) as span:
        yield span


def ids_of(span: Span) -> tuple[str | None, str | None]:
    """Trace and span id of ``span`` as W3C hex, or ``(None, None)`` when it has none."""
    context = span.get_span_context()
    if not context.is_valid:
        return None, None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def install_tracer_provider(service_name: str) -> None:
    """An SDK provider, so messages entering without a trace start one with real ids."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider(resource=Resource({"service.name": service_name})))
