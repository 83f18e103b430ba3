"""`python -m streams.local_kafka`: a broker for humans, or `--fetch-only` to warm the jar cache."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from streams.local_jvm import serve
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
    return serve(
        lambda: LocalKafka(args.data_dir, args.port),
        noun="broker",
        env_var="KAFKA_BOOTSTRAP_SERVERS",
        address=lambda kafka: kafka.bootstrap_servers,
    )


if __name__ == "__main__":
    sys.exit(main())
