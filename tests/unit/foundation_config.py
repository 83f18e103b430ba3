"""A small layer-1 config for tests that drive the pipeline without sockets: a primary and a
fallback target, two attempts each, PII redacted on input and output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from processors.foundation.config import FoundationConfig

FILES: dict[str, dict[str, Any]] = {
    "providers": {
        "providers": {
            "primary": {
                "kind": "openai",
                "base_url": "http://primary.invalid",
                "api_key_env": "K1",
                "models": {"gpt-x": {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0}},
            },
            "fallback": {
                "kind": "anthropic",
                "base_url": "http://fallback.invalid",
                "api_key_env": "K2",
                "models": {"claude-x": {"input_usd_per_mtok": 3.0, "output_usd_per_mtok": 15.0}},
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
                "retry": {"max_attempts": 2, "base_delay_ms": 10, "max_delay_ms": 20},
            }
        ],
    },
    "guardrails": {
        "policies": {
            "standard": {"pii": {"action": "redact"}, "output": {"pii": {"action": "redact"}}}
        },
        "tenants": {"*": "standard"},
    },
    "budgets": {"tenants": {"*": {"windows": {"minute": {"tokens": 1_000_000}}}}},
}


def config() -> FoundationConfig:
    return FoundationConfig.model_validate(FILES)


def write_config(directory: Path) -> Path:
    for name, content in FILES.items():
        (directory / f"{name}.yaml").write_text(yaml.safe_dump(content, sort_keys=False))
    return directory
