"""``python -m streams up``: the whole platform on one machine, each part in its own process.

Starts a local Kafka broker unless ``KAFKA_BOOTSTRAP_SERVERS`` names one, creates the catalog's
topics, then runs every processor and service of ``configs/platform.yaml`` and restarts any that
dies. Each child that serves Prometheus metrics gets a ``METRICS_PORT`` of its own (consecutive
ports from ``metrics_ports_from``, in the file's order), so no two bind the same one.
SIGTERM/Ctrl-C stops the children first, then the broker it started; if the launcher itself is
killed (SIGKILL), the kernel kills every child and sends the broker SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from confluent_kafka.admin import AdminClient
from pydantic import BaseModel, ConfigDict, Field

from streams.config import load_config
from streams.local_jvm import die_with_parent
from streams.local_kafka import LocalKafka
from streams.settings import Settings
from streams.topics import CONFIG_ROOT, ensure_topics
from streams.wiring import topics_for

__all__ = ["PlatformConfig", "run_platform"]

_RESTART_BACKOFF_S = 2.0
_CHECK_INTERVAL_S = 0.5
_STOP_TIMEOUT_S = 30.0


class _Service(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    module: str
    metrics_port: bool = True  # serves Prometheus metrics on METRICS_PORT


class PlatformConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metrics_ports_from: int = Field(9101, ge=0, le=65535)
    processors: list[str] = Field(default_factory=list)
    services: list[_Service] = Field(default_factory=list)

    def commands(self) -> dict[str, list[str]]:
        """Each child's argv, by name."""
        python = sys.executable
        result = {s.name: [python, "-m", s.module] for s in self.services}
        for target in self.processors:
            result[target] = [python, "-m", "streams", "run", target]
        return result

    def metrics_ports(self, first: int | None = None) -> dict[str, int]:
        """The ``METRICS_PORT`` of each child that serves metrics, by name: consecutive from
        ``first`` (default ``metrics_ports_from``) in the file's order, processors first;
        ``0`` gives every child an ephemeral port."""
        start = self.metrics_ports_from if first is None else first
        serving = [*self.processors, *(s.name for s in self.services if s.metrics_port)]
        return {name: start + i if start else 0 for i, name in enumerate(serving)}


@dataclass
class _Child:
    argv: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = field(default=0.0)


def run_platform(
    settings: Settings, data_dir: Path, kafka_port: int, metrics_ports_from: int | None = None
) -> int:
    config = load_config(CONFIG_ROOT / "platform.yaml", PlatformConfig)
    broker = None
    bootstrap = settings.kafka_bootstrap_servers
    if not bootstrap:
        broker = LocalKafka(data_dir / "kafka", kafka_port, tied_to_parent=True)
        broker.start()
        bootstrap = broker.bootstrap_servers
    try:
        settings = settings.model_copy(update={"kafka_bootstrap_servers": bootstrap})
        ensure_topics(AdminClient({"bootstrap.servers": bootstrap}), topics_for(settings))
        # The projector's embedded ClickHouse lives beside the broker's data unless set.
        env = {
            "PROJECTIONS_DATA_DIR": str(data_dir / "chdb"),
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        }
        ports = config.metrics_ports(metrics_ports_from)
        children = {
            name: _Child(argv, _child_env(env, ports.get(name)))
            for name, argv in config.commands().items()
        }
        print(f"KAFKA_BOOTSTRAP_SERVERS={bootstrap}", flush=True)
        for name, port in ports.items():
            if port:
                print(f"{name}: metrics on http://127.0.0.1:{port}/metrics", flush=True)
        _supervise(children)
    finally:
        if broker is not None:
            broker.stop()
    return 0


def _child_env(env: dict[str, str], metrics_port: int | None) -> dict[str, str]:
    """``env`` with the child's own ``METRICS_PORT``, or none: one inherited from the launcher
    would have every child bind the same port."""
    own = {name: value for name, value in env.items() if name != "METRICS_PORT"}
    if metrics_port is not None:
        own["METRICS_PORT"] = str(metrics_port)
    return own


def _supervise(children: dict[str, _Child]) -> None:
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while not stopping:
            for name, child in children.items():
                if child.process is None or child.process.poll() is not None:
                    _start(name, child)
            time.sleep(_CHECK_INTERVAL_S)
    finally:
        for child in children.values():
            if child.process is not None and child.process.poll() is None:
                child.process.terminate()
        for child in children.values():
            if child.process is not None:
                try:
                    child.process.wait(timeout=_STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    child.process.kill()


def _start(name: str, child: _Child) -> None:
    if child.process is not None:
        code = child.process.returncode
        if time.monotonic() - child.started_at < _RESTART_BACKOFF_S:
            return  # crash-looping: wait for the backoff before the next try
        child.restarts += 1
        print(f"{name} exited with {code}; restart #{child.restarts}", file=sys.stderr, flush=True)
    child.process = subprocess.Popen(  # noqa: S603 - argv from our config
        child.argv,
        env=child.env,
        # Forked from the launcher's main thread. Killed with the launcher rather than asked to
        # stop: the broker goes at the same moment, and a graceful stop would wait on it to
        # commit; what they had not committed is redelivered, as after any crash.
        preexec_fn=die_with_parent(signal.SIGKILL),
    )
    child.started_at = time.monotonic()
    print(f"started {name} (pid {child.process.pid})", flush=True)
