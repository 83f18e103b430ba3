"""Two small processors for runtime tests: a command becomes ``llm.request.started`` (stage A),
which becomes ``llm.request.completed`` (stage B). Run with ``python -m streams run``."""

from __future__ import annotations

import asyncio

from streams.envelope import Envelope
from streams.processing import Processor


class Explosion(RuntimeError):
    """Raised on purpose for a command tagged ``explode``: a handler that always fails."""


def start_request(command: Envelope) -> list[Envelope]:
    payload = command.payload
    if payload["metadata"].get("explode"):
        raise Explosion(f"asked to explode: {command.correlation_id}")
    return [
        command.derive(
            "llm.request.started",
            {
                "model": payload["model"],
                "mode": payload["mode"],
                "message_count": len(payload["messages"]),
                "stream": payload["stream"],
            },
        )
    ]


def complete_request(started: Envelope) -> list[Envelope]:
    count = started.payload["message_count"]
    return [
        started.derive(
            "llm.request.completed",
            {
                "provider": "simulated",
                "model": started.payload["model"] or "sim-1",
                "latency_ms": 1,
                "prompt_tokens": count,
                "completion_tokens": 1,
                "total_tokens": count + 1,
                "cost_usd": 0.0,
                "cache_hit": False,
                "saved_cost_usd": 0.0,
                "fallback_used": False,
                "attempts": 1,
                "status": "ok",
                "output_text": "done",
                "tool_calls_json": None,
                "finish_reason": "stop",
                "safety_flags": [],
            },
        )
    ]


STAGE_A = Processor("chain-a", 1, frozenset({"llm.chat.requested"}), start_request, max_attempts=2)
STAGE_B = Processor("chain-b", 4, frozenset({"llm.request.started"}), complete_request)
STAGE_A_EXACTLY_ONCE = Processor(
    "chain-a-eos", 1, frozenset({"llm.chat.requested"}), start_request, exactly_once=True
)


async def start_request_slowly(command: Envelope) -> list[Envelope]:
    """Stage A with 10 ms of simulated I/O, so rebalances happen while work is in flight."""
    await asyncio.sleep(0.01)
    return start_request(command)


SLOW_STAGE_A = Processor(
    "chain-a-slow",
    1,
    frozenset({"llm.chat.requested"}),
    start_request_slowly,
    max_in_flight_per_partition=2,
)
