"""Vector store rows read as the API's objects, and found by id for one tenant (or ``NotFound``).

A store's status is derived from its files' statuses and its expiry when it is read, and
written back when it changed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from tokenmill.errors import NotFound
from tokenmill.knowledge.stores import (
    FileBatchInfo,
    FileCounts,
    VectorStoreFileInfo,
    VectorStoreInfo,
    batch_status,
    no_such_batch,
    no_such_file,
    no_such_store,
    store_status,
)
from tokenmill.store.tables import VectorStore, VectorStoreFile, VectorStoreFileBatch


def store_row(session: Session, tenant_id: str, store_id: str, *, lock: bool) -> VectorStore:
    """The tenant's store; ``lock`` takes its row lock (PostgreSQL's ``FOR UPDATE``)."""
    query = select(VectorStore).where(
        VectorStore.id == store_id, VectorStore.tenant_id == tenant_id
    )
    if lock:
        query = query.with_for_update()
    row = session.scalars(query).one_or_none()
    if row is None:
        raise NotFound(no_such_store(store_id), param="vector_store_id")
    return row


def file_row(session: Session, tenant_id: str, store_id: str, file_id: str) -> VectorStoreFile:
    row = session.get(VectorStoreFile, (store_id, file_id))
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(no_such_file(store_id, file_id), param="file_id")
    return row


def batch_row(
    session: Session, tenant_id: str, store_id: str, batch_id: str
) -> VectorStoreFileBatch:
    row = session.get(VectorStoreFileBatch, batch_id)
    if row is None or row.tenant_id != tenant_id or row.vector_store_id != store_id:
        raise NotFound(no_such_batch(store_id, batch_id), param="batch_id")
    return row


def file_counts(session: Session, *where: ColumnElement[bool]) -> FileCounts:
    query = (
        select(VectorStoreFile.status, func.count()).where(*where).group_by(VectorStoreFile.status)
    )
    return FileCounts.of({status: int(n) for status, n in session.execute(query)})


def store_info(session: Session, row: VectorStore, now: datetime) -> VectorStoreInfo:
    counts = file_counts(session, VectorStoreFile.vector_store_id == row.id)
    status = store_status(counts, row.expires_at, now)
    if row.status != status:
        row.status = status
    return VectorStoreInfo(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        metadata=dict(row.meta),
        status=status,
        file_counts=counts,
        usage_bytes=row.usage_bytes,
        expires_after=row.expires_after,
        expires_at=row.expires_at,
        last_active_at=row.last_active_at,
        created_at=row.created_at,
    )


def batch_info(session: Session, row: VectorStoreFileBatch) -> FileBatchInfo:
    session.flush()
    counts = file_counts(session, VectorStoreFile.batch_id == row.id)
    return FileBatchInfo(
        id=row.id,
        vector_store_id=row.vector_store_id,
        tenant_id=row.tenant_id,
        status=batch_status(row.status, counts),
        file_counts=counts,
        created_at=row.created_at,
    )


def file_info(row: VectorStoreFile) -> VectorStoreFileInfo:
    return VectorStoreFileInfo(
        id=row.file_id,
        vector_store_id=row.vector_store_id,
        tenant_id=row.tenant_id,
        filename=row.filename,
        status=row.status,
        last_error=dict(row.last_error) if row.last_error else None,
        attributes=dict(row.attributes),
        chunking_strategy=dict(row.chunking_strategy),
        usage_bytes=row.usage_bytes,
        created_at=row.created_at,
        batch_id=row.batch_id,
    )
