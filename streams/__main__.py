"""``python -m streams``: run a processor, create topics, inspect and re-drive dead letters."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from confluent_kafka.admin import AdminClient
from prometheus_client import start_http_server

from streams.cli_options import add_consumer_config, consumer_overrides
from streams.dead_letter import read_dead_letters, redrive
from streams.log_format import configure_json_logging
from streams.processing import Processor
from streams.producer import EnvelopeProducer
from streams.runner import ProcessorRunner, RunnerOptions
from streams.settings import Settings
from streams.topics import ensure_topics
from streams.tracing import install_tracer_provider
from streams.wiring import bootstrap_servers, serde_for, topics_for


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings.from_env()
    configure_json_logging(settings.log_level)
    return int(args.command(settings, args) or 0)


def _run(settings: Settings, args: argparse.Namespace) -> None:
    module_name, _, attribute = args.processor.partition(":")
    processor = getattr(importlib.import_module(module_name), attribute or "PROCESSOR")
    if not isinstance(processor, Processor):
        raise SystemExit(f"{args.processor} is not a streams.Processor")
    if settings.metrics_port is not None:
        start_http_server(settings.metrics_port)
    install_tracer_provider(processor.name)
    options = RunnerOptions(
        group_id=args.group_id,
        transactional_id=args.transactional_id,
        consumer_overrides=consumer_overrides(args),
    )
    ProcessorRunner(
        processor,
        bootstrap_servers(settings),
        serde_for(settings),
        topics_for(settings),
        settings.env,
        options,
    ).run()


def _up(settings: Settings, args: argparse.Namespace) -> int:
    from streams.launcher import run_platform

    return run_platform(settings, args.data_dir, args.kafka_port, args.metrics_ports_from)


def _create_topics(settings: Settings, args: argparse.Namespace) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap_servers(settings)})
    created = ensure_topics(admin, topics_for(settings))
    print(json.dumps({"created": created}))


def _dlq_list(settings: Settings, args: argparse.Namespace) -> None:
    for letter in read_dead_letters(bootstrap_servers(settings), args.dlq_topic):
        print(
            json.dumps(
                {
                    "dlq_offset": letter.dlq_offset,
                    "error": letter.error,
                    "source_topic": letter.source_topic,
                    "source_partition": letter.source_partition,
                    "source_offset": letter.source_offset,
                    "processor": letter.processor,
                    "failed_at": letter.failed_at,
                    "value_bytes": len(letter.value or b""),
                }
            )
        )


def _dlq_redrive(settings: Settings, args: argparse.Namespace) -> None:
    servers = bootstrap_servers(settings)
    wanted = set(args.offset or [])
    letters = [
        letter
        for letter in read_dead_letters(servers, args.dlq_topic)
        if args.all or letter.dlq_offset in wanted
    ]
    producer = EnvelopeProducer(servers, serde_for(settings), topics_for(settings))
    print(json.dumps({"redriven": redrive(letters, producer)}))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m streams", description=__doc__)
    commands = parser.add_subparsers(required=True)

    run = commands.add_parser("run", help="run a processor: MODULE[:ATTRIBUTE], a Processor")
    run.add_argument("processor")
    run.add_argument("--group-id", help="consumer group (default: the processor's name)")
    run.add_argument("--transactional-id", help="stable id for exactly-once processors")
    add_consumer_config(run)
    run.set_defaults(command=_run)

    up = commands.add_parser("up", help="run the whole platform")
    up.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".data"),
        help="local broker and embedded ClickHouse data",
    )
    up.add_argument("--kafka-port", type=int, default=9092, help="local broker port")
    up.add_argument(
        "--metrics-ports-from",
        type=int,
        help="first metrics port of the children (default: configs/platform.yaml's; 0: ephemeral)",
    )
    up.set_defaults(command=_up)

    topics = commands.add_parser("topics", help="create every catalog topic and its DLQ")
    topics.set_defaults(command=_create_topics)

    dlq_list = commands.add_parser("dlq-list", help="print the dead letters on a DLQ topic")
    dlq_list.add_argument("dlq_topic")
    dlq_list.set_defaults(command=_dlq_list)

    dlq_redrive = commands.add_parser("dlq-redrive", help="send dead letters back to their source")
    dlq_redrive.add_argument("dlq_topic")
    which = dlq_redrive.add_mutually_exclusive_group(required=True)
    which.add_argument("--offset", type=int, action="append", help="a DLQ offset (repeatable)")
    which.add_argument("--all", action="store_true")
    dlq_redrive.set_defaults(command=_dlq_redrive)
    return parser


if __name__ == "__main__":
    sys.exit(main())
