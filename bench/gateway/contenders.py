"""The gateways under test, each started in its recommended production setup on this machine.

A contender is three things: how to start it in front of the fake upstream, the endpoint a
client calls (URL, model name, headers), and how to stop it. ``roots()`` names the processes
whose trees are charged with its CPU and memory. Versions are pinned in ``requirements.txt``
(LiteLLM) and ``package-lock.json`` (Portkey), outside the project's own dependencies."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import ClassVar

import yaml
from processes import (
    ContenderUnavailable,
    ManagedProcess,
    free_port,
    options,
    probe_chat,
    wait_http,
)

__all__ = ["BENCH_DIR", "Baseline", "Contender", "Endpoint", "LiteLLM", "Portkey"]

BENCH_DIR = Path(__file__).resolve().parent
UPSTREAM_MODEL = "bench-model"
UPSTREAM_KEY = "sk-bench-upstream"  # the fake upstream accepts any key; gateways need one


@dataclass(frozen=True)
class Endpoint:
    url: str  # the full chat completions URL
    model: str = UPSTREAM_MODEL
    headers: dict[str, str] = field(default_factory=dict)


class Contender(ABC):
    name: ClassVar[str]

    def __init__(self) -> None:
        self.processes: list[ManagedProcess] = []

    @abstractmethod
    def start(self, upstream_url: str, workdir: Path) -> Endpoint:
        """Start in front of ``upstream_url`` (``http://host:port``), return once it answers."""

    @abstractmethod
    def describe(self) -> str:
        """How it runs, one line for the report."""

    def version(self) -> str:
        return ""

    def roots(self) -> list[int]:
        return [p.pid for p in self.processes if p.alive()]

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()


class Baseline(Contender):
    """The upstream called directly: the latency every gateway adds to."""

    name = "baseline"

    def start(self, upstream_url: str, workdir: Path) -> Endpoint:
        return Endpoint(f"{upstream_url}/v1/chat/completions")

    def describe(self) -> str:
        return "the fake upstream called directly, no gateway"


class LiteLLM(Contender):
    """``litellm --config`` with the upstream as an OpenAI-compatible model; one uvicorn worker
    per CPU (LiteLLM's production guide), no database, debug logging off."""

    name = "litellm"
    master_key = "sk-bench-litellm"

    def start(self, upstream_url: str, workdir: Path) -> Endpoint:
        executable = BENCH_DIR / ".venv" / "bin" / "litellm"
        if not executable.exists():
            raise ContenderUnavailable(f"{executable} missing: run bench/gateway/setup.sh")
        config = workdir / "litellm.yaml"
        config.write_text(yaml.safe_dump(self._config(upstream_url), sort_keys=False))
        port = free_port()
        process = ManagedProcess(
            self.name,
            [
                str(executable),
                *options(
                    {
                        "--config": config,
                        "--host": "127.0.0.1",
                        "--port": port,
                        "--num_workers": self.workers(),
                    }
                ),
            ],
            workdir,
            env={
                "LITELLM_LOG": "ERROR",
                "LITELLM_MODE": "PRODUCTION",
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no network fetch at startup
            },
            cwd=workdir,
        )
        self.processes.append(process)
        process.start()
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/health/liveliness", process, timeout_s=120)
        endpoint = Endpoint(
            f"{base}/v1/chat/completions",
            headers={"Authorization": f"Bearer {self.master_key}"},
        )
        probe_chat(endpoint.url, endpoint.model, endpoint.headers, process, timeout_s=60)
        return endpoint

    @staticmethod
    def workers() -> int:
        return os.cpu_count() or 1

    def _config(self, upstream_url: str) -> dict[str, object]:
        return {
            "model_list": [
                {
                    "model_name": UPSTREAM_MODEL,
                    "litellm_params": {
                        "model": f"openai/{UPSTREAM_MODEL}",
                        "api_base": f"{upstream_url}/v1",
                        "api_key": UPSTREAM_KEY,
                    },
                }
            ],
            "litellm_settings": {
                "set_verbose": False,
                "json_logs": True,
                "request_timeout": 30,
                "telemetry": False,
            },
            "general_settings": {
                "master_key": self.master_key,
                "disable_spend_logs": True,
                "disable_error_logs": True,
            },
        }

    def describe(self) -> str:
        return (
            f"`litellm --config litellm.yaml --num_workers {self.workers()}` (uvicorn, one worker "
            "per CPU), master key, no database, `LITELLM_LOG=ERROR`, `set_verbose: false`"
        )

    def version(self) -> str:
        try:
            return version("litellm")
        except PackageNotFoundError:
            return "not installed"


class Portkey(Contender):
    """The Node build of ``@portkey-ai/gateway`` (one Node process, as its ``start:node``
    script runs it), headless and ``NODE_ENV=production``; routed to the upstream by the
    ``x-portkey-provider`` and ``x-portkey-custom-host`` headers."""

    name = "portkey"

    def _package(self) -> Path:
        return BENCH_DIR / "node_modules" / "@portkey-ai" / "gateway"

    def start(self, upstream_url: str, workdir: Path) -> Endpoint:
        server = self._package() / "build" / "start-server.js"
        node = shutil.which("node")
        if node is None or not server.exists():
            raise ContenderUnavailable(
                "node or @portkey-ai/gateway missing: run bench/gateway/setup.sh"
            )
        port = free_port()
        process = ManagedProcess(
            self.name,
            [node, str(server), f"--port={port}", "--headless"],
            workdir,
            env={"NODE_ENV": "production"},
            cwd=workdir,
        )
        self.processes.append(process)
        process.start()
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/", process, timeout_s=60)
        endpoint = Endpoint(
            f"{base}/v1/chat/completions",
            headers={
                "Authorization": f"Bearer {UPSTREAM_KEY}",
                "x-portkey-provider": "openai",
                "x-portkey-custom-host": f"{upstream_url}/v1",
            },
        )
        probe_chat(endpoint.url, endpoint.model, endpoint.headers, process, timeout_s=60)
        return endpoint

    def describe(self) -> str:
        return (
            "`NODE_ENV=production node build/start-server.js --headless` (one Node process), "
            "provider `openai` with `x-portkey-custom-host` pointing at the upstream"
        )

    def version(self) -> str:
        try:
            package = json.loads((self._package() / "package.json").read_text())
        except FileNotFoundError:
            return "not installed"
        node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)  # noqa: S607
        return f"{package['version']} (node {node.stdout.strip()})"
