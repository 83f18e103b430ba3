"""Command-line options that more than one of our CLIs takes."""

from __future__ import annotations

import argparse

__all__ = ["add_consumer_config", "consumer_overrides"]


def _setting(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def add_consumer_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--consumer-config",
        action="append",
        type=_setting,
        default=[],
        metavar="KEY=VALUE",
        help="librdkafka consumer setting, e.g. session.timeout.ms=6000 (repeatable)",
    )


def consumer_overrides(args: argparse.Namespace) -> dict[str, str]:
    """The ``--consumer-config`` settings given (none when the command has no such option)."""
    return dict(getattr(args, "consumer_config", []))
