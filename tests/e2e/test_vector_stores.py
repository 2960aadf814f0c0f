"""The Vector Stores API through a live ``tokenmill serve`` with the official openai client: a
file uploaded and indexed by the background worker through the embeddings deployment, then
found by search; the embeddings are the tenant's usage."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import select

from tests.e2e.conftest import Platform
from tests.e2e.test_files import _tenant_key
from tokenmill.billing.usage import UsageRepository
from tokenmill.store.tables import VectorStore

HANDBOOK = """# Handbook

## Parental leave
Every employee may take sixteen weeks of paid parental leave after a birth or an adoption.

## Expenses
Travel expenses are refunded within thirty days when the receipts are attached.
"""


def test_a_file_is_indexed_and_searched(platform: Platform, tmp_path: Path) -> None:
    client = platform.client(_tenant_key(platform, "vectors-alpha", credit_micros=10_000_000))
    path = tmp_path / "handbook.md"
    path.write_text(HANDBOOK)

    store = client.vector_stores.create(name="handbook")
    assert store.object == "vector_store" and store.name == "handbook"
    with path.open("rb") as handle:
        entry = client.vector_stores.files.upload_and_poll(
            vector_store_id=store.id, file=handle, poll_interval_ms=200
        )
    assert entry.status == "completed", entry.last_error
    assert entry.vector_store_id == store.id and entry.usage_bytes > 0
    assert client.vector_stores.retrieve(store.id).file_counts.completed == 1

    results = list(client.vector_stores.search(store.id, query="how long is parental leave?"))
    assert results and results[0].filename == "handbook.md"
    assert "sixteen weeks" in results[0].content[0].text

    tenant_id = _tenant_of(platform, store.id)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        events = [
            e for e in UsageRepository(platform.db).list(tenant_id) if e.endpoint == "embeddings"
        ]
        if len(events) >= 2:  # the file's chunks, then the query
            break
        time.sleep(0.1)
    assert len(events) >= 2 and all(e.prompt_tokens > 0 for e in events)
    assert {e.model for e in events} == {"all-minilm-l6-v2"}

    other = platform.client(_tenant_key(platform, "vectors-beta"))
    assert [s.id for s in other.vector_stores.list()] == []
    client.vector_stores.delete(store.id)


def _tenant_of(platform: Platform, store_id: str) -> str:
    with platform.db.session() as session:
        return str(session.scalar(select(VectorStore.tenant_id).where(VectorStore.id == store_id)))
