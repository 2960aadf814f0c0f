"""The ``batches`` and ``batch_lines`` tables: a tenant's batches, and each finished line.

Reads by a client take the tenant: another tenant's batch is no batch at all (404). A status
change goes through ``status.move`` under a row lock, stamping the status's timestamp. A
line's result is written once, with the batch's counts, in one transaction: a line that has a
row has finished and is never run again.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select

from tokenmill.batches.objects import BatchInfo, RequestCounts
from tokenmill.batches.output import LineResult
from tokenmill.batches.status import BatchStatus, move
from tokenmill.clock import Clock
from tokenmill.errors import InvalidRequest, NotFound
from tokenmill.store.db import Database
from tokenmill.store.tables import Batch, BatchLine

MAX_LIST_LIMIT = 100
DEFAULT_LIST_LIMIT = 20


def no_such_batch(batch_id: str) -> NotFound:
    return NotFound(f"No batch found with id '{batch_id}'.", param="batch_id", code="not_found")


def _info(row: Batch) -> BatchInfo:
    return BatchInfo(
        id=row.id,
        tenant_id=row.tenant_id,
        key_id=row.key_id,
        endpoint=row.endpoint,
        input_file_id=row.input_file_id,
        completion_window=row.completion_window,
        status=BatchStatus(row.status),
        counts=RequestCounts(row.total, row.completed, row.failed),
        created_at=row.created_at,
        expires_at=row.expires_at,
        metadata=dict(row.meta or {}),
        output_file_id=row.output_file_id,
        error_file_id=row.error_file_id,
        errors=list((row.errors or {}).get("data") or []) or None,
        work_item_id=row.work_item_id,
        times={s.timestamp: getattr(row, s.timestamp) for s in BatchStatus if s.timestamp},
    )


def _result(row: BatchLine) -> LineResult:
    return LineResult(
        row.line_number, row.custom_id, row.status_code, row.request_id, row.response, row.error
    )


@dataclass(frozen=True, slots=True)
class BatchPage:
    data: list[BatchInfo]
    has_more: bool

    def as_openai(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [b.as_openai() for b in self.data],
            "first_id": self.data[0].id if self.data else None,
            "last_id": self.data[-1].id if self.data else None,
            "has_more": self.has_more,
        }


class BatchRepository:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def add(self, info: BatchInfo) -> BatchInfo:
        with self._db.session() as session:
            session.add(
                Batch(
                    id=info.id,
                    tenant_id=info.tenant_id,
                    key_id=info.key_id,
                    endpoint=info.endpoint,
                    input_file_id=info.input_file_id,
                    completion_window=info.completion_window,
                    status=info.status.value,
                    total=0,
                    completed=0,
                    failed=0,
                    meta=dict(info.metadata),
                    work_item_id=info.work_item_id,
                    created_at=info.created_at,
                    expires_at=info.expires_at,
                )
            )
        return info

    def get(self, tenant_id: str, batch_id: str) -> BatchInfo:
        with self._db.session() as session:
            row = session.get(Batch, batch_id)
            if row is None or row.tenant_id != tenant_id:
                raise no_such_batch(batch_id)
            return _info(row)

    def load(self, batch_id: str) -> BatchInfo:
        """Any tenant's batch: for the worker that runs it."""
        with self._db.session() as session:
            row = session.get(Batch, batch_id)
            if row is None:
                raise no_such_batch(batch_id)
            return _info(row)

    def list(
        self, tenant_id: str, *, limit: int = DEFAULT_LIST_LIMIT, after: str | None = None
    ) -> BatchPage:
        """Newest first; ``after`` is the last id already seen."""
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise InvalidRequest(
                f"Invalid 'limit': {limit}; expected 1 to {MAX_LIST_LIMIT}.", param="limit"
            )
        query = select(Batch).where(Batch.tenant_id == tenant_id)
        with self._db.session() as session:
            if after is not None:
                cursor = session.get(Batch, after)
                if cursor is None or cursor.tenant_id != tenant_id:
                    raise InvalidRequest(f"No batch found with id '{after}'.", param="after")
                query = query.where(
                    or_(
                        Batch.created_at < cursor.created_at,
                        and_(Batch.created_at == cursor.created_at, Batch.id < cursor.id),
                    )
                )
            query = query.order_by(Batch.created_at.desc(), Batch.id.desc()).limit(limit + 1)
            rows = builtins.list(session.scalars(query))
        return BatchPage([_info(r) for r in rows[:limit]], has_more=len(rows) > limit)

    def move(self, batch_id: str, target: BatchStatus, **changes: Any) -> BatchInfo:
        """Moves the batch to ``target`` (409 when it cannot go there), stamping the time and
        setting the columns in ``changes`` (``total``, ``errors``, ``output_file_id``...)."""
        now = self._clock.utcnow()
        with self._db.session() as session:
            row = session.get(Batch, batch_id, with_for_update=True)
            if row is None:
                raise no_such_batch(batch_id)
            row.status = move(BatchStatus(row.status), target).value
            if target.timestamp is not None:
                setattr(row, target.timestamp, now)
            for name, value in changes.items():
                setattr(row, name, value)
            session.flush()
            return _info(row)

    def set_files(
        self, batch_id: str, output_file_id: str | None, error_file_id: str | None
    ) -> None:
        with self._db.session() as session:
            row = session.get(Batch, batch_id, with_for_update=True)
            if row is None:
                raise no_such_batch(batch_id)
            row.output_file_id, row.error_file_id = output_file_id, error_file_id

    def record(self, batch_id: str, result: LineResult) -> bool:
        """Writes a finished line and counts it; False when the line was already recorded."""
        with self._db.session() as session:
            row = session.get(Batch, batch_id, with_for_update=True)
            if row is None:
                raise no_such_batch(batch_id)
            if session.get(BatchLine, (batch_id, result.line)) is not None:
                return False
            session.add(
                BatchLine(
                    batch_id=batch_id,
                    line_number=result.line,
                    custom_id=result.custom_id,
                    status_code=result.status_code,
                    request_id=result.request_id,
                    response=result.body,
                    error=result.error,
                    created_at=self._clock.utcnow(),
                )
            )
            # Counted in SQL: SQLite has no row lock to keep a read-modify-write whole.
            if result.succeeded:
                row.completed = Batch.completed + 1
            else:
                row.failed = Batch.failed + 1
            return True

    def results(self, batch_id: str) -> builtins.list[LineResult]:
        with self._db.session() as session:
            rows = session.scalars(
                select(BatchLine)
                .where(BatchLine.batch_id == batch_id)
                .order_by(BatchLine.line_number)
            )
            return [_result(r) for r in rows]

    def finished_lines(self, batch_id: str) -> set[int]:
        with self._db.session() as session:
            query = select(BatchLine.line_number).where(BatchLine.batch_id == batch_id)
            return set(session.scalars(query))

    def status(self, batch_id: str) -> BatchStatus:
        with self._db.session() as session:
            found = session.scalar(select(Batch.status).where(Batch.id == batch_id))
            if found is None:
                raise no_such_batch(batch_id)
            return BatchStatus(found)


def errors_body(errors: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "list", "data": builtins.list(errors)}
