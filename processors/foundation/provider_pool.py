"""Provider clients for the config in force: built once per config version, so connection
pools are reused across runs, and rebuilt when ``providers.yaml`` changes."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping

from processors.foundation.config import FoundationConfig
from processors.foundation.providers import Provider, build_provider

__all__ = ["ProviderPool"]


class ProviderPool:
    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        self._environ = environ
        self._built_for: FoundationConfig | None = None
        self._providers: dict[str, Provider] = {}
        self._retired: set[asyncio.Task[None]] = set()

    def for_config(self, config: FoundationConfig) -> dict[str, Provider]:
        """Enabled providers by name; a reloaded config gets fresh clients, the old ones are
        closed in the background once their in-flight calls no longer need them."""
        if config is not self._built_for:
            old = list(self._providers.values())
            self._providers = {
                name: build_provider(name, settings, self._environ)
                for name, settings in config.providers.providers.items()
                if settings.enabled
            }
            self._built_for = config
            for provider in old:
                task = asyncio.ensure_future(provider.aclose())
                self._retired.add(task)
                task.add_done_callback(self._retired.discard)
        return self._providers

    @staticmethod
    def timeouts(config: FoundationConfig) -> dict[str, float]:
        return {name: s.timeout_ms / 1000 for name, s in config.providers.providers.items()}

    @staticmethod
    def idle_timeouts(config: FoundationConfig) -> dict[str, float]:
        """How long a begun stream may go quiet, per provider that sets a bound."""
        return {
            name: s.stream_idle_timeout_ms / 1000
            for name, s in config.providers.providers.items()
            if s.stream_idle_timeout_ms is not None
        }

    async def aclose(self) -> None:
        await asyncio.gather(*(p.aclose() for p in self._providers.values()))
        self._providers = {}
        self._built_for = None
