"""Fault cases: each test gets a Redis of its own (stoppable), and the session ends with one
table of every case's counts (also pasted into docs/RELIABILITY.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.topics import TopicCatalog
from tests.faults.case import Rig
from tests.faults.services import RedisServer
from tests.faults.tally import REPORT, table


@pytest.fixture
def fault_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def rig(bootstrap: str, topics: TopicCatalog, fault_redis: RedisServer, tmp_path: Path) -> Rig:
    """The session broker, a fresh topic namespace and this test's Redis."""
    return Rig(bootstrap, topics, fault_redis, tmp_path)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORT:
        terminalreporter.section("fault cases")
        terminalreporter.write_line(table(REPORT))
