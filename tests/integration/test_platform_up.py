"""README's first command: the platform on embedded defaults, its own broker included."""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.integration.processes import REPO


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


def test_up_runs_broker_topics_and_api_then_stops_cleanly(tmp_path: Path) -> None:
    api_port, kafka_port, query_port = free_port(), free_port(), free_port()
    unset = ("KAFKA_BOOTSTRAP_SERVERS", "PROJECTIONS_DATA_DIR", "CLICKHOUSE_URL")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(
        {
            "API_GATEWAY_PORT": str(api_port),
            "PROJECTIONS_QUERY_PORT": str(query_port),
            "PROJECTIONS_QUERY_URL": f"http://127.0.0.1:{query_port}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streams",
            "up",
            "--data-dir",
            str(tmp_path),
            "--kafka-port",
            str(kafka_port),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
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
        first_call = httpx.post(  # README's "First call", as a newcomer copies it
            f"{base}/v1/chat/completions",
            headers={"Authorization": "Bearer local-dev"},
            json={"messages": [{"role": "user", "content": "Hello"}]},
            timeout=60,
        )
        assert first_call.status_code == 200, first_call.text
        assert first_call.json()["choices"][0]["message"]["content"]
        assert any((tmp_path / "chdb").iterdir()), "chDB is not under the data dir"
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=90)
    assert code == 0
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", kafka_port)) != 0, "the broker outlived the platform"
