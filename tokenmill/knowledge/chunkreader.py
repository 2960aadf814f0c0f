"""Reading a file's chunks back for its tenant: the indexed text, and the chunks page by page.

Like every read of a vector store, the tenant comes first: another tenant's store or file is,
to the caller, not there (``NotFound``). A file has no chunks until it is indexed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tokenmill.knowledge.pages import DEFAULT_LIST_LIMIT, check_limit
from tokenmill.knowledge.rows import file_row, store_row
from tokenmill.knowledge.stores import Page
from tokenmill.store.db import Database
from tokenmill.store.tables import VectorStoreChunk


@dataclass(frozen=True, slots=True)
class ChunkInfo:
    """One chunk of a file: its place among the file's chunks and in the file's text."""

    position: int
    text: str
    char_start: int
    char_end: int
    tokens: int

    @property
    def id(self) -> int:
        """A chunk's position is its id within its file: a page's ``last_id`` is the next
        page's ``after``."""
        return self.position

    def as_openai(self) -> dict[str, Any]:
        return {
            "object": "vector_store.file.chunk",
            "position": self.position,
            "text": self.text,
            "char_start": self.char_start,
            "char_end": self.char_end,
            "tokens": self.tokens,
        }


class ChunkReader:
    def __init__(self, db: Database) -> None:
        self._db = db

    def file_text(self, tenant_id: str, store_id: str, file_id: str) -> str:
        """The indexed text of a file, rebuilt from its chunks (overlaps counted once)."""
        chunk = VectorStoreChunk
        with self._db.session() as session:
            rows = session.execute(
                _of_file(session, tenant_id, store_id, file_id)
                .with_only_columns(chunk.text, chunk.char_start, chunk.char_end)
                .order_by(chunk.position)
            )
            parts: list[str] = []
            covered = 0
            for text, start, end in rows:
                if end > covered:
                    parts.append(text[max(0, covered - start) :])
                    covered = end
            return "".join(parts)

    def file_chunks(
        self,
        tenant_id: str,
        store_id: str,
        file_id: str,
        *,
        limit: int = DEFAULT_LIST_LIMIT,
        after: int | None = None,
    ) -> Page[ChunkInfo]:
        """Up to ``limit`` of the file's chunks in position order, those after ``after``."""
        check_limit(limit)
        chunk = VectorStoreChunk
        with self._db.session() as session:
            query = _of_file(session, tenant_id, store_id, file_id).with_only_columns(
                chunk.position, chunk.text, chunk.char_start, chunk.char_end, chunk.token_count
            )
            if after is not None:
                query = query.where(chunk.position > after)
            rows = session.execute(query.order_by(chunk.position).limit(limit + 1)).all()
        chunks = [ChunkInfo(*row) for row in rows[:limit]]
        return Page(chunks, has_more=len(rows) > limit)


def _of_file(session: Session, tenant_id: str, store_id: str, file_id: str) -> Any:
    """A select of the file's chunks, once the tenant's store and file are found (or
    ``NotFound``)."""
    store_row(session, tenant_id, store_id, lock=False)
    file_row(session, tenant_id, store_id, file_id)
    return select(VectorStoreChunk).where(
        VectorStoreChunk.vector_store_id == store_id, VectorStoreChunk.file_id == file_id
    )
