"""The foundation processor: ``python -m streams run processors.foundation:PROCESSOR``.

Config from ``FOUNDATION_CONFIG_DIR`` (default ``configs/``); shared state in Redis when
``REDIS_URL`` is set (required with more than one replica), in process otherwise."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

from processors.foundation.live_config import LiveConfig
from processors.foundation.pipeline import ChatPipeline
from processors.foundation.provider_pool import ProviderPool
from processors.foundation.stores import connect
from streams.envelope import Envelope
from streams.processing import Processor

__all__ = ["PROCESSOR", "build_pipeline"]

_CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
_MAX_IN_FLIGHT = 16  # per partition; 6 partitions x 16 runs fit the Redis pool (64)


def build_pipeline(config_dir: Path | None = None, redis_url: str | None = None) -> ChatPipeline:
    stores = connect(redis_url)
    return ChatPipeline(
        LiveConfig(config_dir or Path(os.environ.get("FOUNDATION_CONFIG_DIR", _CONFIG_DIR))),
        stores,
        ProviderPool(),
    )


class _LazyPipeline:
    """Built on the first message, inside the runner's event loop (clients bind to it)."""

    def __init__(self) -> None:
        self._pipeline: ChatPipeline | None = None

    async def __call__(self, command: Envelope) -> AsyncIterator[Envelope]:
        if self._pipeline is None:
            self._pipeline = build_pipeline(redis_url=os.environ.get("REDIS_URL") or None)
        async for output in self._pipeline.stream(command):
            yield output


PROCESSOR = Processor(
    name="foundation",
    layer=1,
    accepts=frozenset({"llm.chat.requested"}),
    handler=_LazyPipeline(),
    max_in_flight_per_partition=_MAX_IN_FLIGHT,
    max_attempts=1,
)
