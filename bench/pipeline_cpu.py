"""CPU per run of layer 1's pipeline alone (no broker, no API): the decision core, its edge,
the run log, guardrails and the simulated provider, on the default configs.

    .venv/bin/python bench/pipeline_cpu.py [--runs 4000] [--concurrency 100] [--redis URL]
                                           [--stream] [--hits]

Every run is an exact-cache miss unless ``--hits`` (the same prompt again). In-process stores
unless ``--redis``. Prints numbers only; performance goals are never asserted in tests."""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import uvloop

from processors.foundation.processor import build_pipeline
from streams.envelope import Envelope, WriterIdentity, new_message

_CONFIGS = Path(__file__).resolve().parents[1] / "configs"
_WRITER = WriterIdentity("bench", 5, "dev")


def command(index: int, stream: bool, hits: bool) -> Envelope:
    prompt = "what is the capital of France?" if hits else f"question {index}: why is the sky blue?"
    return new_message(
        "llm.chat.requested",
        {
            "messages": [{"role": "user", "content": prompt}],
            "mode": "direct",
            "stop": [],
            "stream": stream,
            "cache": "default",
            "metadata": {},
            "model": None,
            "tools_json": None,
            "tool_choice_json": None,
            "response_format_json": None,
            "max_tokens": 24,
            "temperature": None,
            "top_p": None,
            "budget": None,
            "idempotency_key": None,
            "deadline": None,
        },
        tenant_id="bench",
        correlation_id=f"bench-{index}",
        writer=_WRITER,
    )


async def measure(args: argparse.Namespace) -> None:
    pipeline = build_pipeline(_CONFIGS, args.redis)
    limit = asyncio.Semaphore(args.concurrency)
    events = 0

    async def one(index: int) -> None:
        nonlocal events
        async with limit:
            outputs = await pipeline.handle(command(index, args.stream, args.hits))
            events += len(outputs)
            if outputs[-1].message_type != "llm.request.completed":
                raise SystemExit(f"run {index} failed: {outputs[-1].payload}")

    await asyncio.gather(*(one(i) for i in range(200)))  # warm-up: imports, pools, caches
    events = 0
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(1000, 1000 + args.runs)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(
        f"{args.runs} runs ({'stream' if args.stream else 'plain'}, "
        f"{'hits' if args.hits else 'misses'}, {'redis' if args.redis else 'in-process'}): "
        f"{cpu / args.runs * 1e3:.3f} ms CPU per run, {events / args.runs:.1f} events per run, "
        f"{args.runs / wall:.0f} runs/s wall"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--redis", default=None)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--hits", action="store_true")
    uvloop.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
