"""The processes a fault case breaks: the foundation processor and the projector (each
supervised, as in production) and a Redis of its own that can be stopped and started again on
the same port."""

from __future__ import annotations

import functools
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import pytest

from streams.local_jvm import free_ports
from streams.topics import TopicCatalog
from tests.conftest import _wait_for_redis
from tests.integration.processes import start_processor
from tests.integration.test_projections_support import start_projector_process

FOUNDATION = "processors.foundation.processor:PROCESSOR"
_SUPERVISE_INTERVAL_S = 0.2
_STOP_TIMEOUT_S = 90.0

Launch = Callable[[], subprocess.Popen[bytes]]


class Supervised:
    """A platform process (a processor replica, the projector) in its own OS process, started
    again whenever it exits on its own (a crash, ``kill -9``, a runner that gave up on the
    broker), as systemd or Kubernetes would. ``exits`` says how each of those ended; ``stop``
    ends it with SIGTERM."""

    def __init__(self, launch: Launch, log: Path) -> None:
        self._launch = launch
        self.log = log
        self.exits: list[str] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._held = threading.Event()  # down on purpose: not started again while set
        self._log_start = 0
        self._process = self._launch()
        self._supervisor = threading.Thread(target=self._supervise, name="supervisor", daemon=True)
        self._supervisor.start()

    def kill(self) -> None:
        """``kill -9``: no shutdown, no flush, no commit; the supervisor starts a new one."""
        with self._lock:
            self._process.send_signal(signal.SIGKILL)

    @contextmanager
    def killed(self) -> Iterator[None]:
        """``kill -9``, and no new process until the block ends: an outage of this service
        for as long as the caller holds it."""
        self._held.set()
        self.kill()
        try:
            yield
        finally:
            self._held.clear()

    def stop(self) -> int:
        """SIGTERM (finish started work, flush, commit) and the exit code."""
        self._stopping.set()
        self._supervisor.join()
        with self._lock:
            self._process.terminate()
            try:
                return self._process.wait(_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
                raise

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def __enter__(self) -> Supervised:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._stopping.is_set():
            self.stop()

    def _supervise(self) -> None:
        while not self._stopping.wait(_SUPERVISE_INTERVAL_S):
            with self._lock:
                code = self._process.poll()
                if code is not None and not self._held.is_set():
                    self.exits.append(f"exit {code}{self._last_exception()}")
                    self._log_start = self.log.stat().st_size
                    self._process = self._launch()

    def _last_exception(self) -> str:
        """The last line of a traceback this incarnation wrote (its JSON logs start with "{",
        librdkafka's with "%", traceback frames with spaces), e.g. ": KafkaException: ..."."""
        with self.log.open(errors="replace") as log:
            log.seek(self._log_start)
            lines = [line for line in log.read().splitlines() if line[:1] not in ("{", "%", " ")]
        return f": {lines[-1]}" if lines and not lines[-1].startswith("Traceback") else ""


def foundation_processor(
    bootstrap: str, topics: TopicCatalog, group: str, log: Path, env: dict[str, str]
) -> Supervised:
    """``python -m streams run`` of the foundation processor, as deployed."""
    launch = functools.partial(start_processor, FOUNDATION, bootstrap, topics, group, log, env=env)
    return Supervised(launch, log)


def projector(
    bootstrap: str, topics: TopicCatalog, data_dir: Path, port: int, group: str, log: Path
) -> Supervised:
    """``python -m projections run``: the projector with its embedded ClickHouse (chDB under
    ``data_dir``, so a restart finds the tables it left) and its query endpoint on ``port``."""
    launch = functools.partial(
        start_projector_process, bootstrap, topics, data_dir, port, group, log
    )
    return Supervised(launch, log)


class RedisServer:
    """A throwaway ``redis-server`` (no persistence) on a fixed loopback port; ``stop`` and
    ``start`` make an outage that clients see as connection refused, then an empty Redis."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server not found on PATH (apt-get install redis-server)")
        self._argv = [binary, "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"]
        self.port = free_ports(1)[0]
        self._workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = self._workdir / "redis.log"
        with log.open("ab") as out:
            self._process = subprocess.Popen(
                [*self._argv, "--port", str(self.port), "--dir", str(self._workdir)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        _wait_for_redis(self._process, self.port, log)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
