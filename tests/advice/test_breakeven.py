"""Scaling a tenant's traffic, and where a per-token and a per-hour bill cross."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from itertools import pairwise

import pytest

from tests.advice.conftest import SECONDS_PER_DAY, office_hours, steady
from tokenmill.advice.breakeven import (
    GRID,
    JITTER_SECONDS,
    curve,
    first_crossing,
    rows_at,
    scaled_rows,
    sped_rows,
)

SLOPE = 100.0  # serverless micros per unit of volume
HOUR_COST = 300.0  # one accelerator over the window


def needs(overhead: float, capacity: float = 4.0) -> Callable[[float], int]:
    """The least fleet for a volume: ``capacity`` per accelerator, after a fixed ``overhead``."""
    return lambda factor: math.ceil((factor + overhead) / capacity)


def crossing(fleet: Callable[[float], int], **bounds: float) -> tuple[float | None, str | None]:
    """``first_crossing`` with the bills above; every fleet asked about is checked once."""
    asked: list[int] = []

    def serves(accelerators: int, factor: float) -> bool:
        asked.append(accelerators)
        return accelerators >= fleet(factor)

    low = bounds.get("low", GRID[0])
    found = first_crossing(
        SLOPE, HOUR_COST, serves, first_fleet=fleet(low), low=low, high=bounds.get("high", GRID[-1])
    )
    assert len(asked) == len(set(asked)), asked
    return found


def scanned(fleet: Callable[[float], int], low: float, high: float) -> float | None:
    """The least volume on a 0.01 grid where serverless costs no less than dedicated."""
    steps = range(round(low * 100), round(high * 100) + 1)
    return next((s / 100 for s in steps if SLOPE * s / 100 >= HOUR_COST * fleet(s / 100)), None)


def test_the_first_crossing_is_where_one_accelerator_starts_to_pay() -> None:
    assert crossing(needs(0.0)) == (pytest.approx(HOUR_COST / SLOPE), None)  # 3x
    assert scanned(needs(0.0), 0.1, 10.0) == 3.0


def test_a_fleet_that_does_not_hold_its_crossing_is_stepped_over() -> None:
    # a fixed overhead: one accelerator pays from 3x but holds only 2x; two pay from 6x
    assert crossing(needs(2.0)) == (6.0, None)
    # twenty accelerators: found by galloping past 6 then bisecting back to 20
    assert crossing(needs(20.0), high=100.0) == (60.0, None)
    for overhead in (0.5, 2.0, 7.0, 20.0, 33.0):
        found, beyond = crossing(needs(overhead), high=100.0)
        assert found == pytest.approx(scanned(needs(overhead), 0.1, 100.0)), overhead
        assert beyond is None


def test_dedicated_cheaper_at_the_low_end_is_below() -> None:
    assert crossing(lambda factor: 1, low=5.0) == (None, "below")
    assert crossing(lambda factor: 1, low=3.0) == (None, "below")  # costs no more there


def test_dedicated_never_cheaper_in_the_range_is_above() -> None:
    assert crossing(needs(0.0, capacity=2.0)) == (None, "above")  # an accelerator holds too little
    assert crossing(needs(20.0)) == (None, "above")  # pays only from 60x
    assert crossing(needs(0.0), high=2.9) == (None, "above")
    assert first_crossing(SLOPE, HOUR_COST, lambda n, f: True, first_fleet=0) == (None, "above")


def test_a_crossing_needs_bills_that_grow_and_a_range() -> None:
    for slope, hour, bounds in [
        (0.0, 300.0, {}),
        (100.0, 0.0, {}),
        (-1.0, 300.0, {}),
        (100.0, 300.0, {"low": 0.0}),
        (100.0, 300.0, {"low": 5.0, "high": 2.0}),
    ]:
        with pytest.raises(ValueError):
            first_crossing(slope, hour, lambda n, f: True, first_fleet=1, **bounds)


def test_the_curve_holds_both_bills_at_every_grid_point_in_order() -> None:
    fleet = needs(2.0)

    points = curve(lambda f: SLOPE * f, lambda f: HOUR_COST * fleet(f))

    assert [p.factor for p in points] == list(GRID)
    assert [p.serverless_micros for p in points] == [SLOPE * f for f in GRID]
    assert [p.dedicated_micros for p in points] == [HOUR_COST * fleet(f) for f in GRID]
    assert [p.factor for p in curve(lambda f: f, lambda f: f, grid=(1.0, 3.0))] == [1.0, 3.0]
    for grid in [(), (1.0, 1.0), (2.0, 1.0), (0.0, 1.0), (-1.0, 1.0)]:
        with pytest.raises(ValueError, match="grid"):
            curve(lambda f: f, lambda f: f, grid=grid)


def test_scaled_rows_hold_factor_times_the_requests_over_the_same_span() -> None:
    rows = office_hours(days=3, per_hour=30)
    span = 3 * SECONDS_PER_DAY

    for factor in (0.5, 2.0, 2.5, 4.0):
        scaled = scaled_rows(rows, factor, span, seed=1)

        assert abs(len(scaled) - factor * len(rows)) <= 4 * math.sqrt(len(rows))
        assert all(0.0 <= row.arrival_seconds < span for row in scaled)
        assert scaled == sorted(scaled, key=lambda row: row.arrival_seconds)
    whole = scaled_rows(rows, 3.0, span)
    assert len(whole) == 3 * len(rows)
    tokens = Counter((r.prompt_tokens, r.output_tokens) for r in rows)
    assert Counter((r.prompt_tokens, r.output_tokens) for r in whole) == tokens + tokens + tokens


def test_scaled_rows_keep_the_hours_of_the_day() -> None:
    rows = office_hours(days=3, per_hour=10)

    scaled = scaled_rows(rows, 3.5, 3 * SECONDS_PER_DAY, seed=7)

    # whole days and a jitter: nobody works at night, however much more they work
    opens, closes = 9 * 3600.0 - JITTER_SECONDS, 17 * 3600.0 + JITTER_SECONDS
    assert all(opens <= row.arrival_seconds % SECONDS_PER_DAY < closes for row in scaled)
    by_day = Counter(int(row.arrival_seconds // SECONDS_PER_DAY) for row in scaled)
    assert sorted(by_day) == [0, 1, 2]


def test_scaled_rows_are_the_same_for_the_same_seed() -> None:
    rows = steady(200, 3.0)

    assert scaled_rows(rows, 2.5, 600.0, seed=3) == scaled_rows(rows, 2.5, 600.0, seed=3)
    assert scaled_rows(rows, 2.5, 600.0, seed=3) != scaled_rows(rows, 2.5, 600.0, seed=4)
    assert scaled_rows(rows, 1.0, 600.0) == rows
    assert set(scaled_rows(rows, 0.3, 600.0)) < set(rows)  # a thinned copy, not moved


def test_scaled_rows_refuse_a_factor_or_span_that_is_not_positive() -> None:
    rows = steady(10, 1.0)
    for factor, span in [(0.0, 60.0), (-1.0, 60.0), (1.0, 0.0), (2.0, -5.0)]:
        with pytest.raises(ValueError, match="positive"):
            scaled_rows(rows, factor, span)
    assert scaled_rows([], 3.0, 60.0) == []


def test_sped_rows_are_the_same_arrivals_faster_repeated_over_the_span() -> None:
    rows = steady(100, 6.0)  # one every 6 s over 600 s

    faster = sped_rows(rows, 2.5, 600.0)

    assert len(faster) == 250
    assert faster == sorted(faster, key=lambda row: row.arrival_seconds)
    gaps = {round(b.arrival_seconds - a.arrival_seconds, 6) for a, b in pairwise(faster)}
    assert gaps == {2.4}  # 6 s / 2.5: the same pattern, only faster
    assert all(0.0 <= row.arrival_seconds < 600.0 for row in faster)


def test_sped_rows_slower_keep_the_first_part_stretched() -> None:
    rows = office_hours(days=2, per_hour=10)

    slower = sped_rows(rows, 0.5, 2 * SECONDS_PER_DAY)

    assert len(slower) == len(rows) // 2  # the first day, over both days
    assert {r.arrival_seconds for r in slower} == {2 * r.arrival_seconds for r in rows[:80]}
    assert sped_rows(rows, 1.0, 2 * SECONDS_PER_DAY) == rows


def test_rows_at_names_its_scalings() -> None:
    rows = steady(50, 2.0)

    assert rows_at(rows, 2.0, 100.0, "arrivals") == sped_rows(rows, 2.0, 100.0)
    assert rows_at(rows, 2.0, 100.0, "users") == scaled_rows(rows, 2.0, 100.0)
    with pytest.raises(ValueError, match="unknown scaling 'people'; known: arrivals, users"):
        rows_at(rows, 2.0, 100.0, "people")
    with pytest.raises(ValueError, match="positive"):
        sped_rows(rows, 0.0, 100.0)
