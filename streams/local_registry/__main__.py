"""`python -m streams.local_registry`: a registry for humans; `--fetch-only` warms the cache."""

from __future__ import annotations

import argparse
import sys

from streams.local_jvm import serve
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


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.fetch_only:
        print(f"Apicurio Registry ready at {ensure_registry_app()}")
        return 0
    return serve(
        lambda: LocalSchemaRegistry(args.port, compatibility=args.compatibility),
        noun="registry",
        env_var="SCHEMA_REGISTRY_URL",
        address=lambda registry: registry.url,
    )


if __name__ == "__main__":
    sys.exit(main())
