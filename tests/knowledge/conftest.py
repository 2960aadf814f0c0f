"""Vector store fixtures: two tenants, uploads in a local file store, embedding functions
(a deterministic hashing one, and the bundled MiniLM model shared by the session)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tokenmill.clock import ManualClock
from tokenmill.control.tenants import TenantRepository
from tokenmill.engine.embed.__main__ import bundled_model_path
from tokenmill.engine.embed.model import EmbeddingModel
from tokenmill.files.objects import FileInfo, new_file_id
from tokenmill.files.repository import FileRepository
from tokenmill.files.storage import LocalFileStorage
from tokenmill.knowledge.chunking import (
    ChunkingStrategy,
    Tokenizer,
    auto_strategy,
    whitespace_tokenizer,
    wordpiece_tokenizer,
)
from tokenmill.knowledge.indexing import index_file
from tokenmill.knowledge.keywords import terms
from tokenmill.knowledge.repository import VectorStoreRepository
from tokenmill.store.db import Database

Upload = Callable[..., str]
HASH_DIMENSIONS = 64
SMALL_CHUNKS = ChunkingStrategy("static", 100, 20)


def hashed_embedding(text: str) -> list[float]:
    """A bag of the text's terms hashed into 64 dimensions, unit length: similar word sets
    give similar vectors, with no model at all."""
    vector = [0.0] * HASH_DIMENSIONS
    for term in terms(text):
        digest = hashlib.sha256(term.encode()).digest()
        vector[digest[0] % HASH_DIMENSIONS] += 1.0 if digest[1] % 2 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def hashed_embed(texts: list[str]) -> list[list[float]]:
    return [hashed_embedding(t) for t in texts]


@pytest.fixture
def tenants(database: Database, clock: ManualClock) -> tuple[str, str]:
    repo = TenantRepository(database, clock)
    return repo.create("alpha").id, repo.create("beta").id


@pytest.fixture
def storage(tmp_path: Path) -> LocalFileStorage:
    return LocalFileStorage(tmp_path / "files")


@pytest.fixture
def upload(database: Database, clock: ManualClock, storage: LocalFileStorage) -> Upload:
    return upload_into(database, clock, storage)


def upload_into(database: Database, clock: ManualClock, storage: LocalFileStorage) -> Upload:
    """Stores ``data`` as one of ``tenant``'s files; returns the file's id."""
    files = FileRepository(database, clock)

    def put(
        tenant_id: str, data: bytes, filename: str = "notes.txt", file_id: str | None = None
    ) -> str:
        file_id = file_id or new_file_id()
        writer = storage.writer(tenant_id, file_id)
        writer.write(data)
        info = FileInfo(
            id=file_id,
            tenant_id=tenant_id,
            key_id="key_1",
            purpose="assistants",
            filename=filename,
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            created_at=clock.utcnow(),
        )
        files.add(info, 10**9, writer.commit)
        clock.advance(timedelta(seconds=1).total_seconds())
        return file_id

    return put


@dataclass(frozen=True, slots=True)
class MiniLM:
    """The bundled all-MiniLM-L6-v2: its embed function, its tokenizer, its auto strategy."""

    embed: Callable[[list[str]], list[list[float]]]
    tokenizer: Tokenizer
    strategy: ChunkingStrategy


@pytest.fixture(scope="session")
def minilm() -> MiniLM:
    directory = bundled_model_path()
    model = EmbeddingModel(directory, threads=2)

    def embed(texts: list[str]) -> list[list[float]]:
        return [[float(v) for v in row] for row in model.embed(model.tokenize(texts))]

    return MiniLM(embed, wordpiece_tokenizer(directory), auto_strategy(model.max_input_tokens))


@dataclass(frozen=True, slots=True)
class Doc:
    name: str
    text: str
    attributes: dict[str, Any] = field(default_factory=dict)
    file_id: str | None = None


DOCS_FOR_STORAGE = [
    Doc("tea.txt", "Green tea is brewed at 80 degrees. " * 20),
    Doc("coffee.txt", "Espresso is brewed under pressure. " * 30),
    Doc("garden.txt", "Water the tomatoes at dawn. " * 10),
]


def build_store(
    database: Database,
    clock: ManualClock,
    upload: Upload,
    tenant_id: str,
    docs: list[Doc],
    embed: Callable[[list[str]], list[list[float]]] = hashed_embed,
    tokenizer: Tokenizer = whitespace_tokenizer,
    strategy: ChunkingStrategy = SMALL_CHUNKS,
) -> tuple[str, dict[str, str]]:
    """A store holding ``docs``, indexed (without the queue): its id, and file ids by name."""
    repo = VectorStoreRepository(database, clock)
    store = repo.create_store(tenant_id, name="test")
    ids = {}
    for doc in docs:
        file_id = upload(tenant_id, doc.text.encode(), doc.name, doc.file_id)
        repo.add_file(
            tenant_id,
            store.id,
            file_id,
            attributes=doc.attributes,
            chunking_strategy=strategy.body(),
        )
        chunks = index_file(doc.text.encode(), doc.name, None, strategy, tokenizer, embed)
        assert repo.save_chunks(tenant_id, store.id, file_id, chunks)
        ids[doc.name] = file_id
    return store.id, ids
