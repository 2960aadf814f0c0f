"""A store's snapshot, reloaded piecemeal after changes, equals one loaded from nothing."""

from __future__ import annotations

import numpy as np

from tests.knowledge.conftest import DOCS_FOR_STORAGE, SMALL_CHUNKS, Upload, build_store
from tokenmill.clock import ManualClock
from tokenmill.knowledge.chunking import whitespace_tokenizer
from tokenmill.knowledge.indexing import index_file
from tokenmill.knowledge.repository import VectorStoreRepository
from tokenmill.knowledge.snapshot import Snapshots, StoreSnapshot
from tokenmill.store.db import Database

from .conftest import hashed_embed


def _same(one: StoreSnapshot, other: StoreSnapshot) -> None:
    assert one.version == other.version and one.keys == other.keys
    assert np.array_equal(one.ids, other.ids) and np.array_equal(one.lengths, other.lengths)
    assert np.array_equal(one.vectors, other.vectors)
    assert one.files == other.files and one.file_ids == other.file_ids
    assert np.array_equal(one.file_of_row, other.file_of_row)


def test_a_reloaded_snapshot_equals_a_fresh_one(
    database: Database, clock: ManualClock, tenants: tuple[str, str], upload: Upload
) -> None:
    alpha, _ = tenants
    store, ids = build_store(database, clock, upload, alpha, DOCS_FOR_STORAGE[:2])
    snapshots = Snapshots(database)
    first = snapshots.get(alpha, store)
    assert snapshots.get(alpha, store) is first  # nothing moved: the same snapshot

    repo = VectorStoreRepository(database, clock)
    repo.delete_file(alpha, store, ids["tea.txt"])
    doc = DOCS_FOR_STORAGE[2]
    added = upload(alpha, doc.text.encode(), doc.name)
    repo.add_file(alpha, store, added, chunking_strategy=SMALL_CHUNKS.body())
    chunks = index_file(
        doc.text.encode(), doc.name, None, SMALL_CHUNKS, whitespace_tokenizer, hashed_embed
    )
    assert repo.save_chunks(alpha, store, added, chunks)
    repo.update_attributes(alpha, store, added, {"topic": "garden"})

    reloaded = snapshots.get(alpha, store)
    assert reloaded is not first and {k.file_id for k in reloaded.keys} == {
        ids["coffee.txt"],
        added,
    }
    _same(reloaded, Snapshots(database).get(alpha, store))
    assert reloaded.files[added][1] == {"topic": "garden"}

    for file_id in (ids["coffee.txt"], added):
        repo.delete_file(alpha, store, file_id)
    emptied = snapshots.get(alpha, store)
    _same(emptied, Snapshots(database).get(alpha, store))
    assert emptied.keys == [] and emptied.vectors.shape == (0, 0)
