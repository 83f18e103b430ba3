"""Real services for the test session: a local Kafka broker (unless KAFKA_BOOTSTRAP_SERVERS
names one), started once and stopped at the end; each test gets its own topic namespace."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from confluent_kafka.admin import AdminClient

from streams.local_jvm import free_ports
from streams.local_kafka import LocalKafka
from streams.local_registry import LocalSchemaRegistry
from streams.topics import TopicCatalog, ensure_topics, load_topic_catalog


@pytest.fixture(scope="session")
def kafka() -> Iterator[LocalKafka | str]:
    """The broker handle (restartable) or, when one is configured, just its address."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    with LocalKafka() as broker:
        yield broker


@pytest.fixture(scope="session")
def bootstrap(kafka: LocalKafka | str) -> str:
    return kafka if isinstance(kafka, str) else kafka.bootstrap_servers


@pytest.fixture
def topics(bootstrap: str) -> TopicCatalog:
    """The repo's topic catalog under a fresh prefix, created on the broker."""
    catalog = load_topic_catalog(prefix=f"t{uuid.uuid4().hex[:10]}.")
    ensure_topics(AdminClient({"bootstrap.servers": bootstrap}), catalog)
    return catalog


@pytest.fixture(scope="session")
def schema_registry_url() -> Iterator[str]:
    """A real Confluent-compatible Schema Registry (SCHEMA_REGISTRY_URL, or a local Apicurio)."""
    configured = os.environ.get("SCHEMA_REGISTRY_URL")
    if configured:
        yield configured
        return
    with LocalSchemaRegistry() as registry:
        yield registry.url


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis (REDIS_URL, or a throwaway ``redis-server`` on a free loopback port, without
    persistence), answering PING before any test uses it; stopped at the end of the session."""
    configured = os.environ.get("REDIS_URL")
    if configured:
        yield configured
        return
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server not found on PATH (apt-get install redis-server)")
    port = free_ports(1)[0]
    workdir = tmp_path_factory.mktemp("redis")
    log = (workdir / "redis.log").open("wb")
    argv = [server, "--save", "", "--appendonly", "no", "--port", str(port)]
    proc = subprocess.Popen(
        [*argv, "--bind", "127.0.0.1", "--dir", str(workdir)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_redis(proc, port, workdir / "redis.log")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait_for_redis(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    client = redis.Redis(port=port, socket_timeout=0.5, socket_connect_timeout=0.5)
    deadline = time.monotonic() + 15
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"redis-server exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if client.ping():
                    return
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)  # poll interval, bounded by the deadline
        pytest.fail(f"redis-server on port {port} did not answer PING within 15 s")
    finally:
        client.close()


@pytest.fixture
def store_namespace() -> str:
    """A key prefix of its own for each test, so tests sharing one Redis never collide."""
    return f"t{uuid.uuid4().hex[:10]}"
