"""Indexing: the pipeline alone, and the work-queue handler writing chunks (or none) to a real
database with the bundled MiniLM model."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select

from tests.knowledge.conftest import MiniLM, Upload, hashed_embed
from tokenmill.clock import ManualClock, SystemClock
from tokenmill.files.repository import FileRepository
from tokenmill.files.storage import LocalFileStorage
from tokenmill.knowledge.chunking import ChunkingStrategy, whitespace_tokenizer
from tokenmill.knowledge.indexing import KIND, IndexingFailure, index_file, index_handler
from tokenmill.knowledge.repository import VectorStoreRepository
from tokenmill.store.db import Database
from tokenmill.store.tables import VectorStoreChunk, VectorStorePosting
from tokenmill.work.items import WorkStatus
from tokenmill.work.queue import WorkQueue
from tokenmill.work.runner import WorkRunner

SMALL = ChunkingStrategy("static", 100, 20)
TEXT = " ".join(
    f"Sentence {i} tells of battery model XR-{i:04d} and its charger." for i in range(60)
)


def test_the_pipeline_chunks_the_text_and_embeds_in_batches() -> None:
    batches: list[int] = []
    seen: list[float] = []

    def embed(texts: list[str]) -> list[list[float]]:
        batches.append(len(texts))
        return hashed_embed(texts)

    chunks = index_file(
        TEXT.encode(),
        "notes.txt",
        "text/plain",
        SMALL,
        whitespace_tokenizer,
        embed,
        batch_size=2,
        progress=seen.append,
    )
    assert len(chunks) >= 5 and all(n <= 2 for n in batches) and sum(batches) == len(chunks)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert all(TEXT[c.char_start : c.char_end] == c.text for c in chunks)
    assert chunks[0].char_start == 0 and chunks[-1].char_end == len(TEXT)
    assert seen == sorted(seen) and seen[-1] == 1.0
    vector = np.frombuffer(chunks[0].embedding, dtype="<f4")
    assert np.allclose(vector, hashed_embed([chunks[0].text])[0], atol=1e-6)


@pytest.mark.parametrize(
    ("data", "filename", "code"),
    [
        (b"", "empty.txt", "invalid_file"),
        (b"   \n\n  ", "blank.txt", "invalid_file"),
        (b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage", "broken.pdf", "unsupported_file"),
        (bytes(range(256)) * 4, "blob.bin", "unsupported_file"),
    ],
)
def test_files_that_cannot_be_indexed_say_why(data: bytes, filename: str, code: str) -> None:
    with pytest.raises(IndexingFailure) as failed:
        index_file(data, filename, None, SMALL, whitespace_tokenizer, hashed_embed)
    assert failed.value.code == code and failed.value.message


def test_a_misbehaving_embedding_function_is_a_server_error() -> None:
    with pytest.raises(IndexingFailure) as short:
        index_file(TEXT.encode(), "a.txt", None, SMALL, whitespace_tokenizer, lambda t: [])
    assert short.value.code == "server_error"
    with pytest.raises(IndexingFailure) as nan:
        index_file(
            TEXT.encode(),
            "a.txt",
            None,
            SMALL,
            whitespace_tokenizer,
            lambda t: [[float("nan")] * 4 for _ in t],
        )
    assert nan.value.code == "server_error"


def chunk_rows(database: Database) -> tuple[int, int]:
    with database.session() as session:
        chunks = session.scalar(select(func.count()).select_from(VectorStoreChunk))
        postings = session.scalar(select(func.count()).select_from(VectorStorePosting))
        return int(chunks or 0), int(postings or 0)


class Setup:
    def __init__(
        self,
        database: Database,
        clock: ManualClock,
        storage: LocalFileStorage,
        embed: object,
        tokenizer: object,
        strategy: ChunkingStrategy,
    ) -> None:
        self.stores = VectorStoreRepository(database, clock)
        self.queue = WorkQueue(database, SystemClock())
        self.strategy = strategy
        handler = index_handler(
            self.stores,
            FileRepository(database, clock),
            storage,
            tokenizer,  # type: ignore[arg-type]
            embed,  # type: ignore[arg-type]
            batch_size=4,
        )
        self.runner = WorkRunner(self.queue, {KIND: handler}, lease_seconds=30)

    def add(self, tenant: str, store: str, file_id: str, attempts: int = 1) -> str:
        self.stores.add_file(
            tenant, store, file_id, chunking_strategy=self.strategy.body(), attributes={"k": 1}
        )
        item = self.queue.enqueue(
            KIND,
            {"vector_store_id": store, "file_id": file_id},
            tenant_id=tenant,
            max_attempts=attempts,
        )
        return item.id


def test_the_handler_indexes_a_file_with_minilm(
    database: Database,
    clock: ManualClock,
    tenants: tuple[str, str],
    upload: Upload,
    storage: LocalFileStorage,
    minilm: MiniLM,
) -> None:
    alpha, _ = tenants
    setup = Setup(database, clock, storage, minilm.embed, minilm.tokenizer, minilm.strategy)
    store = setup.stores.create_store(alpha)
    file_id = upload(alpha, TEXT.encode(), "batteries.md")
    item_id = setup.add(alpha, store.id, file_id)
    ended = setup.runner.run_once()
    assert ended is not None and ended.id == item_id and ended.status == WorkStatus.SUCCEEDED
    assert ended.result is not None and ended.result["indexed"] is True
    entry = setup.stores.get_file(alpha, store.id, file_id)
    assert entry.status == "completed" and entry.last_error is None and entry.usage_bytes > 0
    chunks, postings = chunk_rows(database)
    assert chunks == ended.result["chunks"] >= 2 and postings > chunks
    with database.session() as session:
        row = session.scalars(select(VectorStoreChunk).order_by(VectorStoreChunk.position)).first()
        assert row is not None and row.attributes == {"k": 1} and row.token_count <= 222
        vector = np.frombuffer(row.embedding, dtype="<f4")
        assert vector.shape == (384,) and abs(float(np.linalg.norm(vector)) - 1.0) < 1e-4
    assert setup.queue.events(item_id)[-1].message.startswith("indexed batteries.md")
    store_now = setup.stores.get_store(alpha, store.id)
    assert store_now.status == "completed" and store_now.usage_bytes == entry.usage_bytes


@pytest.mark.parametrize(
    ("data", "name", "code"),
    [
        (b"%PDF-1.4\n%%EOF broken beyond repair", "report.pdf", "unsupported_file"),
        (b"", "empty.txt", "invalid_file"),
    ],
)
def test_a_file_that_fails_leaves_no_chunks_and_says_why(
    database: Database,
    clock: ManualClock,
    tenants: tuple[str, str],
    upload: Upload,
    storage: LocalFileStorage,
    data: bytes,
    name: str,
    code: str,
) -> None:
    alpha, _ = tenants
    setup = Setup(database, clock, storage, hashed_embed, whitespace_tokenizer, SMALL)
    store = setup.stores.create_store(alpha)
    good = upload(alpha, TEXT.encode())
    setup.add(alpha, store.id, good)
    assert setup.runner.run_once() is not None
    before = chunk_rows(database)
    bad = upload(alpha, data, name)
    item_id = setup.add(alpha, store.id, bad, attempts=3)
    ended = setup.runner.run_once()
    assert ended is not None and ended.id == item_id
    assert ended.status == WorkStatus.FAILED and ended.attempts == 1  # not retried
    entry = setup.stores.get_file(alpha, store.id, bad)
    assert entry.status == "failed" and entry.last_error is not None
    assert entry.last_error["code"] == code and entry.last_error["message"]
    assert chunk_rows(database) == before
    counts = setup.stores.get_store(alpha, store.id).file_counts
    assert (counts.completed, counts.failed) == (1, 1)


def test_an_embedding_failure_midway_writes_nothing_and_fails_on_the_last_attempt(
    database: Database,
    clock: ManualClock,
    tenants: tuple[str, str],
    upload: Upload,
    storage: LocalFileStorage,
) -> None:
    alpha, _ = tenants
    calls: list[int] = []

    def flaky(texts: list[str]) -> list[list[float]]:
        calls.append(len(texts))
        if len(calls) % 2 == 0:  # the second batch of every attempt fails
            raise ConnectionError("embeddings deployment went away")
        return hashed_embed(texts)

    setup = Setup(database, clock, storage, flaky, whitespace_tokenizer, SMALL)
    store = setup.stores.create_store(alpha)
    file_id = upload(alpha, TEXT.encode())
    item_id = setup.add(alpha, store.id, file_id, attempts=1)
    ended = setup.runner.run_once()
    assert ended is not None and ended.id == item_id and ended.status == WorkStatus.FAILED
    assert len(calls) == 2 and chunk_rows(database) == (0, 0)
    entry = setup.stores.get_file(alpha, store.id, file_id)
    assert entry.status == "failed" and entry.last_error is not None
    assert entry.last_error["code"] == "server_error"
    assert "embeddings deployment went away" in entry.last_error["message"]


def test_a_file_removed_or_cancelled_before_its_turn_is_skipped(
    database: Database,
    clock: ManualClock,
    tenants: tuple[str, str],
    upload: Upload,
    storage: LocalFileStorage,
) -> None:
    alpha, _ = tenants
    setup = Setup(database, clock, storage, hashed_embed, whitespace_tokenizer, SMALL)
    store = setup.stores.create_store(alpha)
    removed = upload(alpha, TEXT.encode())
    setup.add(alpha, store.id, removed)
    setup.stores.delete_file(alpha, store.id, removed)
    ended = setup.runner.run_once()
    assert ended is not None and ended.status == WorkStatus.SUCCEEDED
    assert ended.result == {"indexed": False, "reason": "the file left the vector store"}
    batched = upload(alpha, TEXT.encode())
    batch = setup.stores.create_batch(alpha, store.id, [batched], chunking_strategy=SMALL.body())
    setup.queue.enqueue(KIND, {"vector_store_id": store.id, "file_id": batched}, tenant_id=alpha)
    setup.stores.cancel_batch(alpha, store.id, batch.id)
    ended = setup.runner.run_once()
    assert ended is not None and ended.result == {
        "indexed": False,
        "reason": "the file is cancelled",
    }
    assert chunk_rows(database) == (0, 0)
