"""Vector stores in the database: stores, their files, file batches, and the chunks indexing
writes.

Every read takes the tenant: another tenant's store, file or batch is, to the caller, not
there (``NotFound``, as OpenAI says it). Listings are OpenAI's pages: ``limit`` (1 to 100),
``order`` by creation (``desc`` by default, ties by id), ``after`` and ``before`` cursors.
A store's status and file counts are derived from its files' statuses when it is read.

Chunks of a file are written in one transaction with their postings (``save_chunks``), and
removed with them; each change bumps the store's ``chunks_version`` so in-memory copies of
its vectors are reloaded. Reading them back is ``chunkreader``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from tokenmill.clock import Clock
from tokenmill.errors import InvalidRequest, NotFound
from tokenmill.files.objects import no_such_file as no_such_upload
from tokenmill.knowledge.chunkstore import bump_version, drop_chunks, insert_chunks
from tokenmill.knowledge.pages import DEFAULT_LIST_LIMIT, page
from tokenmill.knowledge.rows import (
    batch_info,
    batch_row,
    file_info,
    file_row,
    store_info,
    store_row,
)
from tokenmill.knowledge.stores import (
    FileBatchInfo,
    NewChunk,
    Page,
    VectorStoreFileInfo,
    VectorStoreInfo,
    expiry,
    new_batch_id,
    new_vector_store_id,
)
from tokenmill.store.db import Database
from tokenmill.store.tables import (
    StoredFile,
    VectorStore,
    VectorStoreChunk,
    VectorStoreFile,
    VectorStoreFileBatch,
)

UNSET: Any = object()
TOUCH_EVERY = timedelta(minutes=1)  # how stale "last active" may be before a search marks it


class VectorStoreRepository:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    # ---- stores ---------------------------------------------------------------------------

    def create_store(
        self,
        tenant_id: str,
        *,
        name: str | None = None,
        metadata: dict[str, str] | None = None,
        expires_after: dict[str, Any] | None = None,
    ) -> VectorStoreInfo:
        now = self._clock.utcnow()
        row = VectorStore(
            id=new_vector_store_id(),
            tenant_id=tenant_id,
            name=name,
            meta=dict(metadata or {}),
            status="completed",
            expires_after=expires_after,
            expires_at=expiry(expires_after, now),
            last_active_at=now,
            usage_bytes=0,
            chunks_version=0,
            created_at=now,
        )
        with self._db.session() as session:
            session.add(row)
            session.flush()
            return self._store_info(session, row)

    def get_store(self, tenant_id: str, store_id: str) -> VectorStoreInfo:
        with self._db.session() as session:
            return self._store_info(session, self._store(session, tenant_id, store_id))

    def list_stores(
        self,
        tenant_id: str,
        *,
        limit: int = DEFAULT_LIST_LIMIT,
        order: str = "desc",
        after: str | None = None,
        before: str | None = None,
    ) -> Page[VectorStoreInfo]:
        def cursor(ident: str) -> Any:
            return select(VectorStore.created_at, VectorStore.id).where(
                VectorStore.id == ident, VectorStore.tenant_id == tenant_id
            )

        with self._db.session() as session:
            rows, more = page(
                session,
                select(VectorStore).where(VectorStore.tenant_id == tenant_id),
                VectorStore.created_at,
                VectorStore.id,
                cursor,
                limit=limit,
                order=order,
                after=after,
                before=before,
            )
            return Page([self._store_info(session, r) for r in rows], more)

    def modify_store(
        self,
        tenant_id: str,
        store_id: str,
        *,
        name: str | None = UNSET,
        metadata: dict[str, str] | None = UNSET,
        expires_after: dict[str, Any] | None = UNSET,
    ) -> VectorStoreInfo:
        """Changes what is given (``None`` clears a name or an expiry policy)."""
        with self._db.session() as session:
            row = self._store(session, tenant_id, store_id, lock=True)
            if name is not UNSET:
                row.name = name
            if metadata is not UNSET:
                row.meta = dict(metadata or {})
            if expires_after is not UNSET:
                row.expires_after = expires_after
                row.expires_at = expiry(expires_after, row.last_active_at)
            return self._store_info(session, row)

    def touch(self, tenant_id: str, store_id: str) -> VectorStoreInfo:
        """The store was used (searched): it is active now, and its expiry moves on. Marked at
        most once per ``TOUCH_EVERY``: a search mostly reads, and takes no write lock."""
        now = self._clock.utcnow()
        with self._db.session() as session:
            row = self._store(session, tenant_id, store_id)
            if row.last_active_at is not None and now - row.last_active_at < TOUCH_EVERY:
                return self._store_info(session, row)
        with self._db.session() as session:
            row = self._store(session, tenant_id, store_id, lock=True)
            row.last_active_at = now
            row.expires_at = expiry(row.expires_after, now)
            return self._store_info(session, row)

    def delete_store(self, tenant_id: str, store_id: str) -> dict[str, Any]:
        with self._db.session() as session:
            row = self._store(session, tenant_id, store_id, lock=True)
            drop_chunks(session, store_id, None, self._clock.utcnow())
            session.execute(
                delete(VectorStoreFile).where(VectorStoreFile.vector_store_id == store_id)
            )
            session.execute(
                delete(VectorStoreFileBatch).where(VectorStoreFileBatch.vector_store_id == store_id)
            )
            session.delete(row)
        return {"id": store_id, "object": "vector_store.deleted", "deleted": True}

    def chunks_version(self, store_id: str) -> int | None:
        """The store's chunk generation (None: no such store); one small read."""
        with self._db.session() as session:
            return session.scalar(
                select(VectorStore.chunks_version).where(VectorStore.id == store_id)
            )

    # ---- files ----------------------------------------------------------------------------

    def add_file(
        self,
        tenant_id: str,
        store_id: str,
        file_id: str,
        *,
        attributes: dict[str, Any] | None = None,
        chunking_strategy: dict[str, Any],
        batch_id: str | None = None,
    ) -> VectorStoreFileInfo:
        """Adds one of the tenant's files, ``in_progress`` until indexed; a file already in
        the store is returned as it is."""
        with self._db.session() as session:
            self._store(session, tenant_id, store_id, lock=True)
            return self._add_file(
                session, tenant_id, store_id, file_id, attributes, chunking_strategy, batch_id
            )

    def _add_file(
        self,
        session: Session,
        tenant_id: str,
        store_id: str,
        file_id: str,
        attributes: dict[str, Any] | None,
        chunking_strategy: dict[str, Any],
        batch_id: str | None,
    ) -> VectorStoreFileInfo:
        existing = session.get(VectorStoreFile, (store_id, file_id))
        if existing is not None:
            return file_info(existing)
        now = self._clock.utcnow()
        upload = session.scalars(
            select(StoredFile).where(
                StoredFile.id == file_id,
                StoredFile.tenant_id == tenant_id,
                StoredFile.deleted_at.is_(None),
                or_(StoredFile.expires_at.is_(None), StoredFile.expires_at > now),
            )
        ).one_or_none()
        if upload is None:
            raise NotFound(no_such_upload(file_id), param="file_id")
        row = VectorStoreFile(
            vector_store_id=store_id,
            file_id=file_id,
            tenant_id=tenant_id,
            batch_id=batch_id,
            filename=upload.filename,
            status="in_progress",
            last_error=None,
            attributes=dict(attributes or {}),
            chunking_strategy=chunking_strategy,
            usage_bytes=0,
            created_at=now,
        )
        session.add(row)
        session.flush()
        return file_info(row)

    def get_file(self, tenant_id: str, store_id: str, file_id: str) -> VectorStoreFileInfo:
        with self._db.session() as session:
            return file_info(file_row(session, tenant_id, store_id, file_id))

    def list_files(
        self,
        tenant_id: str,
        store_id: str,
        *,
        limit: int = DEFAULT_LIST_LIMIT,
        order: str = "desc",
        after: str | None = None,
        before: str | None = None,
        status: str | None = None,
        batch_id: str | None = None,
    ) -> Page[VectorStoreFileInfo]:
        def cursor(ident: str) -> Any:
            return select(VectorStoreFile.created_at, VectorStoreFile.file_id).where(
                VectorStoreFile.vector_store_id == store_id, VectorStoreFile.file_id == ident
            )

        with self._db.session() as session:
            self._store(session, tenant_id, store_id)
            query = select(VectorStoreFile).where(VectorStoreFile.vector_store_id == store_id)
            if status is not None:
                query = query.where(VectorStoreFile.status == status)
            if batch_id is not None:
                query = query.where(VectorStoreFile.batch_id == batch_id)
            rows, more = page(
                session,
                query,
                VectorStoreFile.created_at,
                VectorStoreFile.file_id,
                cursor,
                limit=limit,
                order=order,
                after=after,
                before=before,
            )
            return Page([file_info(r) for r in rows], more)

    def update_attributes(
        self, tenant_id: str, store_id: str, file_id: str, attributes: dict[str, Any]
    ) -> VectorStoreFileInfo:
        """New attributes for a file and for the copies its chunks carry."""
        with self._db.session() as session:
            self._store(session, tenant_id, store_id, lock=True)
            row = file_row(session, tenant_id, store_id, file_id)
            row.attributes = dict(attributes)
            session.execute(
                update(VectorStoreChunk)
                .where(
                    VectorStoreChunk.vector_store_id == store_id,
                    VectorStoreChunk.file_id == file_id,
                )
                .values(attributes=dict(attributes))
            )
            bump_version(session, store_id)
            return file_info(row)

    def delete_file(self, tenant_id: str, store_id: str, file_id: str) -> dict[str, Any]:
        """Removes the file and its chunks from the store (the uploaded file stays)."""
        with self._db.session() as session:
            store = self._store(session, tenant_id, store_id, lock=True)
            row = file_row(session, tenant_id, store_id, file_id)
            store.usage_bytes = max(0, store.usage_bytes - row.usage_bytes)
            drop_chunks(session, store_id, file_id, self._clock.utcnow())
            session.delete(row)
        return {"id": file_id, "object": "vector_store.file.deleted", "deleted": True}

    # ---- indexing -------------------------------------------------------------------------

    def save_chunks(
        self, tenant_id: str, store_id: str, file_id: str, chunks: Sequence[NewChunk]
    ) -> bool:
        """Stores a file's chunks and postings and marks it ``completed``, all at once; False
        (nothing written) when the file is no longer waiting for them (deleted, cancelled)."""
        with self._db.session() as session:
            store = self._store(session, tenant_id, store_id, lock=True)
            row = session.get(VectorStoreFile, (store_id, file_id), with_for_update=self._pg)
            if row is None or row.status != "in_progress":
                return False
            drop_chunks(session, store_id, file_id, self._clock.utcnow())
            usage = insert_chunks(
                session, tenant_id, store_id, file_id, row.attributes, chunks, self._clock.utcnow()
            )
            row.status, row.last_error = "completed", None
            store.usage_bytes += usage - row.usage_bytes
            row.usage_bytes = usage
            bump_version(session, store_id)
            return True

    def mark_failed(
        self, tenant_id: str, store_id: str, file_id: str, code: str, message: str
    ) -> bool:
        """Marks a file ``failed`` with its ``last_error``, dropping any chunks it had."""
        with self._db.session() as session:
            self._store(session, tenant_id, store_id, lock=True)
            row = session.get(VectorStoreFile, (store_id, file_id), with_for_update=self._pg)
            if row is None or row.status != "in_progress":
                return False
            drop_chunks(session, store_id, file_id, self._clock.utcnow())
            row.status = "failed"
            row.last_error = {"code": code, "message": message[:1000]}
            return True

    # ---- batches --------------------------------------------------------------------------

    def create_batch(
        self,
        tenant_id: str,
        store_id: str,
        file_ids: Sequence[str],
        *,
        attributes: dict[str, Any] | None = None,
        chunking_strategy: dict[str, Any],
    ) -> FileBatchInfo:
        """A batch and its files, all added or (one file missing) none."""
        if not file_ids:
            raise InvalidRequest("file_ids must list at least one file.", param="file_ids")
        with self._db.session() as session:
            self._store(session, tenant_id, store_id, lock=True)
            batch = VectorStoreFileBatch(
                id=new_batch_id(),
                vector_store_id=store_id,
                tenant_id=tenant_id,
                status="in_progress",
                created_at=self._clock.utcnow(),
            )
            session.add(batch)
            for file_id in dict.fromkeys(file_ids):
                self._add_file(
                    session, tenant_id, store_id, file_id, attributes, chunking_strategy, batch.id
                )
            return batch_info(session, batch)

    def get_batch(self, tenant_id: str, store_id: str, batch_id: str) -> FileBatchInfo:
        with self._db.session() as session:
            return batch_info(session, batch_row(session, tenant_id, store_id, batch_id))

    def cancel_batch(self, tenant_id: str, store_id: str, batch_id: str) -> FileBatchInfo:
        """Cancels the batch's files still waiting to be indexed."""
        with self._db.session() as session:
            self._store(session, tenant_id, store_id, lock=True)
            batch = batch_row(session, tenant_id, store_id, batch_id)
            if batch.status == "in_progress":
                session.execute(
                    update(VectorStoreFile)
                    .where(
                        VectorStoreFile.batch_id == batch_id,
                        VectorStoreFile.status == "in_progress",
                    )
                    .values(status="cancelled")
                )
                batch.status = "cancelled"
            return batch_info(session, batch)

    # ---- helpers --------------------------------------------------------------------------

    @property
    def _pg(self) -> bool:
        return self._db.dialect == "postgresql"

    def _store(
        self, session: Session, tenant_id: str, store_id: str, *, lock: bool = False
    ) -> VectorStore:
        """The tenant's store; ``lock`` (first thing in a session) holds it until the session
        ends: PostgreSQL's row lock, SQLite's write lock (a read-modify-write of the store's
        usage must not interleave with another worker's)."""
        if lock and not self._pg:
            self._db.lock(session, f"vector_store:{store_id}")
        return store_row(session, tenant_id, store_id, lock=lock and self._pg)

    def _store_info(self, session: Session, row: VectorStore) -> VectorStoreInfo:
        return store_info(session, row, self._clock.utcnow())
