"""A run's trace waterfall from its events alone (pure), so a trace is visible without any
APM: every event names the span of the step that wrote it (``span_id``) and the message that
caused it (``causation_id``). A step is a span: its service, when its first and last events
were written (milliseconds from the run's first event), what it wrote, and the step whose
event caused it (none for the first: the API's command caused it)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

__all__ = ["waterfall"]


def waterfall(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    ordered = sorted(events, key=lambda e: (str(e["timestamp"]), str(e["event_id"])))
    if not ordered:
        return []
    start = datetime.fromisoformat(str(ordered[0]["timestamp"]))
    steps: dict[str, dict[str, Any]] = {}
    step_of_event: dict[str, str] = {}
    for event in ordered:
        span = str(event.get("span_id") or f"event:{event['event_id']}")
        at_ms = round(
            (datetime.fromisoformat(str(event["timestamp"])) - start).total_seconds() * 1000, 3
        )
        step = steps.get(span)
        if step is None:
            cause = step_of_event.get(str(event.get("causation_id")))
            step = steps[span] = {
                "span_id": event.get("span_id"),
                "parent_span_id": cause if cause != span else None,
                "service": event.get("service_name"),
                "start_ms": at_ms,
                "end_ms": at_ms,
                "events": [],
            }
        step["end_ms"] = at_ms
        step["events"].append(event["event_type"])
        step_of_event[str(event["event_id"])] = span
    return list(steps.values())
