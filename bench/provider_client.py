"""CPU the provider HTTP client costs per call, against the fake OpenAI server of the tests run
in a process of its own, so ``time.process_time()`` here counts the client side only. CPU
milliseconds per call are CPU seconds per 1,000 calls.

    .venv/bin/python -m bench.provider_client [--calls 1000] [--concurrency 16]

Rows: bare httpx and bare aiohttp, pooled as ``JsonApi`` pools (the transport alone: send the
JSON, read the body or the SSE lines), and ``adapter``: the OpenAI adapter as the foundation
processor calls it (transport, SSE parsing, translation). Prints numbers only."""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from typing import Any, Protocol

import aiohttp
import httpx

from processors.foundation.config import ProviderSettings
from processors.foundation.providers import ChatMessage, ChatRequest, build_provider
from tests.fakes.llm_servers import OpenAIFake

__all__ = ["main"]

_PATH = "/chat/completions"
_REQUEST = ChatRequest(model="bench-model", messages=[ChatMessage("user", "the quick brown fox")])
_BODY: dict[str, Any] = {"model": "bench-model", "messages": [{"role": "user", "content": "hi"}]}
_STREAM_BODY = {**_BODY, "stream": True, "stream_options": {"include_usage": True}}
_WARM_UP_CALLS = 100


class Client(Protocol):
    async def complete(self) -> None: ...
    async def stream(self) -> None: ...
    async def aclose(self) -> None: ...


class HttpxClient:
    def __init__(self, base_url: str, pool: int) -> None:
        limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
        self._client = httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30)

    async def complete(self) -> None:
        response = await self._client.post(_PATH, json=_BODY)
        json.loads(response.raise_for_status().content)

    async def stream(self) -> None:
        async with self._client.stream("POST", _PATH, json=_STREAM_BODY) as response:
            async for _ in response.raise_for_status().aiter_lines():
                pass

    async def aclose(self) -> None:
        await self._client.aclose()


class AiohttpClient:
    def __init__(self, base_url: str, pool: int) -> None:
        self._url = base_url + _PATH
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=pool))

    async def complete(self) -> None:
        async with self._session.post(self._url, json=_BODY) as response:
            response.raise_for_status()
            json.loads(await response.read())

    async def stream(self) -> None:
        async with self._session.post(self._url, json=_STREAM_BODY) as response:
            response.raise_for_status()
            async for _ in response.content:
                pass

    async def aclose(self) -> None:
        await self._session.close()


class AdapterClient:
    def __init__(self, base_url: str, pool: int) -> None:
        settings = ProviderSettings(
            kind="openai", base_url=base_url, timeout_ms=30_000, max_in_flight=pool
        )
        self._provider = build_provider("bench", settings, {})

    async def complete(self) -> None:
        await self._provider.complete(_REQUEST, 30.0)

    async def stream(self) -> None:
        async for _ in self._provider.stream(_REQUEST, 30.0):
            pass

    async def aclose(self) -> None:
        await self._provider.aclose()


CLIENTS: dict[str, Callable[[str, int], Client]] = {
    "httpx": HttpxClient,
    "aiohttp": AiohttpClient,
    "adapter": AdapterClient,
}


async def cpu_ms_per_call(
    call: Callable[[], Awaitable[None]], calls: int, concurrency: int
) -> tuple[float, float]:
    """CPU milliseconds of this process per call, and calls per second, over ``calls`` calls
    made by ``concurrency`` workers after an unmeasured warm-up (connections opened)."""

    async def worker(share: int) -> None:
        for _ in range(share):
            await call()

    async def run(total: int) -> None:
        shares = [total // concurrency + (i < total % concurrency) for i in range(concurrency)]
        await asyncio.gather(*(worker(share) for share in shares))

    await run(_WARM_UP_CALLS)
    cpu, wall = time.process_time(), time.perf_counter()
    await run(calls)
    return (time.process_time() - cpu) / calls * 1000, calls / (time.perf_counter() - wall)


async def measure(name: str, base_url: str, calls: int, concurrency: int) -> None:
    client = CLIENTS[name](base_url, concurrency)
    try:
        for mode, call in (("complete", client.complete), ("stream", client.stream)):
            cpu_ms, rate = await cpu_ms_per_call(call, calls, concurrency)
            print(f"{name:<8} {mode:<9} {cpu_ms:>11.3f} {rate:>9.0f}")
    finally:
        await client.aclose()


def serve(conn: Connection) -> None:
    """The fake server's process: sends its base URL, serves until told to stop."""
    with OpenAIFake() as server:
        conn.send(server.base_url)
        conn.recv()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated")
    args = parser.parse_args(argv)
    ours, theirs = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(target=serve, args=(theirs,))
    server.start()
    try:
        base_url = ours.recv()
        print(f"{args.calls} calls, {args.concurrency} concurrent, server {base_url}")
        print(f"{'client':<8} {'mode':<9} {'CPU ms/call':>11} {'calls/s':>9}")
        for name in args.clients.split(","):
            asyncio.run(measure(name, base_url, args.calls, args.concurrency))
    finally:
        ours.send("stop")
        server.join(10)


if __name__ == "__main__":
    main()
