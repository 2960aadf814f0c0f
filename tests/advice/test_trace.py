"""A tenant's usage records as the advisor's trace and serverless bill."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.advice.conftest import END, MODEL, START, every, requests
from tokenmill.advice.trace import TenantTrace, extract
from tokenmill.sim.workload import TraceRow

PLUS_TWO = timezone(timedelta(hours=2))


def test_the_bill_is_each_utc_month_s_cost_of_the_model_in_the_window() -> None:
    events = [
        *requests("ten_a", every(START, 2, 3), cost_micros=1_250),
        *requests("ten_a", [START + timedelta(minutes=50)], cost_micros=7, name="big"),
    ]
    trace = extract(events, MODEL, START, END)

    spent: Counter[str] = Counter()
    for event in events:
        spent[event.created_at.strftime("%Y-%m")] += event.cost_micros
    assert trace.serverless_micros_by_month == dict(spent) == {"2026-01": 3757, "2026-02": 3750}
    assert trace.serverless_micros == sum(e.cost_micros for e in events)
    assert trace.requests_by_month == {"2026-01": 4, "2026-02": 3}
    assert len(trace.rows) == 7


def test_a_request_arrived_its_duration_before_its_record() -> None:
    events = requests("ten_a", [START + timedelta(seconds=100)], duration_seconds=30.0)
    events += requests("ten_a", [START + timedelta(seconds=10)], duration_seconds=30.0, name="e")
    events += requests("ten_a", [START + timedelta(seconds=50)], completion_tokens=0, name="n")

    trace = extract(events, MODEL, START, END)

    assert trace.rows == [
        TraceRow(0.0, 12, 30),  # began before the window: from its start
        TraceRow(48.5, 12, 1),  # no output still takes a step to answer
        TraceRow(70.0, 12, 30),
    ]


def test_other_models_and_records_outside_the_window_are_left_out() -> None:
    inside = requests("ten_a", [START, END - timedelta(microseconds=1)])
    outside = requests("ten_a", [START - timedelta(seconds=1), END], name="out")
    other = requests("ten_a", [START + timedelta(minutes=5)], model="other-model", name="o")

    trace = extract([*outside, *inside, *other], MODEL, START, END)

    assert len(trace.rows) == 2
    assert trace.serverless_micros == 2_000
    assert trace.model == MODEL and (trace.start, trace.end) == (START, END)
    assert extract(other, MODEL, START, END).serverless_micros == 0


def test_a_record_without_prompt_tokens_is_billed_but_not_replayed() -> None:
    failed = requests("ten_a", [START + timedelta(minutes=1)], prompt_tokens=0, cached_tokens=0)
    served = requests("ten_a", [START + timedelta(minutes=2)], name="ok")

    trace = extract([*failed, *served], MODEL, START, END)

    assert trace.serverless_micros == 2_000
    assert trace.requests_by_month == {"2026-01": 1}
    assert [row.prompt_tokens for row in trace.rows] == [12]


def test_hour_seconds_splits_the_window_at_each_month_s_start() -> None:
    assert TenantTrace(MODEL, START, END).hour_seconds() == {"2026-01": 3600.0, "2026-02": 3600.0}
    long = TenantTrace(MODEL, datetime(2026, 1, 15, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC))
    assert long.hour_seconds() == {
        "2026-01": 17 * 86400.0,
        "2026-02": 28 * 86400.0,
        "2026-03": 86400.0,
    }
    assert sum(long.hour_seconds().values()) == (long.end - long.start).total_seconds()
    assert long.days == 46.0


def test_traffic_figures_per_day_and_the_peak_hour() -> None:
    events = requests("ten_a", every(START, 1, 3), prompt_tokens=20, completion_tokens=10)
    events += requests("ten_a", [START + timedelta(minutes=90)], name="late")
    trace = extract(events, MODEL, START, END)

    assert trace.hourly_counts() == [3, 1]
    assert trace.peak_hour_ratio() == 1.5
    assert trace.requests_per_day == 4 * 12
    assert trace.tokens_per_day == (3 * 30 + 42) * 12
    assert TenantTrace(MODEL, START, END).peak_hour_ratio() == 0.0


def test_a_window_must_end_after_it_starts() -> None:
    with pytest.raises(ValueError, match="end after"):
        extract([], MODEL, END, START)


def test_hour_seconds_splits_at_utc_month_boundaries_whatever_the_window_s_offset() -> None:
    # The admin route passes ``since`` with the offset the caller wrote: 01:00+02:00 on
    # 1 February is 23:00 UTC on 31 January, an hour of January's statement.
    start = datetime(2026, 2, 1, 1, tzinfo=PLUS_TWO)
    assert start == START

    assert TenantTrace(MODEL, start, start + timedelta(hours=2)).hour_seconds() == {
        "2026-01": 3600.0,
        "2026-02": 3600.0,
    }


def test_a_record_counts_in_its_utc_month_whatever_its_offset() -> None:
    late = requests("ten_a", [datetime(2026, 2, 1, 0, 30, tzinfo=PLUS_TWO)])  # 22:30 UTC

    trace = extract(late, MODEL, START - timedelta(hours=2), END)

    assert trace.serverless_micros_by_month == {"2026-01": 1000}
