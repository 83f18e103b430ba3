"""A foundation pipeline wired to fake providers on real sockets and a real Redis namespace."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from processors.foundation.live_config import LiveConfig
from processors.foundation.pipeline import ChatPipeline
from processors.foundation.provider_pool import ProviderPool
from processors.foundation.stores import Stores, connect
from streams.envelope import Envelope

PRIMARY_KEY = "sk-test-primary-0123456789abcdef"
FALLBACK_KEY = "sk-ant-test-fallback-0123456789"
ENV = {"FAKE_OPENAI_KEY": PRIMARY_KEY, "FAKE_ANTHROPIC_KEY": FALLBACK_KEY}


def write_config(
    directory: Path, primary_url: str, fallback_url: str, **sections: dict[str, Any]
) -> Path:
    """The four files; ``sections`` replaces a whole file's content (providers, routing,
    guardrails, budgets)."""
    files: dict[str, dict[str, Any]] = {
        "providers": {
            "providers": {
                "primary": {
                    "kind": "openai",
                    "base_url": primary_url,
                    "api_key_env": "FAKE_OPENAI_KEY",
                    "timeout_ms": 3000,
                    "models": {"gpt-x": {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0}},
                },
                "fallback": {
                    "kind": "anthropic",
                    "base_url": fallback_url,
                    "api_key_env": "FAKE_ANTHROPIC_KEY",
                    "timeout_ms": 3000,
                    "models": {
                        "claude-x": {"input_usd_per_mtok": 3.0, "output_usd_per_mtok": 15.0}
                    },
                },
            }
        },
        "routing": {
            "routes": [
                {
                    "id": "default",
                    "policy": {
                        "primary": {"provider": "primary", "model": "gpt-x"},
                        "fallbacks": [{"provider": "fallback", "model": "claude-x"}],
                    },
                    "retry": {"max_attempts": 2, "base_delay_ms": 1, "max_delay_ms": 5},
                }
            ],
            "breaker": {"failure_threshold": 5, "window_s": 30, "open_for_s": 10},
        },
        "guardrails": {
            "policies": {"standard": {"pii": {"action": "redact"}}},
            "tenants": {"*": "standard"},
        },
        "budgets": {"tenants": {"*": {"windows": {"minute": {"tokens": 10_000_000}}}}},
    }
    files.update(sections)
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / f"{name}.yaml").write_text(yaml.safe_dump(content, sort_keys=False))
    return directory


@dataclass
class FakeClock:
    """Wall time the test moves forward (breaker windows, budget windows, deadlines)."""

    now: float

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    pipeline: ChatPipeline
    stores: Stores
    clock: FakeClock
    providers: ProviderPool = field(default_factory=ProviderPool)

    async def run(self, command: Envelope) -> list[Envelope]:
        return await self.pipeline.handle(command)

    async def close(self) -> None:
        await self.providers.aclose()
        await self.stores.aclose()


REDIS_TIMEOUT_S = 5.0


def harness(
    config_dir: Path,
    redis_url: str | None,
    namespace: str,
    now: float,
    redis_timeout_s: float = REDIS_TIMEOUT_S,
) -> Harness:
    """Build inside the running event loop (the Redis and HTTP clients bind to it). Redis
    calls get a generous timeout: these scenarios run a hundred runs at once on one loop, and
    on a loaded machine the production 0.5 s would fail them on the loop's lag, not on Redis
    (tests/integration/test_stores.py covers the short timeout)."""
    stores = connect(redis_url, namespace=namespace, timeout_s=redis_timeout_s)
    clock = FakeClock(now)
    providers = ProviderPool(ENV)
    pipeline = ChatPipeline(
        LiveConfig(config_dir, check_interval_s=0.0),
        stores,
        providers,
        clock=clock,
    )
    return Harness(pipeline, stores, clock, providers)


def terminal(outputs: list[Envelope]) -> Envelope:
    [last] = [
        o
        for o in outputs
        if o.message_type.startswith("llm.request.") and o.message_type != "llm.request.started"
    ]
    return last


def of_type(outputs: list[Envelope], message_type: str) -> list[Envelope]:
    return [o for o in outputs if o.message_type == message_type]
