"""A local Kafka cluster: several combined broker+controller KRaft nodes on loopback.

Why: replication is what keeps acknowledged messages through a broker crash, and only a real
cluster shows it (leader election, ISR shrink and rejoin, ``min.insync.replicas``). Each node is
a ``LocalKafka`` with its own data dir and fixed ports, so a node can be killed and started
again like a real broker, while clients keep the one bootstrap string listing every node.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from streams import local_jvm as jvm
from streams.local_kafka.broker import KRaftQuorum, LocalKafka, LocalKafkaError

__all__ = ["LocalKafkaCluster"]

_POLL_INTERVAL_S = 0.2

log = logging.getLogger(__name__)


class LocalKafkaCluster(jvm.Service):
    """``size`` nodes (default 3: replication factor 3, ``min.insync.replicas=2`` by default, so
    any one node may fail without losing an acknowledged write or stopping ``acks=all``)."""

    def __init__(
        self,
        size: int = 3,
        data_dir: Path | str | None = None,
        *,
        heap: str = "512m",
        start_timeout: float = 120.0,
    ) -> None:
        if size < 1:
            raise LocalKafkaError(f"a cluster needs at least one node, not {size}")
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="local-kafka-cluster-")
            data_dir = self._tmp.name
        self.data_dir = Path(data_dir).resolve()
        self._start_timeout = start_timeout
        ports = jvm.free_ports(2 * size)
        self.quorum = KRaftQuorum.create(ports[size:])
        self.nodes = [
            LocalKafka(
                self.data_dir / f"node-{node_id}",
                ports[index],
                heap=heap,
                start_timeout=start_timeout,
                quorum=self.quorum,
                node_id=node_id,
            )
            for index, node_id in enumerate(self.quorum.controller_ports)
        ]

    @property
    def bootstrap_servers(self) -> str:
        """Every node, so a client reaches the cluster whichever nodes are down."""
        return ",".join(node.bootstrap_servers for node in self.nodes)

    def start(self, node: int | None = None) -> None:
        """Start one node (by index), or all of them at once: a node is ready only when a
        majority of the quorum is up, so starting them one after another would never finish.
        Starting all returns once every broker is registered with the controller."""
        if node is not None:
            self.nodes[node].start()
            return
        try:
            self._each(LocalKafka.start)
            self._wait_registered()
        except BaseException:
            self._each(LocalKafka.kill)
            raise

    def kill(self, node: int) -> None:
        """SIGKILL one node: a crash, so its restart runs log recovery and rejoins the ISR."""
        self.nodes[node].kill()

    def stop(self, node: int | None = None) -> None:
        """Graceful shutdown of one node, or of all at once (one by one, the last nodes would
        wait for a quorum that is already gone)."""
        if node is not None:
            self.nodes[node].stop()
            return
        self._each(LocalKafka.stop)

    def close(self) -> None:
        """Stop every node and delete the data dirs if this object created them."""
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def _each(self, action: Callable[[LocalKafka], None]) -> None:
        """Run ``action`` on every node concurrently; the first error is raised after all ran."""
        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            for future in [pool.submit(action, node) for node in self.nodes]:
                future.result()

    def _wait_registered(self) -> None:
        """Bounded poll until the metadata lists every broker (topics with replication factor
        ``size`` can be created from then on)."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers}, logger=log)
        deadline = time.monotonic() + self._start_timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                if len(admin.list_topics(timeout=min(1.0, remaining)).brokers) == len(self.nodes):
                    return
            except KafkaException:
                continue
            time.sleep(_POLL_INTERVAL_S)
        raise LocalKafkaError(f"not every broker registered within {self._start_timeout:.0f}s")
