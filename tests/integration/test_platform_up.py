"""README's first command: the platform on embedded defaults, its own broker included."""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.processes import REPO
from tests.integration.test_projections_support import wait_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_lines(
    process: subprocess.Popen[bytes], needles: list[str], timeout_s: float
) -> list[str]:
    """Read the process's output until every needle was in some line (event-driven, bounded)."""
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while not all(any(needle in line for line in seen) for needle in needles):
        remaining = deadline - time.monotonic()
        assert remaining > 0 and process.poll() is None, "\n".join(seen[-40:])
        if selector.select(remaining):
            seen.append(process.stdout.readline().decode(errors="replace"))
    return seen


def ready_or_last(url: str, within_s: float) -> httpx.Response:
    """``/readyz`` until 200 (the API's event hub positions itself after uvicorn starts)."""
    deadline = time.monotonic() + within_s
    while True:
        response = httpx.get(url, timeout=10)
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        time.sleep(0.05)  # poll interval of a bounded wait, not a synchronisation


def free_port_block(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports."""
    for _ in range(100):
        first = free_port()
        if first + count <= 65535 and all(bindable(p) for p in range(first + 1, first + count)):
            return first
    raise AssertionError(f"no {count} consecutive free ports found")


def bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass(frozen=True)
class Ports:
    api: int
    kafka: int
    query: int
    metrics_from: int  # the children's metrics ports: this and the next five


def start_platform(data_dir: Path) -> tuple[subprocess.Popen[bytes], Ports]:
    """``python -m streams up`` as README's first command runs it, on free ports."""
    ports = Ports(free_port(), free_port(), free_port(), free_port_block(6))
    unset = ("KAFKA_BOOTSTRAP_SERVERS", "PROJECTIONS_DATA_DIR", "CLICKHOUSE_URL")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(
        {
            "API_GATEWAY_PORT": str(ports.api),
            "PROJECTIONS_QUERY_PORT": str(ports.query),
            "PROJECTIONS_QUERY_URL": f"http://127.0.0.1:{ports.query}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    argv = ["-m", "streams", "up", "--data-dir", str(data_dir), "--kafka-port", str(ports.kafka)]
    argv += ["--metrics-ports-from", str(ports.metrics_from)]
    process = subprocess.Popen(
        [sys.executable, *argv],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    return process, ports


def listening(port: int) -> bool:
    """Something accepts on ``port`` (a connect that reached itself, which TCP allows when the
    free port is also the probe's own, does not count)."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) != 0:
            return False
        return bool(probe.getsockname() != probe.getpeername())


def completed_runs(metrics_url: str) -> float:
    """``platform_llm_requests_total`` of completed runs on a metrics endpoint (0 while it does
    not answer yet)."""
    try:
        text = httpx.get(metrics_url, timeout=5).text
    except httpx.TransportError:
        return 0.0
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "platform_llm_requests_total" and sample.labels["outcome"] == "completed"
    )


def test_up_runs_broker_topics_and_api_then_stops_cleanly(tmp_path: Path) -> None:
    process, ports = start_platform(tmp_path)
    api_port, kafka_port = ports.api, ports.kafka
    try:
        output = wait_for_lines(process, ["Uvicorn running on", "query endpoint on", "auth: "], 120)
        assert f"KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{kafka_port}" in "".join(output)
        base = f"http://127.0.0.1:{api_port}"
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        ready = ready_or_last(f"{base}/readyz", within_s=60)
        assert (ready.status_code, ready.json()["checks"]) == (
            200,
            {"kafka": "ok", "clickhouse": "ok"},
        )
        metrics = httpx.get(f"{base}/metrics")
        assert metrics.status_code == 200 and "# TYPE" in metrics.text
        assert "the key 'local-dev' is the dev tenant's" in "".join(output)
        assert f"dashboard {base}/dashboard/" in "".join(output)
        assert "<title>" in httpx.get(f"{base}/dashboard/").text  # README's way to open it
        first_call = httpx.post(  # README's "First call", as a newcomer copies it
            f"{base}/v1/chat/completions",
            headers={"Authorization": "Bearer local-dev"},
            json={"messages": [{"role": "user", "content": "Hello"}]},
            timeout=60,
        )
        assert first_call.status_code == 200, first_call.text
        assert first_call.json()["choices"][0]["message"]["content"]
        # The observability processor counts it on its own metrics port, as the launcher said.
        observability = f"http://127.0.0.1:{ports.metrics_from + 1}/metrics"
        said = f"processors.observability.processor:PROCESSOR: metrics on {observability}"
        assert said in "".join(output)
        wait_until(lambda: completed_runs(observability) == 1, 60, "the run counted")
        assert any((tmp_path / "chdb").iterdir()), "chDB is not under the data dir"
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=90)
    assert code == 0
    assert not listening(kafka_port), "the broker outlived the platform"


def test_a_launcher_killed_outright_leaves_no_broker_or_service_behind(tmp_path: Path) -> None:
    process, ports = start_platform(tmp_path)
    try:
        wait_for_lines(process, ["Uvicorn running on", "query endpoint on"], 120)
        assert listening(ports.kafka) and listening(ports.api)
    finally:
        process.kill()  # SIGKILL: no handler runs, only the kernel's parent-death signal
        process.wait(timeout=30)
    deadline = time.monotonic() + 60
    named = {"broker": ports.kafka, "api": ports.api, "projector": ports.query}
    named |= {f"metrics {i}": ports.metrics_from + i for i in range(6)}
    while serving := [name for name, port in named.items() if listening(port)]:
        assert time.monotonic() < deadline, f"still serving after the launcher died: {serving}"
        time.sleep(0.1)  # poll interval of a bounded wait, not a synchronisation
