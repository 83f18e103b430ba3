"""``python -m processors.observability prometheus-rules [--out FILE]``: the SLOs and threshold
rules of ``configs/observability.yaml`` (``OBSERVABILITY_CONFIG``, or ``--config``) as a
Prometheus rule file, for ``rule_files:`` in prometheus.yml. The alerter itself runs with
``python -m processors.observability.alerting``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from processors.observability.alerting.prometheus_rules import rule_file
from processors.observability.config import load_observability_config


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    text = rule_file(load_observability_config(args.config).alerting)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m processors.observability", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    rules = commands.add_parser("prometheus-rules", help="print the Prometheus rule file")
    rules.add_argument("--config", type=Path, help="default: configs/observability.yaml")
    rules.add_argument("--out", type=Path, help="write it here instead of to stdout")
    return parser


if __name__ == "__main__":
    sys.exit(main())
