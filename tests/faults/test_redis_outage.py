"""The processor's Redis stopped for 10 s mid-load, then started again (empty). Budgets fail
closed: a request either completes or fails DEPENDENCY_UNAVAILABLE (retryable); the cache and
breakers fail open; nothing hangs (every Redis call has a short timeout) or is lost."""

import time

from tests.faults.case import Rig, Strike, run_case

OUTAGE_S = 10.0
FAILED_CLOSED = "failed DEPENDENCY_UNAVAILABLE (retryable)"


def test_redis_down_mid_load_then_back(rig: Rig) -> None:
    def outage(strike: Strike) -> None:
        strike.at_fraction(0.3)
        rig.redis.stop()
        time.sleep(OUTAGE_S)  # holds the fault: Redis stays down this long
        rig.redis.start()

    tally = run_case(
        f"redis down {OUTAGE_S:.0f} s", rig, outage, allowed={"completed", FAILED_CLOSED}
    )
    assert tally.outcomes[FAILED_CLOSED] > 0  # the outage was felt
