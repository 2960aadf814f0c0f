import pytest

from tokenmill.sim.run import Scenario, build_workload, simulate
from tokenmill.sim.search import smallest_fleet


def test_bisection_finds_the_threshold_and_doubles_past_a_low_guess() -> None:
    calls: list[int] = []

    def attainment(n: int) -> float:
        calls.append(n)
        return 1.0 if n >= 23 else 0.5

    found = smallest_fleet(attainment, start=4)
    assert found.smallest_accelerators == 23
    assert found.monotone
    assert len(calls) == len(set(calls)) < 12


def test_search_reports_not_found_and_non_monotone_attainment() -> None:
    assert smallest_fleet(lambda n: 0.5, start=2, most=8).smallest_accelerators is None
    bumpy = smallest_fleet(lambda n: {4: 0.995, 2: 0.5, 3: 0.999}.get(n, 1.0), start=4)
    assert bumpy.smallest_accelerators == 3
    with pytest.raises(ValueError):
        smallest_fleet(lambda n: 1.0, start=0)


def test_simulated_attainment_grows_with_the_fleet() -> None:
    scenario = Scenario(trace="poisson", models=8, rate_per_second=3.0, duration_seconds=300.0)
    workload = build_workload(scenario)
    attainments = [
        simulate(scenario, workload, "tokenmill", n).summary.slo_attainment for n in (1, 2, 4)
    ]
    assert attainments == sorted(attainments)
    assert attainments[0] < 0.99 <= attainments[-1]
