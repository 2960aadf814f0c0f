"""Dedicated fleets sized by replaying a trace in the simulator, and the trace's days and hours."""

from __future__ import annotations

from typing import Any

import pytest

import tokenmill.advice.replay as replay_module
from tests.advice.conftest import SECONDS_PER_DAY, steady
from tokenmill.advice.breakeven import scaled_rows
from tokenmill.advice.replay import (
    CostModel,
    FleetSizer,
    busiest_days,
    hour_slots,
    replay,
    scheduled_fleet,
)
from tokenmill.sim.perf import CPU_CALIBRATION, model_spec
from tokenmill.sim.run import Workload, simulate
from tokenmill.sim.search import SLO_TARGET
from tokenmill.sim.workload import MOONCAKE_BLOCK_TOKENS, SimRequest, TraceRow

CPU = CostModel.parse("cpu")
SPAN = 600.0
BUSY = steady(600, 1.0)  # a request a second for ten minutes: about one CPU replica's worth


def test_cost_models_parse_the_cpu_or_an_architecture_on_an_accelerator() -> None:
    assert (CPU.name, CPU.accelerator, CPU.accelerator_name) == ("cpu", None, "cpu")
    assert CPU.architecture == "smollm2-135m"
    cpu_scenario = CPU.scenario()
    assert (cpu_scenario.calibration, cpu_scenario.accelerators_per_node) == (CPU_CALIBRATION, 1)

    gpu = CostModel.parse("llama3.1-8b@H100-80GB")
    assert (gpu.architecture, gpu.accelerator, gpu.name) == (
        "llama3.1-8b",
        "H100-80GB",
        "llama3.1-8b@H100-80GB",
    )
    assert gpu.accelerator_name == "H100-80GB"
    assert (gpu.scenario().accelerator, gpu.scenario().calibration) == ("H100-80GB", None)
    assert CostModel.parse(gpu.name) == gpu


@pytest.mark.parametrize("text", ["gpu", "CPU", "llama3.1-8b", "gpt-9@H100-80GB", "@H100-80GB"])
def test_an_unknown_cost_model_is_refused_naming_the_known_architectures(text: str) -> None:
    with pytest.raises(
        ValueError, match=r"ARCHITECTURE@ACCELERATOR.*architectures: .*llama3\.1-8b"
    ):
        CostModel.parse(text)


@pytest.mark.parametrize("kind", ["TPU-v9", "", "cpu"])
def test_an_unknown_accelerator_kind_is_refused(kind: str) -> None:
    with pytest.raises(ValueError, match=r"accelerators: .*H100-80GB"):
        CostModel.parse(f"llama3.1-8b@{kind}")


def test_replay_serves_every_request_on_always_on_replicas() -> None:
    summary = replay(steady(60, 5.0), CPU, 2)

    assert summary.policy == "always_on"
    assert summary.requests == summary.completed == 60
    assert summary.slo_attainment == 1.0
    assert summary.accelerators_provisioned == pytest.approx(2.0, rel=0.05)


def test_fleets_grow_with_the_volume_and_are_searched_within_known_bounds() -> None:
    sizer = FleetSizer(CPU)

    sizes = {
        factor: sizer.smallest(scaled_rows(BUSY, factor, SPAN), factor) for factor in (1.0, 3.0)
    }
    sizes[2.0] = sizer.smallest(scaled_rows(BUSY, 2.0, SPAN), 2.0)

    assert sizes[1.0] is not None and sizes[2.0] is not None and sizes[3.0] is not None
    assert sizes[1.0] <= sizes[2.0] <= sizes[3.0]
    assert sizes[1.0] < sizes[3.0]
    assert sizer.sizes == sizes
    # the middle volume was searched only between its neighbours' sizes
    assert all(sizes[1.0] <= n <= sizes[3.0] for factor, n in sizer.runs if factor == 2.0)
    utilisation = sizer.utilisation(3.0)
    assert utilisation is not None and 0.0 < utilisation <= 1.0
    assert sizer.utilisation(7.0) is None


def test_the_smallest_fleet_is_what_the_simulator_finds_with_always_on() -> None:
    rows = scaled_rows(BUSY, 2.0, SPAN)
    size = FleetSizer(CPU).smallest(rows)
    assert size is not None and size >= 2

    spec = model_spec("tenant-model", "smollm2-135m")
    requests = [
        SimRequest(i, r.arrival_seconds, spec.model_id, r.prompt_tokens, r.output_tokens)
        for i, r in enumerate(rows)
    ]
    workload = Workload([spec], requests, MOONCAKE_BLOCK_TOKENS, "the same rows")

    def attainment(accelerators: int) -> float:
        return simulate(CPU.scenario(), workload, "always_on", accelerators).summary.slo_attainment

    assert attainment(size) >= SLO_TARGET > attainment(size - 1)


def test_sizes_are_remembered_and_no_traffic_needs_no_fleet() -> None:
    sizer = FleetSizer(CPU)
    first = sizer.smallest(steady(30, 10.0))
    runs = dict(sizer.runs)

    assert sizer.smallest(steady(30, 10.0)) == first == 1
    assert sizer.runs == runs
    assert FleetSizer(CPU).smallest([], 2.0) == 0


def test_no_fleet_holds_requests_longer_than_a_replica_s_memory() -> None:
    sizer = FleetSizer(CPU)

    assert sizer.smallest(steady(3, 1.0, prompt_tokens=10**7)) is None
    assert sorted(n for _, n in sizer.runs) == [1, 2]  # doubling gained nothing: no search


def test_a_fleet_that_keeps_missing_is_searched_up_to_the_largest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(replay_module, "MOST_ACCELERATORS", 4)
    attainment = {1: 0.5, 2: 0.7, 4: 0.9}
    monkeypatch.setattr(
        replay_module, "replay", lambda rows, cost_model, n: _summary(attainment[n])
    )
    sizer = FleetSizer(CPU)

    assert sizer.smallest(steady(3, 1.0)) is None
    assert sorted(n for _, n in sizer.runs) == [1, 2, 4]


def day_rows(counts: list[int]) -> list[TraceRow]:
    """``counts[d]`` requests on day ``d``, an hour apart from 01:00."""
    return [
        TraceRow(day * SECONDS_PER_DAY + (i + 1) * 3600.0, 100 + day, 10)
        for day, count in enumerate(counts)
        for i in range(count)
    ]


def test_busiest_days_are_laid_end_to_end_in_their_order() -> None:
    rows = day_rows([5, 20, 10, 15])
    span = 4 * SECONDS_PER_DAY

    chosen, covered = busiest_days(rows, span, most_requests=35)

    assert covered == 2 * SECONDS_PER_DAY
    assert [r.prompt_tokens for r in chosen] == [101] * 20 + [103] * 15  # days 1 and 3
    assert [r.arrival_seconds for r in chosen[:2]] == [3600.0, 7200.0]
    assert chosen[20].arrival_seconds == SECONDS_PER_DAY + 3600.0
    alone, one_day = busiest_days(rows, span, most_requests=3)  # at least the busiest day
    assert one_day == SECONDS_PER_DAY
    assert [(r.arrival_seconds, r.prompt_tokens) for r in alone] == [
        ((i + 1) * 3600.0, 101) for i in range(20)
    ]


def test_a_trace_within_the_budget_or_a_day_is_replayed_whole() -> None:
    rows = day_rows([5, 20, 10, 15])
    assert busiest_days(rows, 4 * SECONDS_PER_DAY, most_requests=50) == (rows, 4 * SECONDS_PER_DAY)
    short = steady(100, 60.0)
    assert busiest_days(short, 6000.0, most_requests=10) == (short, 6000.0)


def test_hour_slots_gather_each_hour_of_the_day_over_the_days() -> None:
    rows = [
        TraceRow(1800.0, 1, 1),  # 22:30 on day 0 (the window starts at 22:00)
        TraceRow(2.25 * 3600, 2, 1),  # 00:15 on day 1
        TraceRow(25.1 * 3600, 3, 1),  # 23:06 on day 1
        TraceRow(24.2 * 3600, 4, 1),  # 22:12 on day 1
    ]

    slots = hour_slots(rows, 22 * 3600.0)

    assert len(slots) == 24
    assert slots[22] == [TraceRow(1800.0, 1, 1), TraceRow(3600.0 + 720.0, 4, 1)]
    assert [(r.arrival_seconds, r.prompt_tokens) for r in slots[0]] == [(3600.0 + 900.0, 2)]
    assert [r.arrival_seconds for r in slots[23]] == pytest.approx([3600.0 + 360.0])
    assert sum(len(slot) for slot in slots) == len(rows)


def test_hour_slots_follow_the_clock_when_the_window_starts_within_an_hour() -> None:
    rows = [TraceRow(600.0, 1, 1), TraceRow(2400.0, 2, 1)]  # 22:40 and 23:10

    slots = hour_slots(rows, 22.5 * 3600)

    assert [r.prompt_tokens for r in slots[22]] == [1]
    assert [(r.arrival_seconds, r.prompt_tokens) for r in slots[23]] == [(600.0, 2)]


def test_a_scheduled_fleet_sleeps_through_the_hours_without_requests() -> None:
    rows = [
        TraceRow(day * SECONDS_PER_DAY + 9.5 * 3600 + i, 100, 20) for day in (0, 1) for i in (0, 60)
    ]

    sizes = scheduled_fleet(rows, CPU, 0.0)

    assert sizes[9] == 1
    assert sizes[:9] + sizes[10:] == [0] * 23


def _summary(attainment: float) -> Any:
    class Ran:
        slo_attainment = attainment
        busy_utilisation = 0.5

    return Ran()
