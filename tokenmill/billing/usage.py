"""Usage events (one per authenticated request) and their idempotent storage."""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Insert, Table, select
from sqlalchemy.dialects import postgresql, sqlite

from tokenmill.store.db import Database
from tokenmill.store.tables import UsageRecord

USAGE_STATUSES = frozenset({"ok", "error", "cancelled"})

# Column widths from tables.UsageRecord: checked when an event is made, so a bad value fails
# at its source instead of being refused later by one database (PostgreSQL) and not the other.
_MAX_CHARS = {
    "request_id": 64,
    "tenant_id": 40,
    "key_id": 40,
    "model": 200,
    "endpoint": 40,
    "error_code": 64,
}
_COUNTS = ("prompt_tokens", "cached_tokens", "completion_tokens")


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """Exactly the columns of ``usage_records``; ``request_id`` is the idempotency key."""

    request_id: str
    tenant_id: str
    key_id: str
    model: str
    endpoint: str
    stream: bool
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    ttft_seconds: float | None
    duration_seconds: float
    status: str
    http_status: int
    error_code: str | None
    created_at: datetime

    def __post_init__(self) -> None:
        if not self.request_id:
            raise ValueError("a usage event needs a request_id")
        if self.status not in USAGE_STATUSES:
            raise ValueError(f"usage status {self.status!r} is not one of {sorted(USAGE_STATUSES)}")
        for name, limit in _MAX_CHARS.items():
            value = getattr(self, name)
            if value is not None and len(value) > limit:
                raise ValueError(f"usage {name} has {len(value)} characters, at most {limit}")
        for name in _COUNTS:
            if getattr(self, name) < 0:
                raise ValueError(f"usage {name} must not be negative")
        if self.created_at.tzinfo is None:
            raise ValueError("usage created_at must be an aware (UTC) datetime")

    def as_row(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_row(cls, row: UsageRecord) -> UsageEvent:
        return cls(
            request_id=row.request_id,
            tenant_id=row.tenant_id,
            key_id=row.key_id,
            model=row.model,
            endpoint=row.endpoint,
            stream=row.stream,
            prompt_tokens=row.prompt_tokens,
            cached_tokens=row.cached_tokens,
            completion_tokens=row.completion_tokens,
            ttft_seconds=row.ttft_seconds,
            duration_seconds=row.duration_seconds,
            status=row.status,
            http_status=row.http_status,
            error_code=row.error_code,
            created_at=row.created_at,
        )


class UsageRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def insert_many(self, events: Iterable[UsageEvent]) -> int:
        """Writes the events whose ``request_id`` is new; returns how many that was.

        Safe to repeat: an event already stored (or repeated in ``events``) is skipped.
        """
        unique: dict[str, dict[str, Any]] = {}
        for event in events:
            unique.setdefault(event.request_id, event.as_row())
        rows = list(unique.values())
        if not rows:
            return 0
        statement = self._insert_ignoring_duplicates().returning(UsageRecord.request_id)
        with self._db.session() as session:
            return len(session.execute(statement, rows).all())

    def _insert_ignoring_duplicates(self) -> Insert:
        table = cast(Table, UsageRecord.__table__)
        if self._db.dialect == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing(index_elements=["request_id"])
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=["request_id"])

    def get(self, request_id: str) -> UsageEvent | None:
        with self._db.session() as session:
            row = session.get(UsageRecord, request_id)
            return UsageEvent.from_row(row) if row is not None else None

    def list(self, tenant_id: str | None = None, limit: int = 100) -> builtins.list[UsageEvent]:
        """Newest first."""
        query = select(UsageRecord).order_by(
            UsageRecord.created_at.desc(), UsageRecord.request_id.desc()
        )
        if tenant_id is not None:
            query = query.where(UsageRecord.tenant_id == tenant_id)
        with self._db.session() as session:
            return [UsageEvent.from_row(row) for row in session.scalars(query.limit(limit))]
