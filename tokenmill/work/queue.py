"""The work queue in the database: enqueue, claim under a lease, report, finish, retry, cancel.

One table holds every kind of background work. A worker *claims* the oldest runnable item of
the kinds it runs (``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, the database's write
lock on SQLite), holding a lease it renews with heartbeats. A worker that dies stops renewing;
once its lease expires another worker claims the item again, which counts as an attempt. A
failed attempt is retried after a doubling delay until ``max_attempts``. Cancelling a queued
item ends it at once; a running one is asked to stop and its worker acknowledges.

Times are wall-clock UTC from the clock passed in: leases are compared across processes.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from tokenmill.clock import Clock
from tokenmill.errors import InvalidRequest, NotFound
from tokenmill.store.db import Database
from tokenmill.store.tables import WorkEvent as EventRow
from tokenmill.store.tables import WorkItem as ItemRow
from tokenmill.work.items import QueueCensus, WorkEvent, WorkItem, WorkStatus, retry_delay

EVENT_LEVELS = ("info", "warn", "error", "metrics")


def _item(row: ItemRow) -> WorkItem:
    return WorkItem(
        id=row.id,
        kind=row.kind,
        tenant_id=row.tenant_id,
        payload=dict(row.payload or {}),
        status=WorkStatus(row.status),
        priority=row.priority,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        run_after=row.run_after,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
        cancel_requested=row.cancel_requested,
        progress=row.progress,
        result=dict(row.result) if row.result is not None else None,
        error=row.error,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


class WorkQueue:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def enqueue(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        tenant_id: str | None = None,
        priority: int = 0,
        max_attempts: int = 3,
        idempotency_key: str | None = None,
        delay_seconds: float = 0.0,
    ) -> WorkItem:
        """Adds an item; with an ``idempotency_key`` already used, returns that item instead."""
        if max_attempts < 1:
            raise InvalidRequest("max_attempts is at least 1.", param="max_attempts")
        now = self._clock.utcnow()
        with self._db.session() as session:
            if idempotency_key is not None:
                found = session.scalars(
                    select(ItemRow).where(ItemRow.idempotency_key == idempotency_key)
                ).first()
                if found is not None:
                    return _item(found)
            row = ItemRow(
                id=f"wk_{secrets.token_hex(8)}",
                kind=kind,
                tenant_id=tenant_id,
                payload=payload,
                status=WorkStatus.QUEUED.value,
                priority=priority,
                attempts=0,
                max_attempts=max_attempts,
                run_after=now + timedelta(seconds=delay_seconds),
                cancel_requested=False,
                idempotency_key=idempotency_key,
                created_at=now,
            )
            session.add(row)
            session.flush()
            return _item(row)

    def claim(self, worker: str, kinds: Sequence[str], lease_seconds: float) -> WorkItem | None:
        """The next runnable item of ``kinds``, now leased to ``worker``; None when there is none.

        Runnable: queued and due, or running under a lease that expired (its worker is gone).
        An expired item that has used all its attempts is failed here instead of handed out.
        """
        while True:
            now = self._clock.utcnow()
            with self._db.session() as session:
                row = self._next(session, kinds, now)
                if row is None:
                    return None
                if row.status == WorkStatus.RUNNING.value and row.attempts >= row.max_attempts:
                    self._end(row, WorkStatus.FAILED, now)
                    row.error = (
                        f"its worker {row.lease_owner} stopped renewing its lease "
                        f"(attempt {row.attempts} of {row.max_attempts})"
                    )
                    continue
                row.status = WorkStatus.RUNNING.value
                row.lease_owner = worker
                row.lease_expires_at = now + timedelta(seconds=lease_seconds)
                row.attempts += 1
                row.started_at = row.started_at or now
                session.flush()
                return _item(row)

    def _next(self, session: Session, kinds: Sequence[str], now: Any) -> ItemRow | None:
        if self._db.dialect != "postgresql":
            self._db.lock(session, "work")  # SQLite: claims take turns on the write lock
        query = (
            select(ItemRow)
            .where(
                ItemRow.kind.in_(list(kinds)),
                or_(
                    and_(ItemRow.status == WorkStatus.QUEUED.value, ItemRow.run_after <= now),
                    and_(
                        ItemRow.status == WorkStatus.RUNNING.value,
                        ItemRow.lease_expires_at < now,
                    ),
                ),
            )
            .order_by(ItemRow.priority.desc(), ItemRow.run_after, ItemRow.created_at)
            .limit(1)
        )
        if self._db.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        return session.scalars(query).first()

    def heartbeat(
        self, item_id: str, worker: str, lease_seconds: float, progress: float | None = None
    ) -> bool:
        """Renews the lease (and records progress); False when the worker should stop: the
        lease is no longer its own, or the item was asked to cancel."""
        with self._leased(item_id, worker) as (row, now):
            if row is None:
                return False
            row.lease_expires_at = now + timedelta(seconds=lease_seconds)
            if progress is not None:
                row.progress = min(1.0, max(0.0, progress))
            return not row.cancel_requested

    def complete(self, item_id: str, worker: str, result: dict[str, Any] | None = None) -> bool:
        with self._leased(item_id, worker) as (row, now):
            if row is None:
                return False
            self._end(row, WorkStatus.SUCCEEDED, now)
            row.result, row.progress = result, 1.0
            return True

    def fail(self, item_id: str, worker: str, error: str, *, retryable: bool = True) -> WorkItem:
        """Ends an attempt that failed: queued again after a delay while attempts remain and
        the error is retryable, failed otherwise."""
        now = self._clock.utcnow()
        with self._db.session() as session:
            row = session.get(ItemRow, item_id, with_for_update=self._pg)
            if row is None:
                raise NotFound(f"No work item '{item_id}'.", code="work_not_found")
            if self._owned(row, worker):
                row.error = error[:4000]
                if retryable and row.attempts < row.max_attempts and not row.cancel_requested:
                    row.status = WorkStatus.QUEUED.value
                    row.run_after = now + retry_delay(row.attempts)
                    row.lease_owner, row.lease_expires_at = None, None
                else:
                    self._end(row, WorkStatus.FAILED, now)
            return _item(row)

    def acknowledge_cancel(self, item_id: str, worker: str) -> bool:
        """The worker stopped an item that was asked to cancel."""
        with self._leased(item_id, worker) as (row, now):
            if row is None:
                return False
            self._end(row, WorkStatus.CANCELLED, now)
            return True

    def cancel(self, item_id: str, *, running_too: bool = True) -> WorkItem:
        """Cancels a queued item at once and asks a running one to stop (unless not
        ``running_too``); a finished one stays."""
        now = self._clock.utcnow()
        with self._db.session() as session:
            row = session.get(ItemRow, item_id, with_for_update=self._pg)
            if row is None:
                raise NotFound(f"No work item '{item_id}'.", code="work_not_found")
            if row.status == WorkStatus.QUEUED.value:
                self._end(row, WorkStatus.CANCELLED, now)
            elif row.status == WorkStatus.RUNNING.value and running_too:
                row.cancel_requested = True
            return _item(row)

    def event(
        self, item_id: str, level: str, message: str, data: dict[str, Any] | None = None
    ) -> None:
        if level not in EVENT_LEVELS:
            raise ValueError(f"event level is one of {', '.join(EVENT_LEVELS)}")
        with self._db.session() as session:
            session.add(
                EventRow(
                    item_id=item_id,
                    at=self._clock.utcnow(),
                    level=level,
                    message=message,
                    data=data,
                )
            )

    def events(self, item_id: str, *, after_id: int = 0, limit: int = 100) -> list[WorkEvent]:
        with self._db.session() as session:
            rows = session.scalars(
                select(EventRow)
                .where(EventRow.item_id == item_id, EventRow.id > after_id)
                .order_by(EventRow.id)
                .limit(limit)
            )
            return [WorkEvent(r.id, r.item_id, r.at, r.level, r.message, r.data) for r in rows]

    def latest_events(
        self, item_ids: Sequence[str], *, before: int | None = None, limit: int = 100
    ) -> list[WorkEvent]:
        """The newest events of ``item_ids`` first, older than event ``before`` when given."""
        query = select(EventRow).where(EventRow.item_id.in_(item_ids))
        if before is not None:
            query = query.where(EventRow.id < before)
        with self._db.session() as session:
            rows = session.scalars(query.order_by(EventRow.id.desc()).limit(limit))
            return [WorkEvent(r.id, r.item_id, r.at, r.level, r.message, r.data) for r in rows]

    def get(self, item_id: str) -> WorkItem | None:
        with self._db.session() as session:
            row = session.get(ItemRow, item_id)
            return _item(row) if row is not None else None

    def find(self, idempotency_key: str) -> WorkItem | None:
        """The item enqueued with ``idempotency_key``, if any."""
        with self._db.session() as session:
            row = session.scalars(
                select(ItemRow).where(ItemRow.idempotency_key == idempotency_key)
            ).one_or_none()
            return _item(row) if row is not None else None

    def list(
        self,
        *,
        kind: str | None = None,
        tenant_id: str | None = None,
        status: WorkStatus | None = None,
        limit: int = 100,
    ) -> list[WorkItem]:
        query = select(ItemRow).order_by(ItemRow.created_at.desc(), ItemRow.id).limit(limit)
        if kind is not None:
            query = query.where(ItemRow.kind == kind)
        if tenant_id is not None:
            query = query.where(ItemRow.tenant_id == tenant_id)
        if status is not None:
            query = query.where(ItemRow.status == status.value)
        with self._db.session() as session:
            return [_item(r) for r in session.scalars(query)]

    def census(self) -> QueueCensus:
        """Counts by kind and status, and each kind's oldest due queued item (two grouped
        queries the claim index answers)."""
        now = self._clock.utcnow()
        due = and_(ItemRow.status == WorkStatus.QUEUED.value, ItemRow.run_after <= now)
        with self._db.session() as session:
            counts = session.execute(
                select(ItemRow.kind, ItemRow.status, func.count()).group_by(
                    ItemRow.kind, ItemRow.status
                )
            ).all()
            oldest = session.execute(
                select(ItemRow.kind, func.min(ItemRow.run_after)).where(due).group_by(ItemRow.kind)
            ).all()
        return QueueCensus(
            counts={(kind, WorkStatus(status)): n for kind, status, n in counts},
            oldest_due={kind: at for kind, at in oldest},
        )

    @contextmanager
    def _leased(self, item_id: str, worker: str) -> Iterator[tuple[ItemRow | None, datetime]]:
        """The item's row, locked, while ``worker`` holds its lease (else None), and now."""
        now = self._clock.utcnow()
        with self._db.session() as session:
            row = session.get(ItemRow, item_id, with_for_update=self._pg)
            yield (row if self._owned(row, worker) else None), now

    @property
    def _pg(self) -> bool:
        return self._db.dialect == "postgresql"

    @staticmethod
    def _owned(row: ItemRow | None, worker: str) -> bool:
        return (
            row is not None and row.status == WorkStatus.RUNNING.value and row.lease_owner == worker
        )

    @staticmethod
    def _end(row: ItemRow, status: WorkStatus, now: Any) -> None:
        row.status = status.value
        row.finished_at = now
        row.lease_owner, row.lease_expires_at = None, None
