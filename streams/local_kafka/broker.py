"""A real Apache Kafka 4 broker (KRaft), run from Maven Central jars, without Docker: a single
node by default, or one member of a local cluster (``LocalKafkaCluster``).

Why: integration and fault tests need a genuine broker (offset commits, transactions,
crash recovery, replication) on machines that have Java and Maven but no containers.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from streams import local_jvm as jvm

__all__ = [
    "KRaftQuorum",
    "LocalKafka",
    "LocalKafkaError",
    "cache_dir",
    "ensure_jars",
    "kafka_version",
]

_POM = Path(__file__).resolve().with_name("pom.xml")
_LOG4J_CONFIG = _POM.with_name("log4j2.properties")
_POM_VERSION = re.compile(r"<kafka\.version>\s*([^<\s]+)\s*</kafka\.version>")
_HOST = jvm.LOOPBACK
_FORMAT_TIMEOUT_S = 120
_LOG_ERROR_LINES = 10

log = logging.getLogger(__name__)


class LocalKafkaError(RuntimeError):
    """The local broker could not be fetched, formatted or started."""


def kafka_version() -> str:
    """Read the pinned version from pom.xml, so the pom is the single source of truth."""
    match = _POM_VERSION.search(_POM.read_text())
    if match is None:
        raise LocalKafkaError(f"no <kafka.version> property in {_POM}")
    return match.group(1)


def cache_dir() -> Path:
    """Jars live outside git and are shared by all checkouts; PLATFORM_CACHE_DIR moves them (CI)."""
    return jvm.cache_root() / f"kafka-{kafka_version()}"


def ensure_jars() -> Path:
    """Return the broker's libs dir, running Maven only when it is missing or stale.

    The marker holds a hash of pom.xml, so a pom edit (say, a new dependency) refetches;
    a file lock keeps parallel test workers from fetching into the same dir at once.
    """
    home = cache_dir()
    libs = home / "libs"
    pom_hash = hashlib.sha256(_POM.read_bytes()).hexdigest()
    jvm.fetch_once(home, pom_hash, libs, lambda: _fetch(libs))
    return libs


def _fetch(libs: Path) -> None:
    """Copy the runtime closure of pom.xml into a clean dir (stale jars would shadow new ones)."""
    shutil.rmtree(libs, ignore_errors=True)
    log.info("fetching Kafka %s jars into %s", kafka_version(), libs)
    jvm.run_maven(
        "-f",
        str(_POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={libs}",
        "-DincludeScope=runtime",
        error=LocalKafkaError,
    )


def _java_cmd(libs: Path, main_class: str, *args: str, heap: str) -> list[str]:
    """One JVM command line for both the storage tool and the broker, so they log alike."""
    return [
        jvm.find_java(LocalKafkaError),
        f"-Xmx{heap}",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={_LOG4J_CONFIG}",
        # Else log4j's own shutdown hook races Kafka's and the shutdown log is cut off.
        "-Dlog4j2.shutdownHookEnabled=false",
        "-cp",
        f"{libs}/*",
        main_class,
        *args,
    ]


def _is_error_line(line: str) -> bool:
    return "] ERROR " in line or "] FATAL " in line or line.startswith("Caused by:")


def _cluster_id() -> str:
    """A Kafka Uuid (base64url, unpadded); like Kafka, skip ids starting with '-' (CLI-hostile)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass(frozen=True)
class KRaftQuorum:
    """The nodes of one local cluster, each a combined broker and controller: their node ids,
    controller ports and shared cluster id, and the replication defaults its size allows.

    Static ``controller.quorum.voters`` (rather than a dynamic quorum) keeps restarts and a
    reused data dir working even when a controller port changes."""

    cluster_id: str
    controller_ports: Mapping[int, int]  # node id -> controller port

    @classmethod
    def create(cls, controller_ports: Sequence[int]) -> KRaftQuorum:
        """A new cluster whose node ids count from 1, one per controller port."""
        return cls(_cluster_id(), dict(enumerate(controller_ports, start=1)))

    @property
    def replication_factor(self) -> int:
        """Every node holds a replica, so any one can fail (capped at Kafka's usual 3)."""
        return min(3, len(self.controller_ports))

    @property
    def min_insync_replicas(self) -> int:
        """acks=all survives one replica down, yet an acknowledgement is never on one copy only
        (unless there is only one)."""
        return max(1, self.replication_factor - 1)

    @property
    def voters(self) -> str:
        return ",".join(f"{node}@{_HOST}:{port}" for node, port in self.controller_ports.items())


def _server_properties(log_dir: Path, port: int, node_id: int, quorum: KRaftQuorum) -> str:
    """A combined broker+controller KRaft config, sized for tests on a small machine."""
    replication = str(quorum.replication_factor)
    min_isr = str(quorum.min_insync_replicas)
    controller_port = quorum.controller_ports[node_id]
    settings = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": quorum.voters,
        "listeners": f"PLAINTEXT://{_HOST}:{port},CONTROLLER://{_HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{_HOST}:{port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": "1",
        "auto.create.topics.enable": "false",
        "default.replication.factor": replication,
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": replication,
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": replication,
        "transaction.state.log.min.isr": min_isr,
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": replication,
        "share.coordinator.state.topic.min.isr": min_isr,
        "group.initial.rebalance.delay.ms": "0",
        # After kill() the controller holds the dead incarnation's registration until its
        # session expires (default 9 s); short sessions make crash-restart tests quick.
        "broker.heartbeat.interval.ms": "500",
        "broker.session.timeout.ms": "4000",
        "log.segment.bytes": str(64 * 1024 * 1024),
        "log.retention.check.interval.ms": "60000",
        "log.cleaner.threads": "1",
        "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
        "num.network.threads": "2",
        "num.io.threads": "4",
        "num.recovery.threads.per.data.dir": "1",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def _format_storage(libs: Path, properties: Path, log_dir: Path, cluster_id: str) -> None:
    """KRaft will not start on an unformatted dir; an already formatted one (restart) is kept."""
    if (log_dir / "meta.properties").is_file():
        return
    cmd = _java_cmd(
        libs,
        "kafka.tools.StorageTool",
        "format",
        "--config",
        str(properties),
        "--cluster-id",
        cluster_id,
        heap="256m",
    )
    jvm.run_checked(cmd, timeout=_FORMAT_TIMEOUT_S, error=LocalKafkaError)


class LocalKafka(jvm.JvmService):
    """One broker process on loopback ports that stay fixed across restarts.

    Keeping the data dir and ports makes restart() look like a real broker bounce to clients:
    topics, messages and committed offsets survive, even after kill(). Alone by default; given
    a ``quorum`` and its ``node_id``, one member of a cluster (see ``LocalKafkaCluster``).
    """

    _error = LocalKafkaError
    _noun = "broker"

    def __init__(
        self,
        data_dir: Path | str | None = None,
        port: int | None = None,
        *,
        heap: str = "512m",
        start_timeout: float = 60.0,
        quorum: KRaftQuorum | None = None,
        node_id: int = 1,
        tied_to_parent: bool = False,
    ) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="local-kafka-")
            data_dir = self._tmp.name
        self.data_dir = Path(data_dir).resolve()
        super().__init__(
            self.data_dir / "broker.log",
            heap=heap,
            start_timeout=start_timeout,
            tied_to_parent=tied_to_parent,  # SIGTERM when its starter dies (local_jvm)
        )
        free = jvm.free_ports(2)
        self.port = port or free[0]
        self.quorum = quorum or KRaftQuorum.create([free[1]])
        if node_id not in self.quorum.controller_ports:
            raise LocalKafkaError(f"node {node_id} is not a voter of {self.quorum.voters}")
        self.node_id = node_id
        self.controller_port = self.quorum.controller_ports[node_id]

    @property
    def bootstrap_servers(self) -> str:
        return f"{_HOST}:{self.port}"

    def start(self) -> None:
        """Launch the broker and return only once it answers metadata requests."""
        if self.is_running:
            raise LocalKafkaError(f"broker already running at {self.bootstrap_servers}")
        libs = ensure_jars()
        log_dir = self.data_dir / "kafka-logs"
        properties = self.data_dir / "server.properties"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        properties.write_text(_server_properties(log_dir, self.port, self.node_id, self.quorum))
        _format_storage(libs, properties, log_dir, self.quorum.cluster_id)
        self._launch(_java_cmd(libs, "kafka.Kafka", str(properties), heap=self._heap))

    def kill(self) -> None:
        """Simulate a crash: SIGKILL, no shutdown hooks, so the next start runs log recovery."""
        self._end(signal.SIGKILL, timeout=30.0)

    def restart(self) -> None:
        """Stop (if still running) and start again on the same data dir and ports."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the broker and delete the data dir if this object created it."""
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        """Poll with real metadata requests, bounded by start_timeout, failing fast on exit."""
        admin = AdminClient(
            {"bootstrap.servers": self.bootstrap_servers, "reconnect.backoff.max.ms": 500},
            logger=log,
        )
        deadline = time.monotonic() + self._start_timeout
        while (remaining := deadline - time.monotonic()) > 0:
            if proc.poll() is not None:
                raise self._start_error(f"broker exited with code {proc.returncode}")
            try:
                if admin.list_topics(timeout=min(1.0, remaining)).brokers:
                    return
            except KafkaException:
                continue
        raise self._start_error(f"broker not ready within {self._start_timeout:.0f}s")

    def _start_error(self, reason: str) -> LocalKafkaError:
        """The cause is usually an ERROR line far above the shutdown noise, so quote both."""
        text = self._log_text()
        errors = [line for line in text.splitlines() if _is_error_line(line)]
        return LocalKafkaError(
            f"{reason}; first errors in {self.log_file}:\n"
            + "\n".join(errors[:_LOG_ERROR_LINES])
            + f"\nlog ends with:\n{jvm.tail(text)}"
        )
