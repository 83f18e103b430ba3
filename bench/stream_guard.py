"""CPU the streaming output guard costs per answer, by answer length: prose streamed a word at
a time through ``StreamGuard`` under the default policy (output PII redacted), ``finish``
included. Prints numbers only.

    .venv/bin/python -m bench.stream_guard [--sizes 300,2000,10000,50000] [--repeats 10]"""

from __future__ import annotations

import argparse
import random
import time

from processors.foundation.config import GuardrailPolicy
from processors.foundation.guardrails import StreamGuard

__all__ = ["main"]

_WORDS = (
    "the stream carries every event once and in order while replicas share the work "
    "a router picks the target"
).split()


def cpu_ms_per_answer(size: int, repeats: int, seed: int = 1) -> float:
    chance = random.Random(seed)  # noqa: S311 - filler text, not a secret
    pieces: list[str] = []
    while sum(map(len, pieces)) < size:
        pieces.append(f" {chance.choice(_WORDS)}")
    policy = GuardrailPolicy()
    started = time.process_time()
    for _ in range(repeats):
        guard = StreamGuard(policy)
        for piece in pieces:
            guard.push(piece)
        guard.finish()
    return (time.process_time() - started) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stream_guard")
    parser.add_argument("--sizes", default="300,2000,10000,50000")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    for size in (int(s) for s in args.sizes.split(",")):
        print(f"{size} characters: {cpu_ms_per_answer(size, args.repeats):.2f} ms CPU per answer")


if __name__ == "__main__":
    main()
