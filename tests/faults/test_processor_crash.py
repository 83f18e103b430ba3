"""``kill -9`` of the foundation processor mid-load; the supervisor starts a new one, which
redoes the uncommitted tail: nothing is lost and the only duplicates are exact."""

from tests.faults.case import Rig, Strike, run_case


def test_processor_killed_mid_load_then_restarted(rig: Rig) -> None:
    def kill_processor(strike: Strike) -> None:
        strike.at_fraction(0.4)
        strike.processor.kill()

    tally = run_case("processor kill -9", rig, kill_processor)
    assert tally.restarts == 1
