"""``python -m projections``: run the projector, replay, read-only SQL, checksums, migrations.

The store is chDB under ``PROJECTIONS_DATA_DIR`` unless ``CLICKHOUSE_URL`` names a server. Only
one process may open chDB, so while the projector runs, ``sql`` and ``checksum`` go through its
query endpoint and ``replay`` asks it to rebuild; with no projector running they open the store
themselves."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from prometheus_client import start_http_server

from projections.checksum import checksum, table_digests
from projections.migrator import migrate
from projections.projector import PROCESSOR_NAME, Projector
from projections.query_client import QueryClient
from projections.query_server import QueryServer
from projections.replay import Replay, ReplayRequest, parse_timestamp
from projections.settings import ProjectionSettings
from projections.sql_guard import NotReadOnly, read_only_statement
from projections.store import SqlReader, StoreError
from streams.cli_options import add_consumer_config, consumer_overrides
from streams.log_format import configure_json_logging
from streams.settings import Settings
from streams.tracing import install_tracer_provider
from streams.wiring import bootstrap_servers, serde_for, topics_for


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings.from_env()
    configure_json_logging(settings.log_level)
    return int(args.command(ProjectionSettings.from_env(), settings, args) or 0)


def _run(projection: ProjectionSettings, settings: Settings, args: argparse.Namespace) -> int:
    store = projection.open_store()
    migrate(store, projection.database, projection.events_ttl_days)
    if settings.metrics_port is not None:
        start_http_server(settings.metrics_port)
    install_tracer_provider(PROCESSOR_NAME)
    serde, topics, servers = serde_for(settings), topics_for(settings), bootstrap_servers(settings)
    overrides = consumer_overrides(args)
    projector = Projector(store, serde, topics, servers, projection, overrides)

    def replay(request: ReplayRequest, progress: Any) -> dict[str, Any]:
        rebuild = Replay(
            store,
            serde,
            servers,
            topics.event_topics(),
            projection.database,
            live=projector,
            stopping=projector.stopping,
        )
        return rebuild.run(request, progress)

    server = QueryServer(
        store.reader(projection.database), projection.database, projection.query_port, replay
    ).start()
    print(
        f"ClickHouse SQL (read-only, database {projection.database}): "
        f"http://127.0.0.1:{projection.query_port} or python -m projections sql 'SELECT ...'",
        file=sys.stderr,
        flush=True,
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: projector.stop())
    try:
        projector.run()
    finally:
        server.close()
        store.close()
    return 0


def _replay(projection: ProjectionSettings, settings: Settings, args: argparse.Namespace) -> int:
    """Ask the running projector to replay (it owns the live writes); run here if none runs."""
    body = {"tables": args.tables, "from_timestamp": args.from_timestamp}
    local = f"http://127.0.0.1:{projection.query_port}/replay"
    try:
        timeout = httpx.Timeout(5.0, read=None)  # a long replay streams progress every second
        with httpx.stream("POST", local, json=body, timeout=timeout) as response:
            last: dict[str, Any] = {}
            for line in response.iter_lines():
                print(line, flush=True)
                if line.startswith("{"):
                    last = json.loads(line)
            return 0 if response.status_code == 200 and last.get("status") == "done" else 1
    except httpx.ConnectError:
        pass
    store = projection.open_store()
    try:
        migrate(store, projection.database, projection.events_ttl_days)
        serde, topics = serde_for(settings), topics_for(settings)
        request = ReplayRequest(
            tables=tuple(args.tables or ()),
            from_timestamp=parse_timestamp(args.from_timestamp) if args.from_timestamp else None,
        )
        result = Replay(
            store,
            serde,
            bootstrap_servers(settings),
            topics.event_topics(),
            projection.database,
        ).run(request, lambda line: print(line, file=sys.stderr, flush=True))
    finally:
        store.close()
    print(json.dumps({"status": "done", **result}))
    return 0


def _sql(projection: ProjectionSettings, settings: Settings, args: argparse.Namespace) -> int:
    try:
        statement = read_only_statement(args.query)
    except NotReadOnly as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    try:
        with _reader(projection) as reader:
            if args.format == "json":
                sys.stdout.write(reader.query(statement, "JSONEachRow").decode())
            else:
                print(_table(reader.query(statement, "JSONCompactEachRowWithNames").decode()))
    except StoreError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    return 0


def _checksum(projection: ProjectionSettings, settings: Settings, args: argparse.Namespace) -> int:
    with _reader(projection) as reader:
        tables = table_digests(reader, projection.database)
        total = checksum(reader, projection.database)
    print(json.dumps({"checksum": total, "tables": tables}, indent=2))
    return 0


def _migrate(projection: ProjectionSettings, settings: Settings, args: argparse.Namespace) -> int:
    store = projection.open_store()
    try:
        applied = migrate(store, projection.database, projection.events_ttl_days)
    finally:
        store.close()
    print(json.dumps({"applied": applied}))
    return 0


@contextmanager
def _reader(projection: ProjectionSettings) -> Iterator[SqlReader]:
    """The configured server, else the running projector's endpoint, else chDB opened here."""
    client = QueryClient(projection.query_url, projection.database)
    try:
        if projection.clickhouse_url or client.ping():
            yield client
            return
    finally:
        client.close()
    store = projection.open_store()
    try:
        yield store.reader(projection.database)
    finally:
        store.close()


def _table(data: str) -> str:
    """JSONCompactEachRowWithNames as an aligned text table."""
    lines = [json.loads(line) for line in data.splitlines() if line]
    if not lines:
        return "(no columns)"
    cells = [[str(name) for name in lines[0]]] + [
        [value if isinstance(value, str) else json.dumps(value) for value in row]
        for row in lines[1:]
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    rendered = [" | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    rendered.insert(1, "-+-".join("-" * w for w in widths))
    rendered.append(f"({len(cells) - 1} rows)")
    return "\n".join(rendered)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m projections", description=__doc__)
    parser.set_defaults(command=_run)  # bare ``python -m projections`` (./dev up) runs it
    commands = parser.add_subparsers()

    run = commands.add_parser("run", help="run the projector (and its query endpoint)")
    add_consumer_config(run)
    run.set_defaults(command=_run)

    replay = commands.add_parser("replay", help="rebuild projections from the topics")
    replay.add_argument("--from-timestamp", help="ISO 8601 (UTC if no offset); default: all")
    replay.add_argument("--tables", nargs="+", help="default: every rebuildable table")
    replay.set_defaults(command=_replay)

    sql = commands.add_parser("sql", help="run one read-only statement")
    sql.add_argument("query")
    sql.add_argument("--format", choices=("table", "json"), default="table")
    sql.set_defaults(command=_sql)

    digest = commands.add_parser("checksum", help="digest of every projection table")
    digest.set_defaults(command=_checksum)

    migrate_cmd = commands.add_parser("migrate", help="apply pending migrations")
    migrate_cmd.set_defaults(command=_migrate)
    return parser


if __name__ == "__main__":
    sys.exit(main())
