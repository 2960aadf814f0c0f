"""The advice in words: the cheapest way to serve the tenant, and what would change it."""

from __future__ import annotations

from datetime import timedelta

from tests.advice.conftest import MODEL, START
from tokenmill.advice.advisor import Advice, bills
from tokenmill.advice.breakeven import BreakEven
from tokenmill.advice.replay import CostModel
from tokenmill.advice.trace import TenantTrace
from tokenmill.advice.words import recommend
from tokenmill.sim.workload import TraceRow

OFFICE = [0] * 9 + [2] * 8 + [0] * 7  # two accelerators from 09:00 to 17:00


def advice(
    always_on: int | None,
    scheduled: list[int | None],
    hour_micros: int,
    curve: BreakEven,
) -> Advice:
    """Thirty days of 3,000 requests a day that cost 3,000,000 micros in all (a month)."""
    rows = [TraceRow(i * 864.0, 100, 10) for i in range(3000)]
    trace = TenantTrace(MODEL, START, START + timedelta(days=30), rows * 30)
    trace.serverless_micros_by_month = {"2026-02": 3_000_000}
    gpu = CostModel.parse("llama3.1-8b@L4")
    months = bills(trace, always_on, scheduled, hour_micros)
    return Advice("ten_a", trace, gpu, hour_micros, always_on, scheduled, months, curve)


def test_a_fleet_cheaper_all_day_is_dedicated() -> None:
    mode, reasons = recommend(advice(1, [1] * 24, 1_000, BreakEven(0.2, None)))

    assert mode == "dedicated"
    assert reasons == [
        "Dedicated saves 76% at your volume: 0.720000 a month against 3.000000 per token.",
        "1 L4 always on hold your traffic within the SLO.",
        "Dedicated pays from about 600 requests a day (0.2x your volume).",
    ]


def test_a_fleet_that_follows_the_hours_of_the_day_is_scheduled() -> None:
    mode, reasons = recommend(advice(2, OFFICE, 1_000, BreakEven(None, "below")))

    assert mode == "scheduled"
    assert "(0 to 2 L4) saves 67% more than 2 always on." in reasons[1]
    assert reasons[-1] == "Dedicated stays cheaper down to a tenth of your volume."


def test_dear_accelerators_leave_the_tenant_on_serverless() -> None:
    mode, reasons = recommend(advice(2, OFFICE, 10_000_000, BreakEven(None, "above")))

    assert mode == "serverless"
    assert reasons[0].startswith("Serverless is cheaper: 3.000000 a month per token")
    assert "2 L4 always on at 10.000000 an hour, or 0 to 2 by the hour of the day)." in reasons[0]
    assert "would pay above 30,000 requests a day" in reasons[-1]


def test_no_fleet_that_holds_the_traffic_leaves_it_on_serverless() -> None:
    mode, reasons = recommend(advice(None, [None] * 24, 1, BreakEven(None, "above")))

    assert mode == "serverless"
    assert reasons[0] == (
        "No dedicated fleet of L4 tried keeps 99% of your requests within the SLO."
    )
