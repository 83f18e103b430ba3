"""The one thread a reader's blocking consumer and transaction calls run on, off its event loop:
a slow broker must not stall the work in flight, and a rebalance callback (fired inside such a
call) may wait on work the loop is still finishing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["KafkaThread"]

T = TypeVar("T")


class KafkaThread:
    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka")

    async def run(self, function: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def shutdown(self) -> None:
        self._executor.shutdown()
