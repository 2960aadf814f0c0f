"""Writing and removing a store's chunks with their keyword postings, inside a session.

The repository calls these within its own transactions, so a file's chunks, its postings, its
storage span and its status change together or not at all. Every change bumps the store's
``chunks_version``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from tokenmill.knowledge.keywords import term_frequencies
from tokenmill.knowledge.storage import close_spans, open_span
from tokenmill.knowledge.stores import NewChunk
from tokenmill.store.tables import VectorStore, VectorStoreChunk, VectorStorePosting

DELETE_BATCH = 500


def insert_chunks(
    session: Session,
    tenant_id: str,
    store_id: str,
    file_id: str,
    attributes: dict[str, Any],
    chunks: Sequence[NewChunk],
    now: datetime,
) -> int:
    """Adds the chunks and their postings, held (for billing) from ``now``; returns the bytes
    they use (text and vectors)."""
    usage = 0
    for chunk in chunks:
        frequencies, length = term_frequencies(chunk.text)
        record = VectorStoreChunk(
            vector_store_id=store_id,
            file_id=file_id,
            position=chunk.position,
            text=chunk.text,
            char_start=chunk.char_start,
            char_end=chunk.char_end,
            token_count=chunk.token_count,
            term_count=length,
            attributes=dict(attributes),
            embedding=chunk.embedding,
        )
        session.add(record)
        session.flush()
        session.add_all(
            VectorStorePosting(
                vector_store_id=store_id, term=term, chunk_id=record.id, term_frequency=count
            )
            for term, count in sorted(frequencies.items())
        )
        usage += len(chunk.text.encode()) + len(chunk.embedding)
    open_span(session, tenant_id, store_id, file_id, usage, now)
    bump_version(session, store_id)
    return usage


def drop_chunks(session: Session, store_id: str, file_id: str | None, now: datetime) -> None:
    """Removes the chunks (and postings) of one file of the store, or of all its files; they
    are no longer held (for billing) from ``now``."""
    close_spans(session, store_id, file_id, now)
    chunks = select(VectorStoreChunk.id).where(VectorStoreChunk.vector_store_id == store_id)
    if file_id is not None:
        chunks = chunks.where(VectorStoreChunk.file_id == file_id)
    ids = list(session.scalars(chunks))
    if not ids:
        return
    for start in range(0, len(ids), DELETE_BATCH):
        part = ids[start : start + DELETE_BATCH]
        session.execute(
            delete(VectorStorePosting).where(
                VectorStorePosting.vector_store_id == store_id,
                VectorStorePosting.chunk_id.in_(part),
            )
        )
        session.execute(delete(VectorStoreChunk).where(VectorStoreChunk.id.in_(part)))
    bump_version(session, store_id)


def bump_version(session: Session, store_id: str) -> None:
    session.execute(
        update(VectorStore)
        .where(VectorStore.id == store_id)
        .values(chunks_version=VectorStore.chunks_version + 1)
    )
