"""A file's chunks read back on SQLite and PostgreSQL: the indexed text, pages of chunks,
tenants apart."""

from __future__ import annotations

import pytest

from tests.knowledge.conftest import Doc, Upload, build_store
from tokenmill.clock import ManualClock
from tokenmill.errors import InvalidRequest, NotFound
from tokenmill.knowledge.chunkreader import ChunkReader
from tokenmill.store.db import Database

LONG = "".join(f"Sentence number {n} of a long text about chunking. " for n in range(120))


@pytest.fixture
def long_file(
    database: Database, clock: ManualClock, upload: Upload, tenants: tuple[str, str]
) -> tuple[str, str]:
    """A store of the first tenant's holding LONG, indexed: (store id, file id)."""
    store_id, ids = build_store(database, clock, upload, tenants[0], [Doc("long.txt", LONG)])
    return store_id, ids["long.txt"]


def test_file_text_rebuilds_the_text_from_overlapping_chunks(
    database: Database, tenants: tuple[str, str], long_file: tuple[str, str]
) -> None:
    alpha, beta = tenants
    reader = ChunkReader(database)
    assert reader.file_text(alpha, *long_file) == LONG
    with pytest.raises(NotFound):
        reader.file_text(beta, *long_file)


def test_chunks_page_in_position_order_for_their_tenant_only(
    database: Database, tenants: tuple[str, str], long_file: tuple[str, str]
) -> None:
    alpha, beta = tenants
    reader = ChunkReader(database)
    store_id, file_id = long_file
    everything = reader.file_chunks(alpha, store_id, file_id, limit=100)
    assert not everything.has_more and len(everything.data) > 3
    assert [c.position for c in everything.data] == list(range(len(everything.data)))
    for chunk in everything.data:
        assert LONG[chunk.char_start : chunk.char_end] == chunk.text and chunk.tokens > 0

    first = reader.file_chunks(alpha, store_id, file_id, limit=2)
    assert first.data == everything.data[:2] and first.has_more
    body = first.as_openai()
    assert body["object"] == "list" and (body["first_id"], body["last_id"]) == (0, 1)
    assert body["data"][0]["object"] == "vector_store.file.chunk"
    rest = reader.file_chunks(alpha, store_id, file_id, limit=100, after=body["last_id"])
    assert rest.data == everything.data[2:] and not rest.has_more
    empty = reader.file_chunks(alpha, store_id, file_id, after=10**6).as_openai()
    assert empty["data"] == [] and empty["first_id"] is None and not empty["has_more"]

    with pytest.raises(InvalidRequest) as bad:
        reader.file_chunks(alpha, store_id, file_id, limit=101)
    assert bad.value.param == "limit"
    with pytest.raises(NotFound):
        reader.file_chunks(beta, store_id, file_id)
    with pytest.raises(NotFound):
        reader.file_chunks(alpha, store_id, "file-nothere")
