"""How soon a run's online verdicts can be queried: from the moment the client has its answer
to the moment ``eval_results`` in ClickHouse holds the run's rows, against a running platform
(``./dev up``), at a steady request rate.

    .venv/bin/python bench/eval_visibility.py [--rps 20] [--seconds 30] [--api URL] [--sql URL]

Visibility is polled every 50 ms, so times are rounded up to that. Prints numbers only."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import Counter

import httpx

from streams.projections_client import sql_literal


async def _ask(
    client: httpx.AsyncClient, api: str, index: int, answered: dict[str, float], refused: list[int]
) -> None:
    """One request; a refusal (the platform shedding load) is counted, not measured."""
    response = await client.post(
        f"{api}/v1/chat/completions",
        headers={"Authorization": "Bearer local-dev"},
        json={"messages": [{"role": "user", "content": f"visibility probe {index} {time.time()}"}]},
    )
    if response.status_code != 200:
        refused.append(response.status_code)
        return
    answered[response.json()["correlation_id"]] = time.monotonic()


async def _watch(
    client: httpx.AsyncClient, sql: str, answered: dict[str, float], seen: dict[str, float]
) -> None:
    while True:
        waiting = [run for run in answered if run not in seen]
        if waiting:
            query = (
                "SELECT DISTINCT correlation_id FROM platform.eval_results "  # noqa: S608
                f"WHERE eval_run_id = 'online' AND correlation_id IN "
                f"({', '.join(sql_literal(run) for run in waiting)}) FORMAT TabSeparated"
            )
            found = (await client.post(sql, content=query)).text.split()
            now = time.monotonic()
            for run in found:
                seen.setdefault(run, now)
        await asyncio.sleep(0.05)  # the poll interval: the measurement's resolution


async def _main(args: argparse.Namespace) -> None:
    answered: dict[str, float] = {}
    seen: dict[str, float] = {}
    refused: list[int] = []
    async with httpx.AsyncClient(timeout=30) as client:
        watcher = asyncio.create_task(_watch(client, args.sql, answered, seen))
        requests = []
        started = time.monotonic()
        for index in range(int(args.rps * args.seconds)):
            await asyncio.sleep(max(0.0, started + index / args.rps - time.monotonic()))
            requests.append(asyncio.create_task(_ask(client, args.api, index, answered, refused)))
        await asyncio.gather(*requests)
        deadline = time.monotonic() + 60
        while len(seen) < len(answered) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        watcher.cancel()
    delays = sorted(seen[run] - answered[run] for run in seen)
    quantiles = statistics.quantiles(delays, n=100) if len(delays) > 1 else delays * 99
    print(
        f"runs: {len(answered)}, refused: {dict(Counter(refused))}, verdicts queryable: {len(seen)}"
    )
    print(
        f"answer -> verdict queryable (s): p50 {quantiles[49]:.2f}  p95 {quantiles[94]:.2f}  "
        f"max {delays[-1]:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rps", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--api", default="http://127.0.0.1:8080")
    parser.add_argument("--sql", default="http://127.0.0.1:8124")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
