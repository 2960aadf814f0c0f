"""Usage events (one per authenticated request) and their idempotent storage."""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import select

from tokenmill.billing.ledger import usage_debit_rows
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
    "service_tier": 20,
    "app_id": 40,
}
_COUNTS = ("prompt_tokens", "cached_tokens", "completion_tokens", "cost_micros")


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
    cost_micros: int = 0
    service_tier: str = "default"
    app_id: str | None = None  # the App a response ran for (usage per App)

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

    def with_cost(self, cost_micros: int) -> UsageEvent:
        return dataclasses.replace(self, cost_micros=cost_micros)

    def as_row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in COLUMNS}

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
            cost_micros=row.cost_micros,
            service_tier=row.service_tier,
            app_id=row.app_id,
        )


COLUMNS = tuple(field.name for field in dataclasses.fields(UsageEvent))

_LEDGER_COLUMNS = (
    "tenant_id", "kind", "amount_micros", "idempotency_key", "key_id", "model", "note",
    "created_at",
)  # fmt: skip
_SQLITE_USAGE = (
    f"INSERT INTO usage_records ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in COLUMNS)}) ON CONFLICT (request_id) DO NOTHING"
)
_SQLITE_DEBITS = (
    f"INSERT INTO ledger_entries ({', '.join(_LEDGER_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _LEDGER_COLUMNS)}) "
    "ON CONFLICT (idempotency_key) DO NOTHING"
)


def _sqlite_value(value: Any) -> Any:
    """What SQLAlchemy would store in SQLite: UTC wall time as text with microseconds."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


_STAGE = "usage_stage"
# PostgreSQL: rows are copied into a temporary table, then moved in two statements, each
# skipping what is already there; the ledger debits are made from the staged rows in SQL.
_CREATE_STAGE = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} "
    "(LIKE usage_records INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)
_MOVE_USAGE = (
    f"INSERT INTO usage_records ({', '.join(COLUMNS)}) "
    f"SELECT DISTINCT ON (request_id) {', '.join(COLUMNS)} FROM {_STAGE} "
    "ON CONFLICT (request_id) DO NOTHING"
)
_MOVE_DEBITS = (
    "INSERT INTO ledger_entries "
    "(tenant_id, kind, amount_micros, idempotency_key, key_id, model, created_at) "
    f"SELECT DISTINCT ON (request_id) tenant_id, 'usage', -cost_micros, 'usage:' || request_id, "
    f"key_id, model, created_at FROM {_STAGE} WHERE cost_micros > 0 "
    "ON CONFLICT (idempotency_key) DO NOTHING"
)


class UsageRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def insert_many(self, events: Iterable[UsageEvent]) -> int:
        """Writes the events whose ``request_id`` is new, and their ledger debits, in one
        transaction; returns how many events were new.

        Safe to repeat: an event already stored (or repeated in ``events``) is skipped, and
        so is its debit (the ledger's idempotency key is the request id).
        """
        unique: dict[str, UsageEvent] = {}
        for event in events:
            unique.setdefault(event.request_id, event)
        if not unique:
            return 0
        if self._db.dialect == "postgresql":
            return self._copy_in(list(unique.values()))
        return self._insert_sqlite(list(unique.values()))

    def _insert_sqlite(self, events: builtins.list[UsageEvent]) -> int:
        """Straight to the driver: this runs in every gateway, beside the requests it meters,
        and SQLAlchemy's per-row work would cost them several times what SQLite does."""
        rows = [tuple(_sqlite_value(getattr(e, name)) for name in COLUMNS) for e in events]
        debits = [
            tuple(_sqlite_value(row[name]) for name in _LEDGER_COLUMNS)
            for row in usage_debit_rows(events)
        ]
        with self._db.session() as session:
            raw = cast(Any, session.connection().connection.driver_connection)
            before = raw.total_changes
            raw.executemany(_SQLITE_USAGE, rows)
            written = int(raw.total_changes - before)
            if debits:
                raw.executemany(_SQLITE_DEBITS, debits)
            return written

    def _copy_in(self, events: builtins.list[UsageEvent]) -> int:
        with self._db.session() as session:
            connection = session.connection()
            raw = cast(Any, connection.connection.driver_connection)
            with raw.cursor() as cursor:
                cursor.execute(_CREATE_STAGE)
                with cursor.copy(f"COPY {_STAGE} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                    for event in events:
                        copy.write_row([getattr(event, name) for name in COLUMNS])
                cursor.execute(_MOVE_USAGE)
                written = int(cursor.rowcount)
                cursor.execute(_MOVE_DEBITS)
            return written

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
