"""The console's live overview: throughput, time to first token and errors over a window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.billing.test_usage import usage_event
from tokenmill.billing.overview import BUCKETS, Sample, UsageOverview, percentile, summarize
from tokenmill.billing.usage import UsageRepository
from tokenmill.clock import ManualClock
from tokenmill.store.db import Database

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def sample(seconds_ago: float, ttft: float | None = 0.2, status: str = "ok") -> Sample:
    return Sample(NOW - timedelta(seconds=seconds_ago), 10, 40, ttft, status)


def test_percentile_is_the_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([1.0], 0.95) == 1.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.95) == 95.0


def test_summary_counts_the_window_only_and_derives_rates() -> None:
    samples = [
        sample(1, ttft=0.1),
        sample(30, ttft=0.3),
        sample(59, ttft=0.2),
        sample(10, ttft=None, status="error"),
        sample(60),  # on the window's open edge: out
        sample(-1),  # in the future: out
    ]
    o = summarize(samples, NOW, 60)
    assert (o.requests, o.errors) == (4, 1)
    assert (o.prompt_tokens, o.completion_tokens) == (40, 160)
    assert o.prompt_tokens_per_second == pytest.approx(40 / 60)
    assert o.completion_tokens_per_second == pytest.approx(160 / 60)
    assert o.ttft_mean_seconds == pytest.approx(0.2)
    assert (o.ttft_p50_seconds, o.ttft_p95_seconds) == (0.2, 0.3)


def test_errors_do_not_count_towards_time_to_first_token() -> None:
    o = summarize([sample(5, ttft=9.0, status="error")], NOW, 60)
    assert o.errors == 1 and o.ttft_mean_seconds is None and o.ttft_p95_seconds is None


def test_series_buckets_cover_the_window_in_order() -> None:
    o = summarize([sample(59.5), sample(0.5), sample(0.1)], NOW, 60)
    assert len(o.series) == BUCKETS
    assert o.series[0].start == (NOW - timedelta(seconds=60)).isoformat()
    assert [b.requests for b in o.series][:1] == [1] and o.series[-1].requests == 2
    assert sum(b.completion_tokens for b in o.series) == o.completion_tokens
    assert o.as_json()["object"] == "overview"


def test_repository_reads_one_tenant_or_all(database: Database) -> None:
    clock = ManualClock(wall=NOW)
    UsageRepository(database).insert_many(
        [
            usage_event("a", tenant_id="t1", created_at=NOW - timedelta(seconds=5)),
            usage_event("b", tenant_id="t2", created_at=NOW - timedelta(seconds=20)),
            usage_event("c", tenant_id="t1", created_at=NOW - timedelta(seconds=120)),
        ]
    )
    overview = UsageOverview(database, clock)
    assert overview.summary(None, 60).requests == 2
    assert overview.summary("t1", 60).requests == 1
    assert overview.summary("t1", 300).requests == 2
    record = overview.record("b")
    assert record is not None and record.tenant_id == "t2"
    assert overview.record("missing") is None
    for bad in (0, 86_401):
        with pytest.raises(ValueError):
            overview.summary(None, bad)
