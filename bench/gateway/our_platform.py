"""Our platform as a contender: ``python -m streams up`` in front of the fake upstream.

That is the production shape on one machine: a local Kafka broker, then every process of
``configs/platform.yaml`` (the API and the foundation processor, each its own OS process),
with a Redis of its own for the shared cache, budgets, breakers and run records. Layer 1 reads
a config folder written for the run: one OpenAI-compatible provider (the upstream), the
project's guardrail policies, a budget large enough never to refuse, the exact cache on (every
prompt is unique, so each request is a miss that still pays the lookup and the store). It runs
from the project's own virtualenv; the benchmark's venv only starts and measures it.

The API runs with authentication on, as in production: the run's ``api.yaml`` (the project's,
with ``API_CONFIG`` pointing at the copy) holds one fresh key, by its SHA-256, whose rate limits
are lifted so that the benchmark measures the gateway and not its limiter.

It can run only once the API serves ``POST /v1/chat/completions``; until then ``start`` raises
``ContenderUnavailable`` saying so."""

from __future__ import annotations

import hashlib
import secrets
import shutil
import subprocess
from pathlib import Path

import yaml
from contenders import BENCH_DIR, UPSTREAM_KEY, UPSTREAM_MODEL, Contender, Endpoint
from processes import (
    ContenderUnavailable,
    ManagedProcess,
    free_port,
    options,
    probe_chat,
    wait_http,
)

__all__ = ["OurPlatform", "OurPlatformEmbedded"]

PROJECT_DIR = BENCH_DIR.parents[1]
_CHAT_PATH = "/v1/chat/completions"
_KEY_ENV = "BENCH_UPSTREAM_API_KEY"
_TENANT = "bench"
_UNLIMITED = {"rpm": 10**9, "tpm": 10**12}
_STARTUP_S = 240.0  # the broker is a JVM and the topics are created before the API starts

_HAS_CHAT_ROUTE = f"""
import sys
from api.app import create_app
operations = create_app().openapi()["paths"].get({_CHAT_PATH!r}, {{}})
sys.exit(0 if "post" in operations else 3)
"""


class OurPlatform(Contender):
    """The production shape: shared state (budgets, cache, breakers, run log, rate limits) in
    a Redis of its own, as more than one replica requires."""

    name = "platform"
    shared_state = True

    def python(self) -> Path:
        return PROJECT_DIR / ".venv" / "bin" / "python"

    def check_available(self) -> None:
        """Raise ``ContenderUnavailable`` unless the project can serve chat completions."""
        python = self.python()
        if not python.exists():
            raise ContenderUnavailable(f"{python} missing: run ./dev setup first")
        if self.shared_state and shutil.which("redis-server") is None:
            raise ContenderUnavailable("redis-server missing (apt-get install redis-server)")
        result = subprocess.run(  # noqa: S603 - fixed script, our interpreter
            [str(python), "-c", _HAS_CHAT_ROUTE],
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode == 3:
            raise ContenderUnavailable(
                f"not available yet: api/ serves no POST {_CHAT_PATH} (layer 5 is not built)"
            )
        if result.returncode != 0:
            raise ContenderUnavailable(f"api/ failed to load:\n{result.stderr.strip()[-2000:]}")

    def start(self, upstream_url: str, workdir: Path) -> Endpoint:
        self.check_available()
        api_port, kafka_port = free_port(), free_port()
        shared_state = {"REDIS_URL": self._start_redis(workdir)} if self.shared_state else {}
        config_dir = workdir / "platform-configs"
        self._write_configs(config_dir, upstream_url)
        api_key = "sk-plat-bench-" + secrets.token_urlsafe(32)
        self._write_api_config(config_dir / "api.yaml", api_key)
        platform = ManagedProcess(
            self.name,
            [
                str(self.python()),
                *("-m", "streams", "up"),
                *options(
                    {
                        "--data-dir": workdir / "platform-data",
                        "--kafka-port": kafka_port,
                        "--metrics-ports-from": 0,  # ephemeral, as its other ports are free ones
                    }
                ),
            ],
            workdir,
            env={
                "API_HOST": "127.0.0.1",
                "API_GATEWAY_PORT": str(api_port),
                "FOUNDATION_CONFIG_DIR": str(config_dir),
                "API_CONFIG": str(config_dir / "api.yaml"),
                **shared_state,
                "PROJECTIONS_DATA_DIR": str(workdir / "platform-data" / "chdb"),
                "LOG_LEVEL": "WARNING",
                _KEY_ENV: UPSTREAM_KEY,
            },
            cwd=PROJECT_DIR,
        )
        self.processes.append(platform)
        platform.start()
        base = f"http://127.0.0.1:{api_port}"
        wait_http(f"{base}/healthz", platform, timeout_s=_STARTUP_S)
        endpoint = Endpoint(f"{base}{_CHAT_PATH}", headers={"Authorization": f"Bearer {api_key}"})
        # ready means a chat completion went through every process, not what /readyz checks
        probe_chat(endpoint.url, endpoint.model, endpoint.headers, platform, timeout_s=_STARTUP_S)
        return endpoint

    def _start_redis(self, workdir: Path) -> str:
        port = free_port()
        redis = ManagedProcess(
            "platform-redis",
            [
                "redis-server",
                *options({"--bind": "127.0.0.1", "--port": port, "--appendonly": "no"}),
                *("--save", ""),  # no snapshots: the cache and budgets live for one run
            ],
            workdir,
        )
        self.processes.append(redis)
        redis.start()
        return f"redis://127.0.0.1:{port}/0"

    def _write_configs(self, config_dir: Path, upstream_url: str) -> None:
        """Layer 1's four files, routed to the upstream only."""
        config_dir.mkdir(parents=True, exist_ok=True)
        files: dict[str, object] = {
            "providers.yaml": {
                "providers": {
                    "bench-upstream": {
                        "kind": "openai",
                        "base_url": f"{upstream_url}/v1",
                        "api_key_env": _KEY_ENV,
                        "timeout_ms": 30_000,
                        "max_in_flight": 4_000,
                        "models": {
                            UPSTREAM_MODEL: {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0}
                        },
                    }
                }
            },
            "routing.yaml": {
                "routes": [
                    {
                        "id": "default",
                        "match": {"mode": "*", "tenant": "*"},
                        "policy": {
                            "primary": {"provider": "bench-upstream", "model": UPSTREAM_MODEL}
                        },
                        "retry": {"max_attempts": 2, "base_delay_ms": 50, "max_delay_ms": 1000},
                        "cache": {"exact": True, "ttl_s": 3600, "semantic": False},
                    }
                ]
            },
            "budgets.yaml": {
                "tenants": {
                    "*": {
                        "windows": {"minute": {"tokens": 10**12, "cost_usd": 10**9}},
                        "per_request": {"max_tokens": 32_000},
                    }
                }
            },
        }
        for name, content in files.items():
            (config_dir / name).write_text(yaml.safe_dump(content, sort_keys=False))
        shutil.copyfile(PROJECT_DIR / "configs" / "guardrails.yaml", config_dir / "guardrails.yaml")

    @staticmethod
    def _write_api_config(path: Path, api_key: str) -> None:
        """The project's ``configs/api.yaml`` with one key for the benchmark and no limits."""
        config = yaml.safe_load((PROJECT_DIR / "configs" / "api.yaml").read_text()) or {}
        digest = hashlib.sha256(api_key.encode()).hexdigest()
        config.setdefault("auth", {})["keys"] = [
            {"id": "bench", "tenant": _TENANT, "sha256": digest, "limits": dict(_UNLIMITED)}
        ]
        config.setdefault("limits", {})["default"] = dict(_UNLIMITED)
        path.write_text(yaml.safe_dump(config, sort_keys=False))

    def describe(self) -> str:
        state = "Redis" if self.shared_state else "each process (no Redis: the embedded default)"
        return (
            "`python -m streams up` (local Kafka broker, then each process of "
            f"configs/platform.yaml: {', '.join(self._platform_processes())})"
            f"{' with its own redis-server' if self.shared_state else ''}; on: API key auth, "
            "rate limits, bounded admission, guardrails on input and output (the project's "
            f"policies), budgets reserved and settled, exact cache (every request a miss), "
            f"breakers, the run log (shared state in {state}), every event persisted to Kafka "
            "(acks=all) and projected into ClickHouse (embedded chDB) by the projector"
        )

    def _platform_processes(self) -> list[str]:
        config = yaml.safe_load((PROJECT_DIR / "configs" / "platform.yaml").read_text()) or {}
        services = [f"python -m {s['module']}" for s in config.get("services", [])]
        return [*config.get("processors", []), *services]

    def version(self) -> str:
        result = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            check=False,
        )
        return f"git {result.stdout.strip() or 'unknown'}"


class OurPlatformEmbedded(OurPlatform):
    """``./dev up`` as it is: shared state in each process, no Redis (one replica)."""

    name = "platform-embedded"
    shared_state = False
