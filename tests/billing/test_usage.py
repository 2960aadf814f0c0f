from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tokenmill.billing.usage import UsageEvent, UsageRepository
from tokenmill.store.db import Database
from tokenmill.store.tables import UsageRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def usage_event(request_id: str = "req-1", **changes: Any) -> UsageEvent:
    values: dict[str, Any] = {
        "request_id": request_id,
        "tenant_id": "ten_1",
        "key_id": "key_1",
        "model": "smollm2-135m-instruct",
        "endpoint": "chat.completions",
        "stream": True,
        "prompt_tokens": 12,
        "cached_tokens": 4,
        "completion_tokens": 30,
        "ttft_seconds": 0.125,
        "duration_seconds": 1.5,
        "status": "ok",
        "http_status": 200,
        "error_code": None,
        "created_at": T0,
    }
    values.update(changes)
    return UsageEvent(**values)


@pytest.fixture
def usage(database: Database) -> UsageRepository:
    return UsageRepository(database)


def test_event_has_exactly_the_record_columns() -> None:
    fields = [f.name for f in dataclasses.fields(UsageEvent)]
    assert fields == [c.name for c in UsageRecord.__table__.columns]


def test_insert_then_get(usage: UsageRepository) -> None:
    event = usage_event()

    assert usage.insert_many([event]) == 1
    assert usage.get("req-1") == event
    assert usage.get("req-nope") is None


def test_insert_is_idempotent(usage: UsageRepository) -> None:
    first = usage_event("req-1")
    assert usage.insert_many([first]) == 1

    changed = usage_event("req-1", completion_tokens=999)
    assert usage.insert_many([changed, usage_event("req-2")]) == 1
    assert usage.insert_many([first, usage_event("req-2")]) == 0

    assert usage.get("req-1") == first
    assert len(usage.list()) == 2


def test_duplicates_within_a_batch_keep_the_first(usage: UsageRepository) -> None:
    batch = [usage_event("req-1", prompt_tokens=1), usage_event("req-1", prompt_tokens=2)]

    assert usage.insert_many(batch) == 1
    stored = usage.get("req-1")
    assert stored is not None and stored.prompt_tokens == 1


def test_empty_insert(usage: UsageRepository) -> None:
    assert usage.insert_many([]) == 0


def test_nullable_fields_round_trip(usage: UsageRepository) -> None:
    event = usage_event(
        ttft_seconds=None, status="error", http_status=429, error_code="rate_limit_exceeded"
    )
    usage.insert_many([event])
    assert usage.get(event.request_id) == event


def test_large_token_counts(usage: UsageRepository) -> None:
    event = usage_event(prompt_tokens=2**40)
    usage.insert_many([event])
    assert usage.get(event.request_id) == event


def test_list_newest_first_and_by_tenant(usage: UsageRepository) -> None:
    usage.insert_many(
        [
            usage_event("a", created_at=T0),
            usage_event("b", created_at=T0 + timedelta(seconds=1), tenant_id="ten_2"),
            usage_event("c", created_at=T0 + timedelta(seconds=2)),
        ]
    )

    assert [e.request_id for e in usage.list()] == ["c", "b", "a"]
    assert [e.request_id for e in usage.list(tenant_id="ten_1")] == ["c", "a"]
    assert [e.request_id for e in usage.list(limit=1)] == ["c"]


def test_many_events_in_one_call(usage: UsageRepository) -> None:
    events = [usage_event(f"req-{i}") for i in range(2500)]
    assert usage.insert_many(events) == 2500
    assert usage.insert_many(events) == 0
    assert len(usage.list(limit=5000)) == 2500


@pytest.mark.parametrize(
    "changes",
    [
        {"status": "done"},
        {"request_id": ""},
        {"request_id": "r" * 65},
        {"model": "m" * 201},
        {"prompt_tokens": -1},
        {"created_at": datetime(2026, 1, 1)},
    ],
)
def test_invalid_events_are_refused_at_construction(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        usage_event(**changes)
