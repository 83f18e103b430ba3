"""The control row: the same load with no fault, so each fault's row reads against it."""

from tests.faults.case import Rig, Strike, run_case


def test_no_fault(rig: Rig) -> None:
    def nothing(strike: Strike) -> None:
        return None

    run_case("no fault (control)", rig, nothing)
