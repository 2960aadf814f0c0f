"""Vector store objects and request rules, alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tokenmill.errors import InvalidRequest
from tokenmill.knowledge.stores import (
    FileCounts,
    batch_status,
    expiry,
    parse_expires_after,
    parse_metadata,
    parse_name,
    store_status,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_expires_after_is_checked_and_moves_with_activity() -> None:
    policy = parse_expires_after({"anchor": "last_active_at", "days": 7})
    assert policy == {"anchor": "last_active_at", "days": 7}
    assert expiry(policy, NOW) == NOW + timedelta(days=7)
    assert parse_expires_after(None) is None and expiry(None, NOW) is None
    for bad, param in [
        ({"anchor": "created_at", "days": 7}, "expires_after.anchor"),
        ({"anchor": "last_active_at", "days": 0}, "expires_after.days"),
        ({"anchor": "last_active_at", "days": 366}, "expires_after.days"),
        ({"anchor": "last_active_at", "days": True}, "expires_after.days"),
        ({"anchor": "last_active_at", "days": 1, "x": 1}, "expires_after"),
    ]:
        with pytest.raises(InvalidRequest) as refused:
            parse_expires_after(bad)
        assert refused.value.param == param


def test_metadata_and_name_limits() -> None:
    assert parse_metadata({"a": "b"}) == {"a": "b"} and parse_metadata(None) == {}
    for bad in ({str(i): "v" for i in range(17)}, {"k" * 65: "v"}, {"k": 1}, {"k": "v" * 513}):
        with pytest.raises(InvalidRequest):
            parse_metadata(bad)
    assert parse_name("docs") == "docs"
    with pytest.raises(InvalidRequest):
        parse_name("n" * 257)


def test_statuses_follow_the_files() -> None:
    assert store_status(FileCounts(in_progress=1), None, NOW) == "in_progress"
    assert store_status(FileCounts(completed=2, failed=1), None, NOW) == "completed"
    assert store_status(FileCounts(in_progress=1), NOW, NOW) == "expired"
    assert batch_status("in_progress", FileCounts(failed=2)) == "failed"
    assert batch_status("in_progress", FileCounts(failed=1, completed=1)) == "completed"
    assert batch_status("cancelled", FileCounts(in_progress=1)) == "cancelled"
    assert FileCounts.of({"completed": 2, "failed": 1}).as_openai()["total"] == 3
