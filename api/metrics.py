"""Prometheus metrics of the API, served at ``/metrics`` with the runtime's own."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "CHAT_SECONDS",
    "EVENTS_CONSUMED",
    "FEED_CLIENTS",
    "FEED_DISCONNECTS",
    "HTTP_REQUESTS",
    "HTTP_SECONDS",
    "PUBLISH_SECONDS",
    "RATE_LIMITED",
    "RUN_WAITERS",
    "SHED",
]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

HTTP_REQUESTS = Counter(
    "api_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
HTTP_SECONDS = Histogram(
    "api_http_request_seconds", "Time to the response head", ["route"], buckets=_LATENCY_BUCKETS
)
CHAT_SECONDS = Histogram(
    "api_chat_reply_seconds",
    "Command published to terminal event received, per chat call",
    buckets=_LATENCY_BUCKETS,
)
PUBLISH_SECONDS = Histogram(
    "api_publish_seconds", "Time until the broker acknowledged a command", buckets=_LATENCY_BUCKETS
)
RATE_LIMITED = Counter("api_rate_limited_total", "Requests refused by a key's rate limit")
SHED = Counter(
    "api_shed_total", "Chat requests refused because this replica had chat.max_in_flight runs"
)
EVENTS_CONSUMED = Counter("api_events_consumed_total", "Events read by this replica's hub")
RUN_WAITERS = Gauge("api_run_waiters", "Requests waiting for a run's events")
FEED_CLIENTS = Gauge("api_feed_clients", "Open WebSocket feed connections")
FEED_DISCONNECTS = Counter(
    "api_feed_disconnects_total", "Feed connections closed by the server", ["reason"]
)
