"""The ``files`` table: a tenant's files, listed in pages, counted against its quota.

Every read takes the tenant: another tenant's file is, to the caller, no file at all. Deleted
and expired files are invisible to reads and are not counted as stored.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from tokenmill.clock import Clock
from tokenmill.errors import InvalidRequest, PayloadTooLarge
from tokenmill.files.objects import FileInfo, StoredSpan
from tokenmill.store.db import Database
from tokenmill.store.tables import StoredFile

MAX_LIST_LIMIT = 10_000
ORDERS = ("asc", "desc")


@dataclass(frozen=True, slots=True)
class FilePage:
    data: list[FileInfo]
    has_more: bool

    def as_openai(self) -> dict[str, object]:
        return {
            "object": "list",
            "data": [f.as_openai() for f in self.data],
            "first_id": self.data[0].id if self.data else None,
            "last_id": self.data[-1].id if self.data else None,
            "has_more": self.has_more,
        }


def _info(row: StoredFile) -> FileInfo:
    return FileInfo(
        id=row.id,
        tenant_id=row.tenant_id,
        key_id=row.key_id,
        purpose=row.purpose,
        filename=row.filename,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


def _live(tenant_id: str, now: datetime) -> ColumnElement[bool]:
    return and_(
        StoredFile.tenant_id == tenant_id,
        StoredFile.deleted_at.is_(None),
        or_(StoredFile.expires_at.is_(None), StoredFile.expires_at > now),
    )


def quota_message(quota_bytes: int, used_bytes: int) -> str:
    return (
        f"The tenant's file storage quota is {quota_bytes} bytes and {used_bytes} bytes are "
        "in use; this file does not fit. Delete files to make room."
    )


class FileRepository:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def add(self, info: FileInfo, quota_bytes: int, place: Callable[[], None]) -> FileInfo:
        """Records the file if the tenant's quota has room; ``place`` puts its bytes in place.

        The quota check, the insert and ``place`` happen under one lock per database, so two
        concurrent uploads cannot both squeeze into the last free bytes. When ``place`` or the
        insert fails, nothing is recorded.
        """
        with self._db.session() as session:
            self._db.lock(session, f"files:{info.tenant_id}")
            used = self._used(session, info.tenant_id, self._clock.utcnow())
            if used + info.size_bytes > quota_bytes:
                raise PayloadTooLarge(
                    quota_message(quota_bytes, used), param="file", code="storage_quota_exceeded"
                )
            session.add(
                StoredFile(
                    id=info.id,
                    tenant_id=info.tenant_id,
                    key_id=info.key_id,
                    purpose=info.purpose,
                    filename=info.filename,
                    size_bytes=info.size_bytes,
                    sha256=info.sha256,
                    created_at=info.created_at,
                    expires_at=info.expires_at,
                    deleted_at=None,
                )
            )
            session.flush()
            place()
        return info

    def get(self, tenant_id: str, file_id: str) -> FileInfo | None:
        now = self._clock.utcnow()
        with self._db.session() as session:
            row = session.scalars(
                select(StoredFile).where(StoredFile.id == file_id, _live(tenant_id, now))
            ).one_or_none()
            return _info(row) if row is not None else None

    def list(
        self,
        tenant_id: str,
        *,
        purpose: str | None = None,
        limit: int = MAX_LIST_LIMIT,
        order: str = "desc",
        after: str | None = None,
    ) -> FilePage:
        """A page in ``created_at`` order (ties by id); ``after`` is the last id already seen."""
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise InvalidRequest(
                f"Invalid 'limit': {limit}; expected 1 to {MAX_LIST_LIMIT}.", param="limit"
            )
        if order not in ORDERS:
            raise InvalidRequest(
                f"Invalid 'order': {order!r}; expected 'asc' or 'desc'.", param="order"
            )
        now = self._clock.utcnow()
        query = select(StoredFile).where(_live(tenant_id, now))
        if purpose is not None:
            query = query.where(StoredFile.purpose == purpose)
        with self._db.session() as session:
            if after is not None:
                cursor = session.scalars(
                    select(StoredFile).where(
                        StoredFile.id == after, StoredFile.tenant_id == tenant_id
                    )
                ).one_or_none()
                if cursor is None:
                    raise InvalidRequest(f"No such File object: {after}", param="after")
                query = query.where(_beyond(cursor, order))
            if order == "asc":
                query = query.order_by(StoredFile.created_at, StoredFile.id)
            else:
                query = query.order_by(StoredFile.created_at.desc(), StoredFile.id.desc())
            rows = list(session.scalars(query.limit(limit + 1)))
        return FilePage([_info(r) for r in rows[:limit]], has_more=len(rows) > limit)

    def mark_deleted(self, tenant_id: str, file_id: str) -> FileInfo | None:
        """Marks the file deleted; ``None`` if the tenant has no such (live) file."""
        now = self._clock.utcnow()
        with self._db.session() as session:
            row = session.scalars(
                select(StoredFile)
                .where(StoredFile.id == file_id, _live(tenant_id, now))
                .with_for_update()
            ).one_or_none()
            if row is None:
                return None
            row.deleted_at = now
            return _info(row)

    def stored_bytes(self, tenant_id: str) -> int:
        """What the tenant stores now: live files only."""
        with self._db.session() as session:
            return self._used(session, tenant_id, self._clock.utcnow())

    def stored_bytes_by_tenant(self) -> dict[str, int]:
        now = self._clock.utcnow()
        query = (
            select(StoredFile.tenant_id, func.sum(StoredFile.size_bytes))
            .where(
                StoredFile.deleted_at.is_(None),
                or_(StoredFile.expires_at.is_(None), StoredFile.expires_at > now),
            )
            .group_by(StoredFile.tenant_id)
        )
        with self._db.session() as session:
            return {tenant: int(total or 0) for tenant, total in session.execute(query)}

    def expired(self, limit: int = 1000) -> builtins.list[FileInfo]:
        """Expired files not yet deleted, oldest expiry first: for the sweep that removes them."""
        now = self._clock.utcnow()
        query = (
            select(StoredFile)
            .where(StoredFile.deleted_at.is_(None), StoredFile.expires_at <= now)
            .order_by(StoredFile.expires_at)
            .limit(limit)
        )
        with self._db.session() as session:
            return [_info(r) for r in session.scalars(query)]

    def mark_expired_deleted(self, file_id: str) -> None:
        with self._db.session() as session:
            row = session.get(StoredFile, file_id, with_for_update=True)
            if row is not None and row.deleted_at is None:
                row.deleted_at = self._clock.utcnow()

    def stored_spans(self, start: datetime, end: datetime) -> builtins.list[StoredSpan]:
        """Every file stored at some moment in ``[start, end)``, with when it was stored."""
        query = select(
            StoredFile.tenant_id,
            StoredFile.size_bytes,
            StoredFile.created_at,
            StoredFile.deleted_at,
            StoredFile.expires_at,
        ).where(
            StoredFile.created_at < end,
            or_(StoredFile.deleted_at.is_(None), StoredFile.deleted_at > start),
            or_(StoredFile.expires_at.is_(None), StoredFile.expires_at > start),
        )
        with self._db.session() as session:
            return [
                StoredSpan(tenant, size, created, _earliest(deleted, expires))
                for tenant, size, created, deleted, expires in session.execute(query)
            ]

    @staticmethod
    def _used(session: Session, tenant_id: str, now: datetime) -> int:
        total = session.scalar(
            select(func.coalesce(func.sum(StoredFile.size_bytes), 0)).where(_live(tenant_id, now))
        )
        return int(total or 0)


def _earliest(*moments: datetime | None) -> datetime | None:
    known = [m for m in moments if m is not None]
    return min(known) if known else None


def _beyond(cursor: StoredFile, order: str) -> ColumnElement[bool]:
    """Rows after ``cursor`` in the listing's order."""
    if order == "asc":
        return or_(
            StoredFile.created_at > cursor.created_at,
            and_(StoredFile.created_at == cursor.created_at, StoredFile.id > cursor.id),
        )
    return or_(
        StoredFile.created_at < cursor.created_at,
        and_(StoredFile.created_at == cursor.created_at, StoredFile.id < cursor.id),
    )
