"""The Vector Stores API's operations: the repository, the work queue and the retriever together.

Adding a file (alone or in a batch) records it ``in_progress`` and enqueues one
``vector_store.file`` work item for it; a worker indexes it later (``indexing.index_handler``,
built per item by ``worker_handler`` with the item's tenant's embed function). Searching marks
the store active and ranks its chunks, embedding the query as the caller: the platform's
``TenantEmbed`` sends every embedding call through its own embeddings deployment and meters it
to the tenant (``gateway.embedder``).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import func, select

from tokenmill.control.keys import Principal
from tokenmill.files.repository import FileRepository
from tokenmill.files.storage import FileStorage
from tokenmill.knowledge.chunking import ChunkingStrategy, Tokenizer
from tokenmill.knowledge.chunkreader import ChunkReader
from tokenmill.knowledge.indexing import KIND, Embed, index_handler
from tokenmill.knowledge.repository import VectorStoreRepository
from tokenmill.knowledge.retrieval import Retriever, SearchPage
from tokenmill.knowledge.search import SearchOptions
from tokenmill.knowledge.stores import FileBatchInfo, VectorStoreFileInfo
from tokenmill.store.db import Database
from tokenmill.store.tables import StoredFile
from tokenmill.work.items import WorkItem
from tokenmill.work.queue import WorkQueue
from tokenmill.work.runner import Handler, WorkContext

TenantEmbed = Callable[[str, str, list[str]], list[list[float]]]
"""(tenant id, key id, texts) -> one vector per text, the tokens billed to that tenant."""

Admit = Callable[[Principal, int, str], Awaitable[None]]
"""(caller, prompt tokens, request id): raises the 429 an embeddings call of that many tokens
would get (credit, budget caps, rate limits), or returns."""

MAX_ATTEMPTS = 3
SIZE_BATCH = 500


class VectorStoreService:
    def __init__(
        self,
        db: Database,
        repository: VectorStoreRepository,
        queue: WorkQueue,
        embed: TenantEmbed,
        auto: ChunkingStrategy,
        admit: Admit | None = None,
    ) -> None:
        self.repository = repository
        self.chunks = ChunkReader(db)  # a file's chunks and indexed text, read back
        self.admit = admit  # checked before work that embeds for a tenant; None: no checks
        self.queue = queue
        self.embed = embed
        self.auto = auto  # ``auto`` chunking for the embedding model
        self._db = db
        self._caller = threading.local()  # who the retriever embeds for, in this thread
        self._retriever = Retriever(db, self._embed_for_caller)

    # ---- adding files ---------------------------------------------------------------------

    def upload_bytes(self, tenant_id: str, file_ids: Sequence[str]) -> int:
        """The size of the tenant's uploads among ``file_ids`` (ids it does not have count 0)."""
        total = 0
        with self._db.session() as session:
            for start in range(0, len(file_ids), SIZE_BATCH):
                part = list(dict.fromkeys(file_ids[start : start + SIZE_BATCH]))
                total += int(
                    session.scalar(
                        select(func.coalesce(func.sum(StoredFile.size_bytes), 0)).where(
                            StoredFile.tenant_id == tenant_id,
                            StoredFile.id.in_(part),
                            StoredFile.deleted_at.is_(None),
                        )
                    )
                    or 0
                )
        return total

    def add_file(
        self,
        tenant_id: str,
        key_id: str,
        store_id: str,
        file_id: str,
        attributes: dict[str, Any],
        strategy: ChunkingStrategy,
    ) -> VectorStoreFileInfo:
        info = self.repository.add_file(
            tenant_id,
            store_id,
            file_id,
            attributes=attributes,
            chunking_strategy=strategy.body(),
        )
        if info.status == "in_progress":
            self._enqueue(tenant_id, key_id, store_id, file_id)
        return info

    def create_batch(
        self,
        tenant_id: str,
        key_id: str,
        store_id: str,
        file_ids: Sequence[str],
        attributes: dict[str, Any],
        strategy: ChunkingStrategy,
    ) -> FileBatchInfo:
        batch = self.repository.create_batch(
            tenant_id,
            store_id,
            file_ids,
            attributes=attributes,
            chunking_strategy=strategy.body(),
        )
        for file_id in dict.fromkeys(file_ids):
            self._enqueue(tenant_id, key_id, store_id, file_id)
        return batch

    def _enqueue(self, tenant_id: str, key_id: str, store_id: str, file_id: str) -> WorkItem:
        return self.queue.enqueue(
            KIND,
            {"vector_store_id": store_id, "file_id": file_id, "key_id": key_id},
            tenant_id=tenant_id,
            max_attempts=MAX_ATTEMPTS,
        )

    # ---- search ---------------------------------------------------------------------------

    def search(
        self, tenant_id: str, key_id: str, store_id: str, options: SearchOptions
    ) -> SearchPage:
        self.repository.touch(tenant_id, store_id)
        self._caller.who = (tenant_id, key_id)
        try:
            return self._retriever.search(tenant_id, store_id, options)
        finally:
            self._caller.who = None

    def _embed_for_caller(self, texts: list[str]) -> list[list[float]]:
        who = getattr(self._caller, "who", None)
        if who is None:
            raise RuntimeError("the retriever embedded outside a search")
        return self.embed(who[0], who[1], texts)

    # ---- indexing -------------------------------------------------------------------------

    def worker_handler(
        self, files: FileRepository, storage: FileStorage, tokenizer: Tokenizer
    ) -> Handler:
        """The ``vector_store.file`` handler: indexes with the item's tenant's embed function."""

        def handle(item: WorkItem, context: WorkContext) -> dict[str, Any] | None:
            tenant_id = item.tenant_id or str(item.payload["tenant_id"])
            key_id = str(item.payload.get("key_id") or "")

            def embed(texts: list[str]) -> list[list[float]]:
                return self.embed(tenant_id, key_id, texts)

            tenant_embed: Embed = embed
            handler = index_handler(self.repository, files, storage, tokenizer, tenant_embed)
            return handler(item, context)

        return handle
