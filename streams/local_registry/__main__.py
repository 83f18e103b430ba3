"""`python -m streams.local_registry`: a registry for humans; `--fetch-only` warms the cache."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from types import FrameType

from streams.local_registry.registry import LocalSchemaRegistry, ensure_registry_app


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m streams.local_registry",
        description="Run a local in-memory schema registry until Ctrl-C or SIGTERM.",
    )
    parser.add_argument("--port", type=int, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument(
        "--compatibility",
        default="BACKWARD",
        help="global compatibility rule, as Confluent names it (default: %(default)s)",
    )
    parser.add_argument("--fetch-only", action="store_true", help="only download the app")
    return parser.parse_args(argv)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into KeyboardInterrupt so both take the same clean-stop path."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.fetch_only:
        print(f"Apicurio Registry ready at {ensure_registry_app()}")
        return 0
    configured = os.environ.get("SCHEMA_REGISTRY_URL")
    if configured:
        print(f"SCHEMA_REGISTRY_URL={configured} is set: using that registry, starting none.")
        return 0
    signal.signal(signal.SIGTERM, _interrupt)
    with LocalSchemaRegistry(args.port, compatibility=args.compatibility) as registry:
        print(f"SCHEMA_REGISTRY_URL={registry.url}", flush=True)
        print(f"registry log: {registry.log_file}; Ctrl-C stops it", file=sys.stderr, flush=True)
        try:
            code = registry.wait()
        except KeyboardInterrupt:
            return 0
    print(f"registry exited on its own with code {code}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
