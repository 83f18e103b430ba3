"""W3C trace context on every message: ``traceparent`` header plus envelope trace/span ids.

Spans are exported over OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set; without it the ids still travel with every
message, so a run's events name their trace, and nothing is paid for spans nobody reads."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, TraceFlags

from streams.envelope import Envelope

__all__ = [
    "TRACEPARENT",
    "batch_span",
    "exporting",
    "ids_of",
    "install_tracer_provider",
    "message_span",
    "producer_span_ids",
    "traceparent_of",
]

TRACEPARENT = "traceparent"
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_tracer = trace.get_tracer("streams.runner")
_MAX_LINKS = 128  # the SDK's default span link limit


def traceparent_of(envelope: Envelope) -> str | None:
    if envelope.trace_id is None or envelope.span_id is None:
        return None
    return f"00-{envelope.trace_id}-{envelope.span_id}-01"


def _span_context(traceparent: str | None) -> SpanContext | None:
    match = _TRACEPARENT.match(traceparent or "")
    if match is None:
        return None
    return SpanContext(
        trace_id=int(match.group(1), 16),
        span_id=int(match.group(2), 16),
        is_remote=True,
        trace_flags=TraceFlags(int(match.group(3), 16)),
    )


def _parent_context(traceparent: str | None) -> Context | None:
    parent = _span_context(traceparent)
    return None if parent is None else trace.set_span_in_context(NonRecordingSpan(parent))


def exporting(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether spans leave the process (an OTLP endpoint is configured)."""
    return (
        bool(
            environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        )
        and environ.get("OTEL_SDK_DISABLED", "").lower() != "true"
    )


def producer_span_ids(
    name: str, traceparent: str | None, attributes: Mapping[str, str]
) -> tuple[str, str] | None:
    """The ids of a PRODUCER span for a message entering the system (in the caller's trace
    when it sent a ``traceparent``), or None when spans are not exported: the caller then
    makes ids of its own, which costs nothing."""
    if not exporting():
        return None
    span = _tracer.start_span(
        name,
        context=_parent_context(traceparent),
        kind=trace.SpanKind.PRODUCER,
        attributes={"messaging.system": "kafka", **attributes},
    )
    span.end()
    trace_id, span_id = ids_of(span)
    return None if trace_id is None or span_id is None else (trace_id, span_id)


@contextmanager
def batch_span(
    name: str, traceparents: Iterable[str], attributes: Mapping[str, int | str]
) -> Iterator[None]:
    """A span for work on a batch of messages (the projector's inserts), linked to each
    message's span as the messaging conventions say for batches; only when exporting."""
    if not exporting():
        yield
        return
    links = []
    for traceparent in dict.fromkeys(traceparents):
        context = _span_context(traceparent)
        if context is not None:
            links.append(Link(context))
        if len(links) == _MAX_LINKS:
            break
    with _tracer.start_as_current_span(name, links=links, attributes=dict(attributes)):
        yield


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
    """An SDK provider, so messages entering without a trace start one with real ids; its
    spans go to the OTLP endpoint in batches when one is set."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    provider = TracerProvider(resource=Resource({"service.name": service_name}))
    if exporting():
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
