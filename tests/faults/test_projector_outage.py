"""ClickHouse unavailable mid-load, then back. With the embedded default, ClickHouse (chDB) lives
inside the projector process, so the outage is a ``kill -9`` of the projector, the store with
it, mid-insert or not. It stays down 10 s while the load goes on, then starts again on the same
data directory: it resumes from its committed offsets (rebuilding an interrupted batch from its
intent) and catches up, and queries see every event once and every run once, ended as on the
topic (asserted by ``run_case`` for every case). The processors never notice."""

import time

from tests.faults.case import Rig, Strike, run_case

OUTAGE_S = 10.0


def test_projector_killed_mid_load_down_then_back(rig: Rig) -> None:
    def outage(strike: Strike) -> None:
        strike.at_fraction(0.25)
        with strike.projector.killed():
            time.sleep(OUTAGE_S)  # holds the fault: the projector and its store stay down

    tally = run_case(f"projector (ClickHouse) kill -9, down {OUTAGE_S:.0f} s", rig, outage)
    assert tally.projector_restarts == 1
