from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.billing.test_usage import usage_event
from tokenmill.billing.levels import percentile, service_levels
from tokenmill.billing.usage import UsageRepository
from tokenmill.store.db import Database

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
TARGETS = {"priority": 1.0, "default": 5.0, "flex": 60.0}


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.99)) == (50.0, 99.0)
    assert percentile([3.0], 0.99) == 3.0
    assert percentile([], 0.5) is None


def test_levels_per_model_and_tier_with_refusals_failures_and_attainment(
    database: Database,
) -> None:
    events = [
        # priority: two streamed answers, one within the 1 s target
        usage_event("p1", service_tier="priority", ttft_seconds=0.5, duration_seconds=1.5,
                    completion_tokens=11, created_at=NOW),
        usage_event("p2", service_tier="priority", ttft_seconds=2.0, duration_seconds=3.0,
                    completion_tokens=11, created_at=NOW),
        # default: one answered whole (no first token seen), one refused, one failed upstream
        usage_event("d1", service_tier="default", stream=False, ttft_seconds=None,
                    created_at=NOW),
        usage_event("d2", service_tier="default", status="error", http_status=429,
                    error_code="service_tier_overloaded", completion_tokens=0, created_at=NOW),
        usage_event("d3", service_tier="default", status="error", http_status=502,
                    error_code="upstream_error", completion_tokens=0, created_at=NOW),
        # outside the window, and another tenant's
        usage_event("old", service_tier="default", created_at=NOW - timedelta(days=2)),
        usage_event("other", tenant_id="ten_2", service_tier="flex", created_at=NOW),
    ]  # fmt: skip
    UsageRepository(database).insert_many(events)
    rows = service_levels(database, TARGETS, tenant_id="ten_1", since=NOW - timedelta(hours=1))
    by_tier = {row.service_tier: row for row in rows}
    assert set(by_tier) == {"priority", "default"}
    priority, default = by_tier["priority"], by_tier["default"]
    assert (priority.requests, priority.answered, priority.attainment) == (2, 2, 0.5)
    assert (priority.ttft_p50, priority.ttft_p99) == (0.5, 2.0)
    assert priority.tpot_p50 == pytest.approx(0.1)
    assert priority.ttft_target_seconds == 1.0
    assert (default.requests, default.answered, default.attainment) == (3, 1, None)
    assert default.errors == {"service_tier_overloaded": 1, "upstream_error": 1}
    assert default.availability == pytest.approx(2 / 3)
    everyone = service_levels(database, TARGETS, since=NOW - timedelta(hours=1))
    assert {row.service_tier for row in everyone} == {"priority", "default", "flex"}
