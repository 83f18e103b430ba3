"""Open-loop load: requests leave on a fixed timeline whatever the answers do.

    python bench/gateway/loadgen.py --url http://127.0.0.1:4000/v1/chat/completions \
        --rate 200 --duration 20 [--stream] --out records.json

Request ``i`` is due at ``start + i / rate`` and is sent then even if earlier ones have not been
answered (a closed loop would wait, and so hide the queueing it causes). Latency is measured from
the due time, so a late send caused by a saturated machine counts against the run instead of
vanishing (no coordinated omission); ``lag`` (sent minus due) shows how far the generator itself
fell behind. ``--warmup`` seconds at the same rate come first and are marked, not measured.
Several processes can share one timeline (``--procs``/``--proc-index``, a shared ``--start-at``
on the machine-wide monotonic clock). Every prompt is unique, so no contender can serve a cache
hit. Writes one JSON file of per-request columns (seconds relative to the start)."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import uvloop

__all__ = ["LoadPlan", "main"]

_CONTENT = re.compile(rb'"content"\s*:\s*"[^"]')  # a delta that carries text
_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class LoadPlan:
    url: str
    rate: float
    duration: float
    stream: bool
    model: str = "bench-model"
    headers: dict[str, str] = field(default_factory=dict)
    warmup: float = 1.0
    procs: int = 1
    proc_index: int = 0
    start_at: float | None = None  # time.monotonic() of request 0, shared by all procs
    max_tokens: int = 64
    label: str = "bench"
    distinct_prompts: int = 0  # 0: every prompt unique; N: request i asks prompt i mod N

    def schedule(self) -> list[tuple[int, float, bool]]:
        """(index, due offset from start in seconds, is warmup) for this process's share."""
        warm = round(self.warmup * self.rate)
        total = warm + round(self.duration * self.rate)
        return [(i, i / self.rate, i < warm) for i in range(self.proc_index, total, self.procs)]

    def prompt_of(self, index: int) -> int:
        return index % self.distinct_prompts if self.distinct_prompts else index

    def body(self, index: int) -> bytes:
        payload: dict[str, object] = {
            "model": self.model,
            "messages": [
                {
                    "role": "user",
                    "content": f"{self.label} request {self.prompt_of(index)}: "
                    "write a short answer",
                }
            ],
            "max_tokens": self.max_tokens,
            "stream": self.stream,
        }
        if self.stream:
            payload["stream_options"] = {"include_usage": True}
        return json.dumps(payload).encode()


@dataclass
class _Records:
    index: list[int] = field(default_factory=list)
    warmup: list[bool] = field(default_factory=list)
    due: list[float] = field(default_factory=list)
    sent: list[float] = field(default_factory=list)
    headers: list[float | None] = field(default_factory=list)
    first_token: list[float | None] = field(default_factory=list)
    end: list[float | None] = field(default_factory=list)
    status: list[int] = field(default_factory=list)
    error: list[str | None] = field(default_factory=list)


async def _one(
    session: aiohttp.ClientSession,
    plan: LoadPlan,
    start: float,
    item: tuple[int, float, bool],
    out: _Records,
) -> None:
    index, due, warm = item
    headers = {"Content-Type": "application/json", **plan.headers}
    sent = time.monotonic() - start
    headers_at = first_token = end = None
    status, error = 0, None
    try:
        async with session.post(plan.url, data=plan.body(index), headers=headers) as resp:
            headers_at = time.monotonic() - start
            status = resp.status
            if plan.stream:
                tail = b""
                async for piece in resp.content.iter_any():
                    if first_token is None and _CONTENT.search(tail[-64:] + piece):
                        first_token = time.monotonic() - start
                    tail = (tail + piece)[-256:]
                complete = b"[DONE]" in tail and first_token is not None
            else:
                tail = await resp.read()
                first_token = time.monotonic() - start
                complete = b'"choices"' in tail
            end = time.monotonic() - start
            if status != 200:
                error = f"http_{status}"
            elif not complete:
                error = "error_in_body" if b'"error"' in tail else "incomplete"
    except TimeoutError:
        error = "timeout"
    except aiohttp.ClientConnectionError as exc:
        error = f"connection:{type(exc).__name__}"
    except aiohttp.ClientError as exc:
        error = f"client:{type(exc).__name__}"
    out.index.append(index)
    out.warmup.append(warm)
    out.due.append(due)
    out.sent.append(sent)
    out.headers.append(headers_at)
    out.first_token.append(first_token)
    out.end.append(end)
    out.status.append(status)
    out.error.append(error)


async def run(plan: LoadPlan) -> dict[str, object]:
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None, keepalive_timeout=60)
    timeout = aiohttp.ClientTimeout(total=_TIMEOUT_S)
    records = _Records()
    schedule = plan.schedule()
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, skip_auto_headers=("User-Agent",)
    ) as session:
        start = plan.start_at if plan.start_at is not None else time.monotonic() + 0.2
        cpu_before = time.process_time()
        tasks: set[asyncio.Task[None]] = set()
        position = 0
        while position < len(schedule):
            now = time.monotonic() - start
            while position < len(schedule) and schedule[position][1] <= now:
                task = asyncio.create_task(_one(session, plan, start, schedule[position], records))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                position += 1
            if position < len(schedule):
                await asyncio.sleep(max(0.0, schedule[position][1] - (time.monotonic() - start)))
        if tasks:
            await asyncio.wait(set(tasks), timeout=_TIMEOUT_S + 5)
            for task in set(tasks):
                task.cancel()
        cpu_seconds = time.process_time() - cpu_before
    return {
        "plan": {
            "url": plan.url,
            "rate": plan.rate,
            "duration": plan.duration,
            "warmup": plan.warmup,
            "stream": plan.stream,
            "procs": plan.procs,
            "proc_index": plan.proc_index,
        },
        "generator": {
            "cpu_seconds": cpu_seconds,
            "max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "unfinished": len(schedule) - len(records.index),
        },
        "records": records.__dict__,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the chat completions URL")
    parser.add_argument("--rate", type=float, required=True, help="requests per second (all procs)")
    parser.add_argument("--duration", type=float, required=True, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--model", default="bench-model")
    parser.add_argument("--header", action="append", default=[], metavar="NAME:VALUE")
    parser.add_argument("--procs", type=int, default=1)
    parser.add_argument("--proc-index", type=int, default=0)
    parser.add_argument("--start-at", type=float, help="time.monotonic() of request 0")
    parser.add_argument("--label", default="bench", help="prefix of every prompt")
    parser.add_argument(
        "--distinct-prompts", type=int, default=0, help="0: all unique; N: repeat N prompts"
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    plan = LoadPlan(
        url=args.url,
        rate=args.rate,
        duration=args.duration,
        stream=args.stream,
        model=args.model,
        headers={k.strip(): v.strip() for k, v in (h.split(":", 1) for h in args.header)},
        warmup=args.warmup,
        procs=args.procs,
        proc_index=args.proc_index,
        start_at=args.start_at,
        label=args.label,
        distinct_prompts=args.distinct_prompts,
    )
    result = uvloop.run(run(plan))
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
