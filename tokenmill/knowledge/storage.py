"""What vector stores hold over time, for storage billing: one span per indexed file.

A span opens when a file's chunks are saved (its ``usage_bytes``: chunk text and vectors) and
closes when they go: the file re-indexed, removed from the store, or the store deleted. A store
that expires stops being billed at its ``expires_at``. Spans are written in the same
transaction as the chunks they account for.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from tokenmill.files.objects import StoredSpan
from tokenmill.store.db import Database
from tokenmill.store.tables import VectorStore, VectorStoreStorage


def open_span(
    session: Session, tenant_id: str, store_id: str, file_id: str, size_bytes: int, now: datetime
) -> None:
    if size_bytes > 0:
        session.add(
            VectorStoreStorage(
                tenant_id=tenant_id,
                vector_store_id=store_id,
                file_id=file_id,
                size_bytes=size_bytes,
                started_at=now,
            )
        )


def close_spans(session: Session, store_id: str, file_id: str | None, now: datetime) -> None:
    """Ends the open spans of one file of the store, or of all its files."""
    query = update(VectorStoreStorage).where(
        VectorStoreStorage.vector_store_id == store_id, VectorStoreStorage.ended_at.is_(None)
    )
    if file_id is not None:
        query = query.where(VectorStoreStorage.file_id == file_id)
    session.execute(query.values(ended_at=now))


def stored_spans(db: Database, start: datetime, end: datetime) -> list[StoredSpan]:
    """Every span held at some moment in ``[start, end)``, ended early by its store's expiry."""
    query = (
        select(
            VectorStoreStorage.tenant_id,
            VectorStoreStorage.size_bytes,
            VectorStoreStorage.started_at,
            VectorStoreStorage.ended_at,
            VectorStore.expires_at,
        )
        .outerjoin(VectorStore, VectorStore.id == VectorStoreStorage.vector_store_id)
        .where(
            VectorStoreStorage.started_at < end,
            or_(VectorStoreStorage.ended_at.is_(None), VectorStoreStorage.ended_at > start),
        )
    )
    with db.session() as session:
        return [
            StoredSpan(tenant, size, started, _earliest(ended, expires))
            for tenant, size, started, ended, expires in session.execute(query)
        ]


def _earliest(*moments: datetime | None) -> datetime | None:
    known = [m for m in moments if m is not None]
    return min(known) if known else None
