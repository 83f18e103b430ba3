"""A three-broker KRaft cluster (replication factor 3, ``min.insync.replicas=2``): the broker
that coordinates the processor's consumer group (and leads a third of the partitions) is
killed with SIGKILL under load, stays down, then rejoins. Leaders move, ``acks=all`` still
needs two copies, and no acknowledged write is lost."""

import time
from pathlib import Path

from streams.local_kafka import LocalKafkaCluster
from tests.faults.case import Rig, Strike, fresh_topics, run_case
from tests.faults.services import RedisServer
from tests.faults.tally import partitions_of

DOWN_S = 10.0
_OFFSETS_TOPIC = "__consumer_offsets"


def test_one_of_three_brokers_killed_under_load(fault_redis: RedisServer, tmp_path: Path) -> None:
    with LocalKafkaCluster(3, tmp_path / "cluster") as cluster:
        topics = fresh_topics(cluster.bootstrap_servers, replication_factor=3)
        commands = partitions_of(cluster.bootstrap_servers, topics.topic_for("llm.chat.requested"))
        assert {len(partition.replicas) for partition in commands.values()} == {3}

        def kill_coordinator(strike: Strike) -> None:
            strike.at_fraction(0.3)
            offsets = partitions_of(cluster.bootstrap_servers, _OFFSETS_TOPIC)
            node = offsets[0].leader - 1  # node ids count from 1
            cluster.kill(node)
            time.sleep(DOWN_S)  # holds the fault: the broker stays down this long
            cluster.start(node)

        rig = Rig(cluster.bootstrap_servers, topics, fault_redis, tmp_path)
        run_case("cluster: 1 of 3 brokers kill -9", rig, kill_coordinator)
