"""Vector stores, their files and batches on SQLite and PostgreSQL: pages, tenants apart."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from tests.knowledge.conftest import Upload
from tokenmill.clock import ManualClock
from tokenmill.errors import InvalidRequest, NotFound
from tokenmill.knowledge.repository import VectorStoreRepository
from tokenmill.knowledge.stores import NewChunk
from tokenmill.store.db import Database

STATIC = {"type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 50}}


def test_a_store_reads_back_for_its_tenant_only(
    database: Database, clock: ManualClock, tenants: tuple[str, str]
) -> None:
    alpha, beta = tenants
    repo = VectorStoreRepository(database, clock)
    made = repo.create_store(alpha, name="docs", metadata={"team": "red"})
    got = repo.get_store(alpha, made.id)
    assert got == made
    body = got.as_openai()
    assert body["object"] == "vector_store" and body["id"].startswith("vs_")
    assert body["status"] == "completed" and body["metadata"] == {"team": "red"}
    assert body["file_counts"] == {
        "in_progress": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
        "total": 0,
    }
    for call in (
        lambda: repo.get_store(beta, made.id),
        lambda: repo.modify_store(beta, made.id, name="mine"),
        lambda: repo.delete_store(beta, made.id),
        lambda: repo.list_files(beta, made.id),
    ):
        with pytest.raises(NotFound) as missing:
            call()
        assert missing.value.status == 404
        assert missing.value.message == f"No vector store found with id '{made.id}'."
    assert repo.list_stores(beta).data == []
    assert repo.get_store(alpha, made.id).name == "docs"


def test_store_pages_follow_order_after_and_before(
    database: Database, clock: ManualClock, tenants: tuple[str, str]
) -> None:
    alpha, beta = tenants
    repo = VectorStoreRepository(database, clock)
    ids = []
    for i in range(5):
        ids.append(repo.create_store(alpha, name=f"s{i}").id)
        clock.advance(1)
    repo.create_store(beta)
    assert [s.id for s in repo.list_stores(alpha).data] == ids[::-1]
    first = repo.list_stores(alpha, limit=2, order="asc")
    assert [s.id for s in first.data] == ids[:2] and first.has_more
    page = first.as_openai()
    assert page["object"] == "list" and page["first_id"] == ids[0] and page["last_id"] == ids[1]
    second = repo.list_stores(alpha, limit=2, order="asc", after=ids[1])
    assert [s.id for s in second.data] == ids[2:4] and second.has_more
    last = repo.list_stores(alpha, limit=2, order="asc", after=ids[3])
    assert [s.id for s in last.data] == ids[4:] and not last.has_more
    back = repo.list_stores(alpha, limit=2, order="asc", before=ids[4])
    assert [s.id for s in back.data] == ids[2:4] and back.has_more
    newest_first = repo.list_stores(alpha, limit=10, order="desc", before=ids[2])
    assert [s.id for s in newest_first.data] == [ids[4], ids[3]] and not newest_first.has_more
    with pytest.raises(InvalidRequest) as bad:
        repo.list_stores(beta, after=ids[0])  # another tenant's id is no cursor
    assert bad.value.param == "after"
    for kwargs in ({"limit": 0}, {"limit": 101}, {"order": "up"}):
        with pytest.raises(InvalidRequest):
            repo.list_stores(alpha, **kwargs)  # type: ignore[arg-type]


def test_modify_touch_expiry_and_delete(
    database: Database, clock: ManualClock, tenants: tuple[str, str]
) -> None:
    alpha, _ = tenants
    repo = VectorStoreRepository(database, clock)
    made = repo.create_store(alpha, expires_after={"anchor": "last_active_at", "days": 2})
    assert made.expires_at == made.last_active_at + timedelta(days=2)
    clock.advance(86400)
    touched = repo.touch(alpha, made.id)
    assert touched.expires_at == clock.utcnow() + timedelta(days=2)
    clock.advance(30)  # searched again within a minute: not written again
    assert repo.touch(alpha, made.id).last_active_at == touched.last_active_at
    clock.advance(31)
    assert repo.touch(alpha, made.id).last_active_at == clock.utcnow()
    touched = repo.touch(alpha, made.id)
    changed = repo.modify_store(alpha, made.id, name="renamed", metadata={"a": "b"})
    assert (changed.name, changed.metadata) == ("renamed", {"a": "b"})
    assert changed.expires_at == touched.expires_at  # untouched by an unrelated change
    clock.advance(3 * 86400)
    assert repo.get_store(alpha, made.id).status == "expired"
    kept = repo.modify_store(alpha, made.id, expires_after=None)
    assert kept.expires_at is None and kept.status == "completed"
    assert repo.delete_store(alpha, made.id) == {
        "id": made.id,
        "object": "vector_store.deleted",
        "deleted": True,
    }
    with pytest.raises(NotFound):
        repo.get_store(alpha, made.id)


def test_files_pages_status_filter_attributes_and_isolation(
    database: Database, clock: ManualClock, tenants: tuple[str, str], upload: Upload
) -> None:
    alpha, beta = tenants
    repo = VectorStoreRepository(database, clock)
    store = repo.create_store(alpha)
    file_ids = [upload(alpha, f"text {i}".encode()) for i in range(3)]
    for file_id in file_ids:
        repo.add_file(alpha, store.id, file_id, attributes={"n": 1}, chunking_strategy=STATIC)
        clock.advance(1)
    again = repo.add_file(alpha, store.id, file_ids[0], chunking_strategy=STATIC)
    assert again.attributes == {"n": 1}  # adding twice returns the file as it is
    chunk = NewChunk(0, "hello world", 0, 11, 2, b"\x00" * 8)
    assert repo.save_chunks(alpha, store.id, file_ids[1], [chunk])
    assert repo.mark_failed(alpha, store.id, file_ids[2], "invalid_file", "No text.")

    listed = repo.list_files(alpha, store.id, order="asc")
    assert [f.id for f in listed.data] == file_ids
    assert [f.id for f in repo.list_files(alpha, store.id, status="completed").data] == [
        file_ids[1]
    ]
    failed = repo.get_file(alpha, store.id, file_ids[2]).as_openai()
    assert failed["object"] == "vector_store.file" and failed["status"] == "failed"
    assert failed["last_error"] == {"code": "invalid_file", "message": "No text."}
    assert failed["chunking_strategy"] == STATIC
    page = repo.list_files(alpha, store.id, limit=1, order="asc", after=file_ids[0])
    assert [f.id for f in page.data] == [file_ids[1]] and page.has_more

    info = repo.get_store(alpha, store.id)
    assert info.status == "in_progress"
    assert (info.file_counts.in_progress, info.file_counts.completed) == (1, 1)
    assert info.file_counts.failed == 1 and info.file_counts.total == 3
    assert info.usage_bytes == len("hello world") + 8

    updated = repo.update_attributes(alpha, store.id, file_ids[1], {"lang": "en"})
    assert updated.attributes == {"lang": "en"}

    other = upload(beta, b"theirs")
    with pytest.raises(NotFound) as missing:
        repo.add_file(alpha, store.id, other, chunking_strategy=STATIC)
    assert missing.value.message == f"No such File object: {other}"
    beta_store = repo.create_store(beta)
    with pytest.raises(NotFound):
        repo.get_file(beta, beta_store.id, file_ids[0])
    with pytest.raises(NotFound) as no_file:
        repo.get_file(alpha, store.id, other)
    assert no_file.value.message == (
        f"No file found with id '{other}' in vector store '{store.id}'."
    )

    assert repo.delete_file(alpha, store.id, file_ids[1])["deleted"] is True
    assert repo.get_store(alpha, store.id).usage_bytes == 0
    with pytest.raises(NotFound):
        repo.delete_file(alpha, store.id, file_ids[1])


def test_batches_count_their_files_and_cancel(
    database: Database, clock: ManualClock, tenants: tuple[str, str], upload: Upload
) -> None:
    alpha, beta = tenants
    repo = VectorStoreRepository(database, clock)
    store = repo.create_store(alpha)
    file_ids = [upload(alpha, b"x"), upload(alpha, b"y")]
    batch = repo.create_batch(alpha, store.id, file_ids, chunking_strategy=STATIC)
    assert batch.id.startswith("vsfb_") and batch.status == "in_progress"
    assert batch.file_counts.in_progress == 2
    assert {f.id for f in repo.list_files(alpha, store.id, batch_id=batch.id).data} == set(file_ids)
    repo.save_chunks(alpha, store.id, file_ids[0], [])
    cancelled = repo.cancel_batch(alpha, store.id, batch.id)
    assert cancelled.status == "cancelled"
    assert (cancelled.file_counts.completed, cancelled.file_counts.cancelled) == (1, 1)
    assert cancelled.as_openai()["object"] == "vector_store.files_batch"
    with pytest.raises(NotFound):
        repo.get_batch(beta, store.id, batch.id)
    missing = "file-" + "0" * 24
    with pytest.raises(NotFound):
        repo.create_batch(alpha, store.id, [upload(alpha, b"z"), missing], chunking_strategy={})
    assert len(repo.list_files(alpha, store.id).data) == 2  # nothing of the failed batch


def test_files_indexed_at_once_all_count_in_the_stores_usage(
    database: Database, clock: ManualClock, tenants: tuple[str, str], upload: Upload
) -> None:
    """Indexing workers save chunks concurrently: the store's usage is the sum of its files'
    on both databases (a read-modify-write without the write lock loses updates on SQLite)."""
    alpha, _ = tenants
    repo = VectorStoreRepository(database, clock)
    store = repo.create_store(alpha, name="busy")
    strategy = {
        "type": "static",
        "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0},
    }
    file_ids = [upload(alpha, f"text {i}".encode(), f"f{i}.txt") for i in range(16)]
    for file_id in file_ids:
        repo.add_file(alpha, store.id, file_id, chunking_strategy=strategy)
    chunk = NewChunk(0, "some text", 0, 9, 2, b"\0" * 1536)

    def save(file_id: str) -> bool:
        return repo.save_chunks(alpha, store.id, file_id, [chunk])

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(save, file_ids))
    files = repo.list_files(alpha, store.id, limit=100).data
    assert repo.get_store(alpha, store.id).usage_bytes == sum(f.usage_bytes for f in files) > 0
    for file_id in file_ids[:8]:
        repo.delete_file(alpha, store.id, file_id)
    left = sum(f.usage_bytes for f in repo.list_files(alpha, store.id, limit=100).data)
    assert repo.get_store(alpha, store.id).usage_bytes == left
