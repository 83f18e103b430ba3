"""A real Confluent-compatible schema registry (Apicurio Registry 2.6, in memory), without Docker.

Why: serde and compatibility tests need a registry that really assigns ids and enforces
compatibility rules, on machines that have Java 17 and Maven but no containers. Apicurio 2.x is
the newest line that runs on Java 17 and ships as one Maven Central artifact; it serves the
Confluent API under /apis/ccompat/v7, which confluent_kafka's SchemaRegistryClient speaks.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

# Shared with the local broker rather than copied: cache root, tools, ports, log tails.
from streams.local_kafka.broker import (
    LocalKafkaError,
    _free_ports,
    _java,
    _tail,
    _tool,
    cache_dir,
)

__all__ = [
    "APICURIO_VERSION",
    "LocalRegistryError",
    "LocalSchemaRegistry",
    "ensure_registry_app",
    "registry_home",
]

APICURIO_VERSION = "2.6.13.Final"
_ARTIFACT = f"io.apicurio:apicurio-registry-app:{APICURIO_VERSION}:tar.gz:all"
_TARBALL = f"apicurio-registry-app-{APICURIO_VERSION}-all.tar.gz"
_RUNNER_JAR = f"apicurio-registry-app-{APICURIO_VERSION}-runner.jar"
# Pinned so the fetch does not depend on Maven's default (old) dependency plugin.
_COPY_GOAL = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy"
_HOST = "127.0.0.1"
_CCOMPAT_PATH = "/apis/ccompat/v7"
_FETCH_TIMEOUT_S = 900
_POLL_INTERVAL_S = 0.1
_PROBE_TIMEOUT_S = 1.0

log = logging.getLogger(__name__)


class LocalRegistryError(RuntimeError):
    """The local schema registry could not be fetched or started."""


def registry_home() -> Path:
    """Beside the Kafka jars in the platform cache (outside git, shared by all checkouts)."""
    return cache_dir().parent / f"apicurio-registry-{APICURIO_VERSION}"


def ensure_registry_app() -> Path:
    """Return the runner jar, fetching and unpacking the app only when it is missing.

    The marker is written last, so an interrupted fetch is redone rather than half-used;
    a file lock keeps parallel test workers from unpacking into the same dir at once.
    """
    home = registry_home()
    app = home / "app"
    marker = home / ".complete"
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        complete = marker.is_file() and marker.read_text() == _ARTIFACT
        if not (complete and (app / _RUNNER_JAR).is_file()):
            marker.unlink(missing_ok=True)
            _fetch(home, app)
            marker.write_text(_ARTIFACT)
    return app / _RUNNER_JAR


def _fetch(home: Path, app: Path) -> None:
    """Download the tarball with Maven (its repo settings and cache apply) and unpack it."""
    download = home / "download"
    staging = home / "app.partial"
    for stale in (download, staging, app):
        shutil.rmtree(stale, ignore_errors=True)
    download.mkdir()
    log.info("fetching Apicurio Registry %s into %s", APICURIO_VERSION, app)
    try:
        mvn = _tool("mvn")
    except LocalKafkaError as exc:
        raise LocalRegistryError(str(exc)) from exc
    cmd = [mvn, "-q", "-B", _COPY_GOAL, f"-Dartifact={_ARTIFACT}", f"-DoutputDirectory={download}"]
    # cwd without a pom.xml: the copy goal then runs standalone, whatever dir we were called from.
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        cmd,
        cwd=download,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=_FETCH_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        output = _tail(result.stdout + result.stderr)
        raise LocalRegistryError(f"{' '.join(cmd)} failed with {result.returncode}:\n{output}")
    with tarfile.open(download / _TARBALL) as tar:
        tar.extractall(staging, filter="data")
    if not (staging / _RUNNER_JAR).is_file():
        raise LocalRegistryError(f"{_TARBALL} has no top-level {_RUNNER_JAR}")
    staging.rename(app)
    shutil.rmtree(download)


class LocalSchemaRegistry:
    """One in-memory registry process on a loopback port; its schemas live only as long as it.

    The JVM flags keep it small and quick to start (about 2.5 s, ~220 MB RSS): a test
    registry holds a handful of schemas, so JIT tier 1 and a serial GC are plenty.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        compatibility: str | None = "BACKWARD",
        heap: str = "256m",
        start_timeout: float = 60.0,
    ) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="local-registry-")
        self.work_dir = Path(self._tmp.name)
        self.port = port or _free_ports(1)[0]
        self._compatibility = compatibility
        self._heap = heap
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the Confluent-compatible API: what SCHEMA_REGISTRY_URL should hold."""
        return f"http://{_HOST}:{self.port}{_CCOMPAT_PATH}"

    @property
    def log_file(self) -> Path:
        """Registry stdout/stderr; its tail is quoted when a start fails."""
        return self.work_dir / "registry.log"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Launch the registry and return only once it answers on the ccompat API."""
        if self.is_running:
            raise LocalRegistryError(f"registry already running at {self.url}")
        runner = ensure_registry_app()
        with open(self.log_file, "ab") as out:
            self._proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                self._command(runner),
                cwd=self.work_dir,  # anything it writes relative to cwd lands in the temp dir
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: Ctrl-C in a shell reaches us, not it
            )
        try:
            self._wait_ready(self._proc)
        except BaseException:
            self._end(signal.SIGKILL, timeout=30.0)
            raise

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful shutdown (SIGTERM); SIGKILL if it has not exited within timeout."""
        self._end(signal.SIGTERM, timeout)

    def wait(self) -> int:
        """Block until the registry exits on its own; returns its exit code."""
        if self._proc is None:
            raise LocalRegistryError("registry is not running")
        return self._proc.wait()

    def close(self) -> None:
        """Stop the registry and delete its temp dir (log included)."""
        self.stop()
        self._tmp.cleanup()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _command(self, runner: Path) -> list[str]:
        try:
            java = _java()
        except LocalKafkaError as exc:
            raise LocalRegistryError(str(exc)) from exc
        cmd = [
            java,
            f"-Xmx{self._heap}",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dquarkus.http.host={_HOST}",
            f"-Dquarkus.http.port={self.port}",
            "-Dquarkus.banner.enabled=false",
            # Narayana's default process id binds a ServerSocket on a random port at the first
            # transaction; a UUID-based id needs no socket, so the registry holds only our port.
            "-DCoreEnvironmentBean.processImplementationClassName="
            "com.arjuna.ats.internal.arjuna.utils.UuidProcessId",
        ]
        if self._compatibility:
            cmd.append(f"-Dregistry.rules.global.compatibility={self._compatibility}")
        return [*cmd, "-jar", str(runner)]

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        """Poll GET /subjects, bounded by start_timeout, failing fast if the JVM exits."""
        deadline = time.monotonic() + self._start_timeout
        # trust_env=False: a proxy from the environment must not intercept loopback probes.
        with httpx.Client(trust_env=False) as client:
            while (remaining := deadline - time.monotonic()) > 0:
                try:
                    timeout = min(_PROBE_TIMEOUT_S, remaining)
                    if client.get(f"{self.url}/subjects", timeout=timeout).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                try:  # the pause between probes doubles as the exit check
                    proc.wait(timeout=max(0.0, min(_POLL_INTERVAL_S, deadline - time.monotonic())))
                except subprocess.TimeoutExpired:
                    continue
                raise self._start_error(f"registry exited with code {proc.returncode}")
        raise self._start_error(f"registry not ready within {self._start_timeout:.0f}s")

    def _start_error(self, reason: str) -> LocalRegistryError:
        text = self.log_file.read_text(errors="replace") if self.log_file.is_file() else ""
        return LocalRegistryError(f"{reason}; end of {self.log_file}:\n{_tail(text)}")

    def _end(self, sig: signal.Signals, timeout: float) -> None:
        """Signal only the process group this object started; SIGKILL it if sig is not enough."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
