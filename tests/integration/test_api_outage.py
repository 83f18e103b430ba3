"""Kafka unreachable: the API answers 503 (structured, retryable) within a bounded wait and
never tells a client "accepted" for a command the broker did not acknowledge. A broker of its
own, stopped and restarted under a running API replica."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
from confluent_kafka.admin import AdminClient

from streams.local_jvm import free_ports
from streams.local_kafka import LocalKafka
from streams.topics import ensure_topics, load_topic_catalog
from tests.integration.kafka_reading import end_offsets
from tests.integration.test_api_support import Stack, make_tenants, write_api_config

PUBLISH_TIMEOUT_S = 2.0
SUBMIT = {"workflow": "demo", "input": {"x": 1}}


def test_broker_down_means_503_and_nothing_published(redis_url: str, tmp_path: Path) -> None:
    tenants = make_tenants()
    config = write_api_config(
        tmp_path / "api.yaml", tenants, chat={"publish_timeout_s": PUBLISH_TIMEOUT_S}
    )
    topics = load_topic_catalog(prefix=f"t{uuid.uuid4().hex[:10]}.")
    with LocalKafka(tmp_path / "kafka", port=free_ports(1)[0]) as kafka:
        ensure_topics(AdminClient({"bootstrap.servers": kafka.bootstrap_servers}), topics)
        stack = Stack(kafka.bootstrap_servers, topics, redis_url, tmp_path, config, tenants)
        api = stack.start_api()
        try:
            api.wait_ready(needs=("kafka",))  # no projector here
            with httpx.Client(base_url=api.url, headers=tenants["a"].headers, timeout=30) as http:
                assert http.post("/v1/workflows/submit", json=SUBMIT).status_code == 202
                kafka.stop()
                started = time.monotonic()
                refused = http.post("/v1/workflows/submit", json=SUBMIT)
                waited = time.monotonic() - started
                kafka.start()
                workflow_topic = topics.topic_for("workflow.run.requested")
                assert sum(end_offsets(kafka.bootstrap_servers, workflow_topic).values()) == 1
                recovered = http.post("/v1/workflows/submit", json=SUBMIT)
        finally:
            stack.stop()
    assert refused.status_code == 503, refused.text
    error = refused.json()["error"]
    assert (error["code"], error["retryable"]) == ("DEPENDENCY_UNAVAILABLE", True)
    assert error["correlation_id"] == refused.headers["x-correlation-id"]
    assert PUBLISH_TIMEOUT_S <= waited < PUBLISH_TIMEOUT_S + 3, waited
    assert recovered.status_code == 202, recovered.text


def test_no_broker_at_start_is_503_at_once(redis_url: str, tmp_path: Path) -> None:
    tenants = make_tenants()
    config = write_api_config(tmp_path / "api.yaml", tenants)
    dead = f"127.0.0.1:{free_ports(1)[0]}"
    stack = Stack(dead, load_topic_catalog(), redis_url, tmp_path, config, tenants)
    api = stack.start_api()
    try:
        deadline = time.monotonic() + 30
        while True:  # up, though not ready: polled, bounded
            try:
                ready = httpx.get(f"{api.url}/readyz", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, api.log.read_text()
                time.sleep(0.05)
        refused = httpx.post(
            f"{api.url}/v1/chat/completions",
            headers=tenants["a"].headers,
            json={"messages": [{"role": "user", "content": "hi"}]},
        )
    finally:
        stack.stop()
    assert ready.status_code == 503
    assert ready.json()["error"]["code"] == "DEPENDENCY_UNAVAILABLE"
    assert refused.status_code == 503
    assert refused.json()["error"]["retryable"] is True
