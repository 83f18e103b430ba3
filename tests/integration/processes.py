"""Processors in their own OS processes, as in production: ``python -m streams run``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from streams.topics import TopicCatalog

REPO = Path(__file__).resolve().parents[2]
FAST_REBALANCE = ("session.timeout.ms=6000", "heartbeat.interval.ms=500")


def start_processor(
    target: str,
    bootstrap: str,
    topics: TopicCatalog,
    group: str,
    log: Path,
    *extra: str,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Its JSON logs go to ``log`` (a file, so a chatty process never blocks on a full pipe)."""
    prefix = topics.topics[0].name.removesuffix("commands.llm")
    env = {
        **os.environ,
        **(env or {}),
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "TOPIC_PREFIX": prefix,
    }
    args = [sys.executable, "-m", "streams", "run", target, "--group-id", group, *extra]
    for setting in FAST_REBALANCE:
        args += ["--consumer-config", setting]
    with open(log, "ab") as out:
        return subprocess.Popen(args, cwd=REPO, env=env, stdout=out, stderr=out)
