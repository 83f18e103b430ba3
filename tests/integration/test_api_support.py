"""The API as deployed, for the API tests: ``python -m api`` processes (real uvicorn on free
ports) in front of the real foundation processor (default configs, simulated providers), the
real broker and real Redis. No test lives here; the test modules import these fixtures."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from confluent_kafka.admin import AdminClient

from api.auth import hash_key
from streams.local_jvm import free_ports
from streams.topics import TopicCatalog, ensure_topics, load_topic_catalog
from tests.integration.processes import REPO, start_processor

FOUNDATION = "processors.foundation.processor:PROCESSOR"
READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Tenant:
    name: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@dataclass
class ApiProcess:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    def wait_ready(
        self, timeout_s: float = READY_TIMEOUT_S, needs: tuple[str, ...] = ("kafka", "clickhouse")
    ) -> None:
        """Until ``/readyz`` reports ``needs`` ok: the replica's hub is positioned on the event
        topics and (by default) the projections answer. Polled, bounded."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                checks = httpx.get(f"{self.url}/readyz", timeout=5).json()["checks"]
                if all(checks[need] == "ok" for need in needs):
                    return
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            time.sleep(0.05)  # poll interval of a bounded wait, not a synchronisation
        raise AssertionError(f"API not ready in {timeout_s}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """Graceful: uvicorn finishes, then re-raises the SIGTERM it caught (exit -15)."""
        self.process.terminate()
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        log = self.log.read_text()
        assert code in (0, -signal.SIGTERM) and "Traceback" not in log, log[-3000:]


def launch_api(workdir: Path, config_path: Path, **env: str) -> ApiProcess:
    """``python -m api`` on a free port with ``env`` on top of this process's environment."""
    port = free_ports(1)[0]
    log = workdir / f"api-{port}.log"
    environment = {
        **os.environ,
        "API_GATEWAY_PORT": str(port),
        "API_CONFIG": str(config_path),
        "LOG_LEVEL": "WARNING",
        **env,
    }
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "api"], cwd=REPO, env=environment, stdout=out, stderr=out
        )
    return ApiProcess(process, port, log)


@dataclass
class Stack:
    """One topic namespace with its processor and API replicas."""

    bootstrap: str
    topics: TopicCatalog
    redis_url: str
    workdir: Path
    config_path: Path
    tenants: dict[str, Tenant]
    apis: list[ApiProcess] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    query_port: int = field(default_factory=lambda: free_ports(1)[0])

    @property
    def api(self) -> ApiProcess:
        return self.apis[0]

    @property
    def prefix(self) -> str:
        return self.topics.topics[0].name.removesuffix("commands.llm")

    def start_api(self, **env: str) -> ApiProcess:
        stack_env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "TOPIC_PREFIX": self.prefix,
            "REDIS_URL": self.redis_url,
            "PROJECTIONS_QUERY_URL": f"http://127.0.0.1:{self.query_port}",
        }
        api = launch_api(self.workdir, self.config_path, **{**stack_env, **env})
        self.apis.append(api)
        return api

    def start_foundation(
        self,
        shared_state: bool = True,
        configs: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """``shared_state``: budgets, cache and breakers in Redis (else in the process).
        ``configs``: layer 1's config folder; by default the repo's, but with output
        redaction off so answers stream delta by delta."""
        if configs is None:
            configs = self.workdir / "foundation-configs"
            shutil.copytree(REPO / "configs", configs, dirs_exist_ok=True)
            guardrails = yaml.safe_load((configs / "guardrails.yaml").read_text())
            for policy in guardrails["policies"].values():
                policy["output"] = {"pii": None}
            (configs / "guardrails.yaml").write_text(yaml.safe_dump(guardrails))
        self.processes.append(
            start_processor(
                FOUNDATION,
                self.bootstrap,
                self.topics,
                f"foundation-{uuid.uuid4().hex}",
                self.workdir / "foundation.log",
                env={
                    "REDIS_URL": self.redis_url if shared_state else "",
                    "FOUNDATION_CONFIG_DIR": str(configs),
                    **(env or {}),
                },
            )
        )

    def start_projector(self) -> None:
        """The projections layer's projector on embedded chDB, with its query endpoint."""
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "TOPIC_PREFIX": self.prefix,
            "PROJECTIONS_DATA_DIR": str(self.workdir / "chdb"),
            "PROJECTIONS_QUERY_PORT": str(self.query_port),
            "PROJECTIONS_GROUP_ID": f"projector-{uuid.uuid4().hex}",
        }
        with open(self.workdir / "projector.log", "ab") as out:
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "projections", "run"],
                    cwd=REPO,
                    env=env,
                    stdout=out,
                    stderr=out,
                )
            )

    def stop(self) -> None:
        """Everything is stopped even when one of them fails; then failures are reported."""
        failures = []
        for api in self.apis:
            try:
                api.stop()
            except (AssertionError, subprocess.TimeoutExpired) as failure:
                failures.append(str(failure))
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                code = process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
            if code != 0:
                failures.append(f"{process.args} exited {code}")
        assert not failures, failures


def write_api_config(
    path: Path, tenants: dict[str, Tenant], admins: dict[str, str] | None = None, **sections: Any
) -> Path:
    """Keys for ``tenants`` (stored hashed, as in production), generous limits unless a key's
    name starts with ``limited`` (2 requests a minute); ``admins``: admin keys by id."""
    keys = []
    for name, tenant in tenants.items():
        key: dict[str, Any] = {"id": name, "tenant": tenant.name, "sha256": hash_key(tenant.key)}
        if name.startswith("limited"):
            key["limits"] = {"rpm": 2, "tpm": 1_000_000}
        keys.append(key)
    admin_keys = [{"id": id_, "sha256": hash_key(key)} for id_, key in (admins or {}).items()]
    config = {
        "auth": {"keys": keys, "admin_keys": admin_keys},
        "limits": {"default": {"rpm": 100_000, "tpm": 100_000_000}, "max_body_bytes": 65536},
        "feed": {"heartbeat_s": 0.5, "client_queue": 1000, "tenant_buffer": 5000},
        **sections,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def make_tenants() -> dict[str, Tenant]:
    run = uuid.uuid4().hex[:6]
    return {
        name: Tenant(f"{name}-{run}" if not name.startswith("limited") else f"a-{run}", key)
        for name, key in (
            ("a", f"sk-test-a-{uuid.uuid4().hex}"),
            ("b", f"sk-test-b-{uuid.uuid4().hex}"),
            ("limited", f"sk-test-l-{uuid.uuid4().hex}"),
        )
    }


@contextmanager
def running_stack(
    bootstrap: str,
    redis_url: str,
    workdir: Path,
    foundation_shared_state: bool = True,
    foundation_configs: Path | None = None,
    env: dict[str, str] | None = None,
    admins: dict[str, str] | None = None,
) -> Iterator[Stack]:
    """Topics of their own, the foundation processor, the projector and one API replica;
    ``env`` is added to the foundation processor's environment (provider keys)."""
    topics = load_topic_catalog(prefix=f"t{uuid.uuid4().hex[:10]}.")
    ensure_topics(AdminClient({"bootstrap.servers": bootstrap}), topics)
    tenants = make_tenants()
    config = write_api_config(workdir / "api.yaml", tenants, admins)
    running = Stack(bootstrap, topics, redis_url, workdir, config, tenants)
    try:
        running.start_foundation(foundation_shared_state, foundation_configs, env or {})
        running.start_projector()
        running.start_api().wait_ready()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def stack(
    bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with running_stack(bootstrap, redis_url, tmp_path_factory.mktemp("api")) as running:
        yield running
