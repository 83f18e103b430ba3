"""Provider calls as OpenTelemetry GenAI client spans (``chat {model}``, with
``gen_ai.provider.name``, ``gen_ai.request.model``, token usage and finish reasons, as the
GenAI semantic conventions name them), children of the runner's span for the command. Only
when spans are exported: otherwise nothing is created on the request path."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from processors.foundation.providers import ChatRequest, ChatResult, ProviderError
from streams.tracing import exporting

__all__ = ["end_call_span", "start_call_span"]

_tracer = trace.get_tracer("processors.foundation")


def start_call_span(provider: str, request: ChatRequest, streaming: bool) -> Span | None:
    if not exporting():
        return None
    attributes: dict[str, str | int | float | bool] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": request.model,
        "gen_ai.request.stream": streaming,
    }
    if request.max_tokens is not None:
        attributes["gen_ai.request.max_tokens"] = request.max_tokens
    if request.temperature is not None:
        attributes["gen_ai.request.temperature"] = request.temperature
    return _tracer.start_span(
        f"chat {request.model}", kind=trace.SpanKind.CLIENT, attributes=attributes
    )


def end_call_span(span: Span | None, outcome: ChatResult | ProviderError | None) -> None:
    """Ends the span with what the call came to: usage and finish reason, or the error kind
    (``None``: a stream that ended without saying more)."""
    if span is None:
        return
    if isinstance(outcome, ProviderError):
        span.set_attribute("error.type", outcome.kind.value)
        span.set_status(Status(StatusCode.ERROR, outcome.kind.value))
    elif outcome is not None:
        span.set_attribute("gen_ai.usage.input_tokens", outcome.usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", outcome.usage.completion_tokens)
        if outcome.finish_reason is not None:
            span.set_attribute("gen_ai.response.finish_reasons", [outcome.finish_reason])
    span.end()
