"""``python -m projections`` as deployed: its own OS process owning chDB, killed with -9 and
restarted, stopped with SIGTERM, read and replayed through its loopback endpoint by the CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import uuid
from pathlib import Path

from bench.projector_workload import mixed_events
from projections import QueryClient
from streams import TopicCatalog
from tests.integration.kafka_reading import assert_all_committed
from tests.integration.test_platform_up import free_port
from tests.integration.test_projections_support import (
    START,
    assert_projected_exactly,
    encode,
    events_topic,
    produce,
    run_cli,
    scalar,
    start_projector_process,
    wait_committed,
    wait_until,
)


def stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return process.wait(timeout=60)


def test_kill_9_mid_stream_then_restart_projects_every_event_once(
    bootstrap: str, topics: TopicCatalog, tmp_path: Path
) -> None:
    events = mixed_events(25_000, START, seed=31)
    produce(bootstrap, events_topic(topics), encode(events))
    port, group, data = free_port(), f"p-{uuid.uuid4().hex[:8]}", tmp_path / "chdb"
    endpoint = QueryClient(f"http://127.0.0.1:{port}", "platform")

    def count() -> int:
        return scalar(endpoint, "SELECT count() FROM events") if endpoint.ping() else 0

    first = start_projector_process(  # small cycles: killed after the first of several
        bootstrap, topics, data, port, group, tmp_path / "1.log", batch_size=5000
    )
    try:
        wait_until(lambda: count() > 0, 60, "the first inserted batch")
        first.kill()  # SIGKILL: no drain, no commit
        assert first.wait(timeout=10) == -signal.SIGKILL
    finally:
        stop(first)
    interrupted_at = scalar_offline(data, tmp_path, bootstrap, topics, port)
    assert 0 < interrupted_at < len(events), "killed before or after the stream"

    second = start_projector_process(bootstrap, topics, data, port, group, tmp_path / "2.log")
    try:
        wait_until(lambda: count() >= len(events), 90, "every event after the restart")
        wait_committed(bootstrap, group, topics)
        assert_projected_exactly(endpoint, events)
        before = json.loads(cli("checksum", data, bootstrap, topics, port).stdout)
        replayed = cli("replay", data, bootstrap, topics, port)
        assert '"status": "done"' in replayed.stdout, replayed.stdout + replayed.stderr
        assert "msg/s" in replayed.stdout
        after = json.loads(cli("checksum", data, bootstrap, topics, port).stdout)
        assert after == before
        assert stop(second) == 0
    finally:
        stop(second)
        endpoint.close()


def scalar_offline(data: Path, tmp: Path, bootstrap: str, topics: TopicCatalog, port: int) -> int:
    """Rows in events while no projector runs: the CLI opens chDB itself."""
    result = cli(
        "sql", data, bootstrap, topics, port, "SELECT count() AS n FROM events", "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    return int(json.loads(result.stdout)["n"])


def cli(
    command: str, data: Path, bootstrap: str, topics: TopicCatalog, port: int, *args: str
) -> subprocess.CompletedProcess[str]:
    return run_cli(command, *args, port=port, bootstrap=bootstrap, topics=topics, data_dir=data)


def test_sigterm_finishes_commits_and_exits_0_and_the_sql_cli_only_reads(
    bootstrap: str, topics: TopicCatalog, tmp_path: Path
) -> None:
    events = mixed_events(3000, START, seed=32)
    topic = events_topic(topics)
    produce(bootstrap, topic, encode(events))
    port, group, data = free_port(), f"p-{uuid.uuid4().hex[:8]}", tmp_path / "chdb"
    endpoint = QueryClient(f"http://127.0.0.1:{port}", "platform")
    process = start_projector_process(bootstrap, topics, data, port, group, tmp_path / "p.log")
    try:
        wait_until(endpoint.ping, 60, "the query endpoint")
        wait_until(
            lambda: scalar(endpoint, "SELECT count() FROM events") >= len(events), 60, "projection"
        )
        table = cli("sql", data, bootstrap, topics, port, "SELECT count() AS n FROM events")
        assert table.returncode == 0, table.stderr
        assert "HTTP Request" not in table.stderr, "a person reads this, not library logs"
        assert table.stdout.splitlines()[0].strip() == "n"
        assert table.stdout.splitlines()[2].strip() == str(len(events))
        refused = cli("sql", data, bootstrap, topics, port, "DROP TABLE events")
        assert refused.returncode == 2 and "refused" in refused.stderr
        assert stop(process) == 0
    finally:
        stop(process)
        endpoint.close()
    assert_all_committed(bootstrap, group, topic)
    assert scalar_offline(data, tmp_path, bootstrap, topics, port) == len(events)
