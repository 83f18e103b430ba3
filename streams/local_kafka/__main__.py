"""`python -m streams.local_kafka`: a broker for humans, or `--fetch-only` to warm the jar cache."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from types import FrameType

from streams.local_kafka.broker import LocalKafka, LocalKafkaError, ensure_jars


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m streams.local_kafka",
        description="Run a local single-node Kafka broker until Ctrl-C or SIGTERM.",
    )
    parser.add_argument("--port", type=int, help="broker port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--data-dir", type=Path, help="keep data here (default: a temp dir)")
    parser.add_argument("--fetch-only", action="store_true", help="only download the jars")
    return parser.parse_args(argv)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into KeyboardInterrupt so both take the same clean-stop path."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        return _run(args)
    except LocalKafkaError as exc:
        print(f"local Kafka failed: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.fetch_only:
        print(f"Kafka jars ready in {ensure_jars()}")
        return 0
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        print(f"KAFKA_BOOTSTRAP_SERVERS={configured} is set: using that broker, starting none.")
        return 0
    signal.signal(signal.SIGTERM, _interrupt)
    with LocalKafka(args.data_dir, args.port) as kafka:
        print(f"KAFKA_BOOTSTRAP_SERVERS={kafka.bootstrap_servers}", flush=True)
        print(f"broker log: {kafka.log_file}; Ctrl-C stops it", file=sys.stderr, flush=True)
        try:
            code = kafka.wait()
        except KeyboardInterrupt:
            return 0
    print(f"broker exited on its own with code {code}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
