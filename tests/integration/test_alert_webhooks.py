"""Alert webhooks as deployed (``python -m streams run ...webhook_processor:PROCESSOR``) on the
real broker, delivering to a receiver on loopback: every delivery is signed, a 503 is retried
under the same delivery id, each alert arrives once across a restart of the processor, and a
webhook that cannot be reached is disabled and reported on ``events.alert``."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from processors.observability.alerting.alert_states import RESOLVED, TRIGGERED, evaluated
from processors.observability.alerting.conditions import slo_conditions, slo_windows
from processors.observability.alerting.indicators import Counts, Observation
from processors.observability.alerting.signatures import SIGNATURE_HEADER, verify
from processors.observability.alerting.webhooks import DELIVERY_HEADER, DISABLED
from processors.observability.config import Alerting, Slo
from streams.envelope import Envelope, WriterIdentity
from streams.producer import EnvelopeProducer
from streams.topics import TopicCatalog
from tests.integration.kafka_reading import TopicReader
from tests.integration.processes import start_processor
from tests.integration.test_projections_support import serde, wait_until

SECRET = "whsec_test_" + uuid.uuid4().hex
TARGET = "processors.observability.alerting.webhook_processor:PROCESSOR"
WRITER = WriterIdentity("alerter", 4, "dev")


@dataclass
class Receiver:
    """Answers 503 to the first ``refuse_first`` requests, then 204; records every request."""

    refuse_first: int
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, headers: Any, body: bytes) -> int:
        with self.lock:
            refused = len(self.requests) < self.refuse_first
            self.requests.append(
                {
                    "delivery": headers[DELIVERY_HEADER],
                    "event": headers["X-Platform-Event"],
                    "signed": verify(SECRET, headers[SIGNATURE_HEADER], body, int(time.time())),
                    "body": json.loads(body),
                    "status": 503 if refused else 204,
                }
            )
            return 503 if refused else 204

    def delivered(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["status"] == 204]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver(refuse_first=1)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(state.answer(self.headers, body))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/hooks/alerts"
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    probe = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = int(probe.server_address[1])
    probe.server_close()
    return port


def _alert_events(tenant: str) -> tuple[Envelope, Envelope]:
    """A page fired and later resolved, as the alerter writes them."""
    config = Alerting()
    slo = Slo(name="availability", indicator="availability", objective=0.999)
    counts = {w: Counts(50, 1000) for w in slo_windows(config.burn_rate_windows)}
    holding = slo_conditions(
        slo, config.burn_rate_windows, [Observation({"tenant": tenant}, counts)]
    )
    now = datetime.now(UTC)
    fired = evaluated({}, holding[:1], {"availability"}, now, WRITER)
    resolved = evaluated(fired.firing, [], {"availability"}, now + timedelta(minutes=5), WRITER)
    return fired.events[0], resolved.events[0]


def test_alerts_are_signed_retried_delivered_once_across_a_restart_and_a_dead_hook_disabled(
    bootstrap: str, topics: TopicCatalog, tmp_path: Path, receiver: tuple[Receiver, str]
) -> None:
    state, url = receiver
    config = tmp_path / "observability.yaml"
    config.write_text(
        "alerting:\n  webhooks:\n"
        f"    - {{name: oncall, url: '{url}', secret_env: HOOK_SECRET, backoff_s: 0.05}}\n"
        f"    - {{name: gone, url: 'http://127.0.0.1:{_closed_port()}/x?token=t', "
        "secret_env: HOOK_SECRET, max_attempts: 1, disable_after: 2}\n"
    )
    env = {"OBSERVABILITY_CONFIG": str(config), "HOOK_SECRET": SECRET}
    group, log = f"webhooks-{uuid.uuid4().hex}", tmp_path / "webhooks.log"
    producer = EnvelopeProducer(bootstrap, serde(), topics)
    fired, resolved = _alert_events("acme")
    other, _ = _alert_events("globex")

    process = start_processor(TARGET, bootstrap, topics, group, log, env=env)
    try:
        producer.send([fired, other])
        producer.flush()
        wait_until(lambda: len(state.delivered()) == 2, 60, "both triggers delivered")
        reports = TopicReader(bootstrap, topics.topic_for(DISABLED), serde())
        reports.poll_until(lambda r: bool(r.of_type(DISABLED)), 60, "the dead hook reported")
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0, log.read_text()[-3000:]

    process = start_processor(TARGET, bootstrap, topics, group, log, env=env)
    try:
        producer.send([resolved])
        producer.flush()
        wait_until(lambda: len(state.delivered()) == 3, 60, "the resolution delivered")
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0, log.read_text()[-3000:]

    assert all(r["signed"] for r in state.requests)
    refused, *delivered = state.requests
    assert refused["status"] == 503 and refused["delivery"] == delivered[0]["delivery"]
    assert [(r["event"], r["body"]["event_id"]) for r in delivered] == [
        (TRIGGERED, fired.message_id),
        (TRIGGERED, other.message_id),
        (RESOLVED, resolved.message_id),
    ]
    assert delivered[0]["body"]["payload"]["alert_id"] == fired.payload["alert_id"]
    assert len({r["delivery"] for r in delivered}) == 3
    (report,) = reports.of_type(DISABLED)
    assert report.payload["webhook"] == "gone" and report.payload["failures"] == 2
    assert "token" not in report.payload["url"]
