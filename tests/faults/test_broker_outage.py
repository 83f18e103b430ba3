"""The only broker stopped for 10 s mid-load, then started again (a broker of this test's own,
not the session's). Producers buffer and retry; the processor's commits wait for its outputs;
no acknowledged command is lost."""

import time
from pathlib import Path

from streams.local_kafka import LocalKafka
from tests.faults.case import Rig, Strike, fresh_topics, run_case
from tests.faults.services import RedisServer

OUTAGE_S = 10.0


def test_broker_stopped_mid_load_then_restarted(fault_redis: RedisServer, tmp_path: Path) -> None:
    with LocalKafka(tmp_path / "kafka") as broker:
        rig = Rig(
            broker.bootstrap_servers, fresh_topics(broker.bootstrap_servers), fault_redis, tmp_path
        )

        def outage(strike: Strike) -> None:
            strike.at_fraction(0.3)
            broker.stop()
            time.sleep(OUTAGE_S)  # holds the fault: the broker stays down this long
            broker.start()

        run_case(f"broker stopped {OUTAGE_S:.0f} s", rig, outage)
