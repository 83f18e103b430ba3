"""A real Confluent-compatible schema registry (Apicurio Registry 2.6, in memory), without Docker.

Why: serde and compatibility tests need a registry that really assigns ids and enforces
compatibility rules, on machines that have Java 17 and Maven but no containers. Apicurio 2.x is
the newest line that runs on Java 17 and ships as one Maven Central artifact; it serves the
Confluent API under /apis/ccompat/v7, which confluent_kafka's SchemaRegistryClient speaks.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import httpx

from streams import local_jvm as jvm

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
_CCOMPAT_PATH = "/apis/ccompat/v7"
_POLL_INTERVAL_S = 0.1
_PROBE_TIMEOUT_S = 1.0

log = logging.getLogger(__name__)


class LocalRegistryError(RuntimeError):
    """The local schema registry could not be fetched or started."""


def registry_home() -> Path:
    """Beside the Kafka jars in the platform cache (outside git, shared by all checkouts)."""
    return jvm.cache_root() / f"apicurio-registry-{APICURIO_VERSION}"


def ensure_registry_app() -> Path:
    """Return the runner jar, fetching and unpacking the app only when it is missing.

    The marker is written last, so an interrupted fetch is redone rather than half-used;
    a file lock keeps parallel test workers from unpacking into the same dir at once.
    """
    home = registry_home()
    app = home / "app"
    jvm.fetch_once(home, _ARTIFACT, app / _RUNNER_JAR, lambda: _fetch(home, app))
    return app / _RUNNER_JAR


def _fetch(home: Path, app: Path) -> None:
    """Download the tarball with Maven (its repo settings and cache apply) and unpack it."""
    download = home / "download"
    staging = home / "app.partial"
    for stale in (download, staging, app):
        shutil.rmtree(stale, ignore_errors=True)
    download.mkdir()
    log.info("fetching Apicurio Registry %s into %s", APICURIO_VERSION, app)
    # cwd without a pom.xml: the copy goal then runs standalone, whatever dir we were called from.
    jvm.run_maven(
        _COPY_GOAL,
        f"-Dartifact={_ARTIFACT}",
        f"-DoutputDirectory={download}",
        error=LocalRegistryError,
        cwd=download,
    )
    with tarfile.open(download / _TARBALL) as tar:
        tar.extractall(staging, filter="data")
    if not (staging / _RUNNER_JAR).is_file():
        raise LocalRegistryError(f"{_TARBALL} has no top-level {_RUNNER_JAR}")
    staging.rename(app)
    shutil.rmtree(download)


class LocalSchemaRegistry(jvm.JvmService):
    """One in-memory registry process on a loopback port; its schemas live only as long as it.

    The JVM flags keep it small and quick to start (about 2.5 s, ~220 MB RSS): a test
    registry holds a handful of schemas, so JIT tier 1 and a serial GC are plenty.
    """

    _error = LocalRegistryError
    _noun = "registry"

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
        super().__init__(self.work_dir / "registry.log", heap=heap, start_timeout=start_timeout)
        self.port = port or jvm.free_ports(1)[0]
        self._compatibility = compatibility

    @property
    def url(self) -> str:
        """Base URL of the Confluent-compatible API: what SCHEMA_REGISTRY_URL should hold."""
        return f"http://{jvm.LOOPBACK}:{self.port}{_CCOMPAT_PATH}"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self) -> None:
        """Launch the registry and return only once it answers on the ccompat API."""
        if self.is_running:
            raise LocalRegistryError(f"registry already running at {self.url}")
        runner = ensure_registry_app()
        # cwd: anything it writes relative to cwd lands in the temp dir.
        self._launch(self._command(runner), cwd=self.work_dir)

    def close(self) -> None:
        """Stop the registry and delete its temp dir (log included)."""
        self.stop()
        self._tmp.cleanup()

    def _command(self, runner: Path) -> list[str]:
        cmd = [
            jvm.find_java(LocalRegistryError),
            f"-Xmx{self._heap}",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dquarkus.http.host={jvm.LOOPBACK}",
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
        return LocalRegistryError(
            f"{reason}; end of {self.log_file}:\n{jvm.tail(self._log_text())}"
        )
