"""The foundation processor in production shape, measured: commands on Kafka in, events out.

    .venv/bin/python -m bench.pipeline.foundation [--commands 20000] [--replicas 1,2]
        [--rate 200 --e2e-seconds 30]

For each replica count: a fresh topic namespace, a Redis of its own, N processor processes
(`python -m streams run processors.foundation.processor:PROCESSOR`, one consumer group, the
default configs: simulated providers, guardrails, exact cache, budgets, the write-ahead run
log) and the projector (`python -m projections run`, embedded chDB). Then:

- **throughput**: ``--commands`` commands produced at once (each its own prompt, spread over a
  thousand tenants so no budget refuses); time from the first send to the last terminal event
  on the events topic, and each process's CPU over it (from /proc);
- **ingest to queryable**: commands at a steady ``--rate`` for ``--e2e-seconds``; for each,
  the broker's acknowledgement of the command to its run being ended in ``runs_latest``
  (polled every ``--poll-ms``, which bounds the precision).

Uses KAFKA_BOOTSTRAP_SERVERS when set, otherwise starts a local broker. Prints numbers only."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from schemas import default_catalog
from streams import AvroSerde, SingleObjectFraming, ensure_topics, load_topic_catalog
from streams.envelope import Envelope, WriterIdentity, new_message
from streams.local_jvm import free_ports
from streams.local_kafka import LocalKafka
from streams.producer import MESSAGE_TYPE_HEADER

REPO = Path(__file__).resolve().parents[2]
PROCESSOR = "processors.foundation.processor:PROCESSOR"
TERMINAL = {b"llm.request.completed", b"llm.request.failed"}
SERDE = AvroSerde(default_catalog(), SingleObjectFraming(default_catalog()))
WRITER = WriterIdentity("bench", 5, "dev")
_READY_TIMEOUT_S = 120.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def command(index: int, label: str) -> Envelope:
    """A chat command as the API sends it; ``label`` keeps runs of one phase apart."""
    payload: dict[str, Any] = {
        "messages": [{"role": "user", "content": f"{label} question {index}: how far is it?"}],
        "mode": "direct",
        "stop": [],
        "stream": False,
        "cache": "default",
        "metadata": {},
        **dict.fromkeys(("model", "tools_json", "tool_choice_json", "response_format_json")),
        **dict.fromkeys(("max_tokens", "temperature", "top_p", "budget", "idempotency_key")),
        "deadline": None,
    }
    return new_message(
        "llm.chat.requested",
        payload,
        correlation_id=f"{label}-{index}",
        tenant_id=f"{label}-tenant-{index % 1000}",
        writer=WRITER,
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


class Stack:
    """The processes of one measurement, on their own topics and Redis."""

    def __init__(self, bootstrap: str, replicas: int, workdir: Path) -> None:
        self.bootstrap = bootstrap
        self.topics = load_topic_catalog(prefix=f"b{uuid.uuid4().hex[:8]}.")
        self.group = f"bench-{uuid.uuid4().hex[:8]}"
        self.replicas = replicas
        self.workdir = workdir
        redis_port, self.query_port = free_ports(2)
        self.redis_url = f"redis://127.0.0.1:{redis_port}/0"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._spawn("redis", ["redis-server", "--port", str(redis_port), "--save", ""], {})

    def start(self) -> None:
        ensure_topics(AdminClient({"bootstrap.servers": self.bootstrap}), self.topics)
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "TOPIC_PREFIX": self.topics.topics[0].name.removesuffix("commands.llm"),
            "REDIS_URL": self.redis_url,
            "LOG_LEVEL": "WARNING",
        }
        python = sys.executable
        for replica in range(self.replicas):
            argv = [python, "-m", "streams", "run", PROCESSOR, "--group-id", self.group]
            self._spawn(f"processor-{replica}", argv, env)
        projector_env = {
            **env,
            "PROJECTIONS_DATA_DIR": str(self.workdir / "chdb"),
            "PROJECTIONS_QUERY_PORT": str(self.query_port),
            "PROJECTIONS_GROUP_ID": f"{self.group}-projector",
        }
        self._spawn("projector", [python, "-m", "projections", "run"], projector_env)
        self._wait_ready()

    def cpu(self) -> dict[str, float]:
        return {name: cpu_seconds(p.pid) for name, p in self.processes.items()}

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            process.wait(timeout=60)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        with open(self.workdir / f"{name}.log", "ab") as log:  # the child keeps its copy
            self.processes[name] = subprocess.Popen(  # noqa: S603 - our own argv
                argv, cwd=REPO, env={**os.environ, **env}, stdout=log, stderr=log
            )

    def _wait_ready(self) -> None:
        """Until every replica holds partitions and the projector answers SQL."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while True:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited; see {self.workdir}/{name}.log")
            if self._replicas_assigned(admin) and self._projector_answers():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {_READY_TIMEOUT_S}s; logs in {self.workdir}")
            time.sleep(0.2)  # poll interval of a bounded wait

    def _replicas_assigned(self, admin: AdminClient) -> bool:
        [group] = admin.describe_consumer_groups([self.group], request_timeout=10).values()
        try:
            members = group.result().members
        except KafkaException:  # the group's coordinator is not ready yet
            return False
        return sum(bool(m.assignment.topic_partitions) for m in members) == self.replicas

    def _projector_answers(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.query_port}/ping").status_code == 200
        except httpx.HTTPError:
            return False


class CommandSender:
    """Commands to the broker, remembering when each was acknowledged."""

    def __init__(self, stack: Stack) -> None:
        self._producer = Producer(
            {"bootstrap.servers": stack.bootstrap, "acks": "all", "linger.ms": 1}
        )
        self._topic = stack.topics.topic_for("llm.chat.requested")
        self.acknowledged: dict[str, float] = {}

    def send(self, envelope: Envelope) -> None:
        key = envelope.correlation_id

        def acknowledged(error: object, _: object) -> None:
            if error is None:
                self.acknowledged[key] = time.monotonic()

        headers: list[tuple[str, str | bytes | None]] = [
            (MESSAGE_TYPE_HEADER, envelope.message_type.encode())
        ]
        self._producer.produce(
            self._topic,
            SERDE.encode(envelope),
            key.encode(),
            headers=headers,
            on_delivery=acknowledged,
        )
        self._producer.poll(0)

    def flush(self) -> None:
        self._producer.flush(60)


def wait_for_terminals(stack: Stack, expected: int, timeout_s: float) -> tuple[float, int]:
    """Read the events topic until ``expected`` runs ended: (when the last did, events read).
    Only headers are looked at: the message type travels in one."""
    consumer = Consumer(
        {"bootstrap.servers": stack.bootstrap, "group.id": "unused", "enable.auto.commit": False}
    )
    topic = stack.topics.topic_for("llm.request.completed")
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    ended: set[bytes] = set()
    events, last = 0, time.monotonic()
    deadline = time.monotonic() + timeout_s
    try:
        while len(ended) < expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(ended)} of {expected} runs ended in {timeout_s}s")
            for message in consumer.consume(1000, timeout=0.5):
                if message.error():
                    continue
                events += 1
                if dict(message.headers() or [])[MESSAGE_TYPE_HEADER] in TERMINAL:
                    ended.add(message.key() or b"")
                    last = time.monotonic()
    finally:
        consumer.close()
    return last, events


def throughput(stack: Stack, count: int) -> None:
    sender = CommandSender(stack)
    commands = [command(i, "tp") for i in range(count)]
    cpu_before = stack.cpu()
    started = time.monotonic()
    for envelope in commands:
        sender.send(envelope)
    sender.flush()
    finished, events = wait_for_terminals(stack, count, timeout_s=count / 20 + 120)
    cpu_after = stack.cpu()
    seconds = finished - started
    print(
        f"  throughput: {count} commands in {seconds:.1f} s = {count / seconds:,.0f} commands/s,"
        f" {events / seconds:,.0f} events/s out ({events / count:.1f} events per command)"
    )
    for name in cpu_after:
        used = cpu_after[name] - cpu_before[name]
        print(f"    {name:<12} CPU {used:6.1f} s = {1000 * used / count:5.2f} s per 1,000 commands")


def ingest_to_queryable(stack: Stack, rate: float, seconds: float, poll_ms: float) -> None:
    sender = CommandSender(stack)
    total = int(rate * seconds)
    label = f"e2e{uuid.uuid4().hex[:6]}"
    queryable: dict[str, float] = {}
    sql = (
        "SELECT correlation_id FROM runs_latest "  # noqa: S608 - our own label
        f"WHERE startsWith(correlation_id, '{label}-') AND status != 'running' FORMAT TSV"
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{stack.query_port}", timeout=30)
    start = time.monotonic()
    sent = 0
    deadline = start + seconds + 120
    while len(queryable) < total:
        now = time.monotonic()
        if now > deadline:
            raise RuntimeError(f"{len(queryable)} of {total} runs queryable in time")
        while sent < total and start + sent / rate <= now:
            sender.send(command(sent, label))
            sent += 1
        rows = client.post("/", content=sql).text.split()
        seen = time.monotonic()
        for correlation_id in rows:
            queryable.setdefault(correlation_id, seen)
        time.sleep(poll_ms / 1000)  # the poll interval; open-loop sends catch up on wake
    sender.flush()
    delays = sorted(1000 * (queryable[c] - sender.acknowledged[c]) for c in sender.acknowledged)
    cuts = statistics.quantiles(delays, n=100)
    print(
        f"  ingest -> queryable at {rate:.0f} commands/s for {seconds:.0f} s ({total} runs):"
        f" p50 {cuts[49]:.0f} ms, p95 {cuts[94]:.0f} ms, p99 {cuts[98]:.0f} ms"
        f" (poll every {poll_ms:.0f} ms)"
    )


@contextmanager
def broker() -> Iterator[str]:
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    with LocalKafka() as kafka:
        yield kafka.bootstrap_servers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--replicas", default="1,2", help="processor replica counts to measure")
    parser.add_argument("--rate", type=float, default=200.0, help="commands/s, ingest phase")
    parser.add_argument("--e2e-seconds", type=float, default=30.0)
    parser.add_argument("--poll-ms", type=float, default=20.0)
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server not found (apt-get install redis-server)")
    print(f"load average before: {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs")
    with broker() as bootstrap:
        for replicas in map(int, args.replicas.split(",")):
            print(f"{replicas} processor replica(s), default configs, Redis, projector:")
            with ExitStack() as stack_scope, tempfile.TemporaryDirectory() as workdir:
                stack = Stack(bootstrap, replicas, Path(workdir))
                stack_scope.callback(stack.stop)
                stack.start()
                throughput(stack, args.commands)
                ingest_to_queryable(stack, args.rate, args.e2e_seconds, args.poll_ms)


if __name__ == "__main__":
    main()
