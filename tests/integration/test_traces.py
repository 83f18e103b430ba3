"""One trace from the API through every processor, exported over OTLP/HTTP to a real receiver
(oteltest's otelsink, decoding with the official OTLP protobufs): the API's publish span, the
foundation processor's consumer span and its GenAI span for the provider call, the
observability processor's span, all under one trace id; the projector's insert span linked to
it, as the messaging conventions say for a batch."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from oteltest.sink import HttpSink

from streams.local_jvm import free_ports
from tests.integration.processes import start_processor
from tests.integration.test_api_support import running_stack
from tests.integration.test_projections_support import wait_until


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    linked_traces: frozenset[str]


class Spans:
    """Every span the receiver decoded, flattened (the sink's listener interface)."""

    def __init__(self) -> None:
        self.received: list[ReceivedSpan] = []
        self._lock = threading.Lock()

    def handle_trace(self, request: ExportTraceServiceRequest, headers: Any) -> None:
        found = []
        for resource in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource.resource.attributes}
            for scope in resource.scope_spans:
                for span in scope.spans:
                    found.append(
                        ReceivedSpan(
                            attributes.get("service.name", ""),
                            span.name,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                            {a.key: _value(a.value) for a in span.attributes},
                            frozenset(link.trace_id.hex() for link in span.links),
                        )
                    )
        with self._lock:
            self.received += found

    def handle_metrics(self, request: Any, headers: Any) -> None:
        return

    def handle_logs(self, request: Any, headers: Any) -> None:
        return

    def of(self, service: str, name_start: str) -> list[ReceivedSpan]:
        with self._lock:
            return [
                s for s in self.received if s.service == service and s.name.startswith(name_start)
            ]


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


@pytest.fixture
def receiver() -> Iterator[tuple[Spans, str]]:
    spans = Spans()
    port = free_ports(1)[0]
    sink = HttpSink(spans, logging.getLogger("otelsink"), port=port)
    sink.start()
    url = f"http://127.0.0.1:{port}"
    wait_until(_answers(url), 30, "the OTLP receiver")
    try:
        yield spans, url
    finally:
        sink.stop()


def _answers(url: str) -> Any:
    def check() -> bool:
        try:
            return httpx.post(f"{url}/v1/unknown", content=b"").status_code == 200
        except httpx.HTTPError:
            return False

    return check


def test_one_trace_runs_from_the_api_through_every_processor(
    bootstrap: str,
    redis_url: str,
    tmp_path: Path,
    receiver: tuple[Spans, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spans, url = receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)  # every process started below
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # export within 0.1 s, not 5 s
    with running_stack(bootstrap, redis_url, tmp_path) as stack:
        stack.processes.append(
            start_processor(
                "processors.observability.processor:PROCESSOR",
                bootstrap,
                stack.topics,
                "observability-traces",
                tmp_path / "observability.log",
            )
        )
        answer = httpx.post(
            f"{stack.api.url}/v1/chat/completions",
            headers=stack.tenants["a"].headers,
            json={"messages": [{"role": "user", "content": "Hello, traces"}]},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        run = answer.json()["correlation_id"]

        def published() -> list[ReceivedSpan]:
            return [
                s
                for s in spans.of("api", "publish llm.chat.requested")
                if s.attributes.get("platform.correlation_id") == run
            ]

        wait_until(lambda: bool(published()), 30, "the API's publish span")
        trace_id = published()[0].trace_id

        def in_trace(service: str, name: str) -> list[ReceivedSpan]:
            return [s for s in spans.of(service, name) if s.trace_id == trace_id]

        wait_until(
            lambda: (
                bool(in_trace("observability", "observability process"))
                and any(trace_id in s.linked_traces for s in spans.of("projector", "projector"))
            ),
            60,
            "the observability and projector spans",
        )
    (api,) = published()
    (consumed,) = in_trace("foundation", "foundation process")
    (call,) = in_trace("foundation", "chat ")
    assert consumed.parent_id == api.span_id  # the consumer continues the producer's span
    assert call.parent_id == consumed.span_id
    assert call.attributes["gen_ai.operation.name"] == "chat"
    assert call.attributes["gen_ai.request.model"] == call.name.removeprefix("chat ")
    assert call.attributes["gen_ai.usage.output_tokens"] > 0
    assert call.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert all(s.parent_id for s in in_trace("observability", "observability process"))
