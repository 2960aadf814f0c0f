"""What a search needs of a vector store, held in memory while the store's contents stand still.

A ``StoreSnapshot`` holds a store's chunks in (file id, position) order, each with its row id,
its length in terms and its unit vector, and the store's completed files with their names and
attributes. ``Snapshots.get`` reads the store's ``chunks_version`` (one small query, which also
checks that the tenant owns the store) and loads the store again only when the version moved:
every change to a store's chunks or to its files' attributes moves it
(``chunkstore.bump_version``). A reload reads the chunk ids and the files, and the rows of the
chunks written since the last snapshot only. Only postings and chunk texts are read per search.

Rows are ordered in Python, not by the database (collations differ), so a row's index means the
same chunk on SQLite and PostgreSQL and ties break alike on both.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from tokenmill.errors import NotFound
from tokenmill.knowledge.filters import Filter, evaluate
from tokenmill.knowledge.stores import no_such_store
from tokenmill.store.db import Database
from tokenmill.store.tables import VectorStore, VectorStoreChunk, VectorStoreFile

FILTER_MASKS = 32  # the filters whose row masks a snapshot remembers
IN_BATCH = 500  # ids per IN (...) list
HELD_POSTINGS = 4_000_000  # postings a snapshot keeps in memory, the least recently used go

Postings = tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]
"""A term's postings: the rows of the chunks holding it, and how often each holds it."""


@dataclass(frozen=True, slots=True, order=True)
class ChunkKey:
    """A chunk's place: the same on every database (row ids need not be)."""

    file_id: str
    position: int

    def label(self) -> str:
        return f"{self.file_id}#{self.position:09d}"


@dataclass(slots=True)
class StoreSnapshot:
    version: int
    keys: list[ChunkKey]
    ids: npt.NDArray[np.int64]  # each row's chunk id
    lengths: npt.NDArray[np.float64]  # each row's length in terms
    vectors: npt.NDArray[np.float32]  # each row's unit vector (0 x 0 for an empty store)
    files: dict[str, tuple[str, dict[str, Any]]]  # completed file id -> (filename, attributes)
    file_of_row: npt.NDArray[np.int64]  # each row's index in ``file_ids``
    file_ids: list[str]
    _id_order: npt.NDArray[np.int64] = field(init=False)
    _masks: OrderedDict[Filter | None, npt.NDArray[np.bool_]] = field(init=False)
    _postings: OrderedDict[str, Postings] = field(init=False)
    _held_postings: int = field(init=False)
    _lock: threading.Lock = field(init=False)

    def __post_init__(self) -> None:
        self._id_order = np.argsort(self.ids, kind="stable")
        self._masks = OrderedDict()
        self._postings = OrderedDict()
        self._held_postings = 0
        self._lock = threading.Lock()

    @property
    def average_length(self) -> float:
        return float(self.lengths.mean()) if len(self.lengths) else 0.0

    def rows_of(self, chunk_ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The rows of chunk ids (-1 for an id the snapshot does not hold)."""
        if not len(self.ids):
            return np.full(len(chunk_ids), -1, dtype=np.int64)
        sorted_ids = self.ids[self._id_order]
        at = np.searchsorted(sorted_ids, chunk_ids).clip(0, len(sorted_ids) - 1)
        found = sorted_ids[at] == chunk_ids
        return np.where(found, self._id_order[at], -1)

    def postings(self, terms: list[str]) -> tuple[dict[str, Postings], list[str]]:
        """The postings this snapshot holds of ``terms``, and the terms it does not hold."""
        found: dict[str, Postings] = {}
        with self._lock:
            for term in terms:
                held = self._postings.get(term)
                if held is not None:
                    self._postings.move_to_end(term)
                    found[term] = held
        return found, [t for t in terms if t not in found]

    def hold_postings(
        self, term: str, chunk_ids: npt.NDArray[np.int64], frequencies: npt.NDArray[np.float64]
    ) -> Postings:
        """Keeps a term's postings read from the database (chunks written after the snapshot
        was taken are left out: they wait for the next snapshot)."""
        rows = self.rows_of(chunk_ids)
        held = rows >= 0
        postings = (rows[held], frequencies[held])
        with self._lock:
            if term not in self._postings:
                self._postings[term] = postings
                self._held_postings += len(postings[0])
            while self._held_postings > HELD_POSTINGS and len(self._postings) > 1:
                _, dropped = self._postings.popitem(last=False)
                self._held_postings -= len(dropped[0])
        return postings

    def allowed(self, filters: Filter | None) -> npt.NDArray[np.bool_]:
        """Which rows belong to a completed file that passes ``filters``."""
        with self._lock:
            mask = self._masks.get(filters)
            if mask is not None:
                self._masks.move_to_end(filters)
                return mask
        passing = np.array(
            [
                file_id in self.files
                and (filters is None or evaluate(filters, self.files[file_id][1]))
                for file_id in self.file_ids
            ],
            dtype=bool,
        )
        mask = passing[self.file_of_row] if len(self.file_of_row) else np.zeros(0, dtype=bool)
        with self._lock:
            self._masks[filters] = mask
            while len(self._masks) > FILTER_MASKS:
                self._masks.popitem(last=False)
        return mask


class Snapshots:
    """Each store's latest snapshot, loaded when a search finds it missing or out of date."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._held: dict[str, StoreSnapshot] = {}
        self._lock = threading.Lock()

    def get(self, tenant_id: str, store_id: str) -> StoreSnapshot:
        """The store's current snapshot; ``NotFound`` unless the tenant owns the store."""
        with self._db.session() as session:
            version = session.scalar(
                select(VectorStore.chunks_version).where(
                    VectorStore.id == store_id, VectorStore.tenant_id == tenant_id
                )
            )
        if version is None:
            with self._lock:
                self._held.pop(store_id, None)
            raise NotFound(no_such_store(store_id), param="vector_store_id")
        with self._lock:
            held = self._held.get(store_id)
        if held is not None and held.version == version:
            return held
        loaded = self._load(store_id, held)
        with self._lock:
            self._held[store_id] = loaded
        return loaded

    def _load(self, store_id: str, held: StoreSnapshot | None) -> StoreSnapshot:
        """The store as it is now: from nothing, or from ``held`` by reading only the chunks
        written since and dropping those removed (a store being indexed is searched too)."""
        with self._db.session() as session:
            version = session.scalar(
                select(VectorStore.chunks_version).where(VectorStore.id == store_id)
            )
            files = {
                file_id: (filename, dict(attributes or {}))
                for file_id, filename, attributes in session.execute(
                    select(
                        VectorStoreFile.file_id,
                        VectorStoreFile.filename,
                        VectorStoreFile.attributes,
                    ).where(
                        VectorStoreFile.vector_store_id == store_id,
                        VectorStoreFile.status == "completed",
                    )
                )
            }
            kept = np.zeros(0, dtype=np.int64)
            if held is None:
                rows = _chunk_rows(session, store_id, None)
            else:
                now = np.fromiter(
                    session.scalars(
                        select(VectorStoreChunk.id).where(
                            VectorStoreChunk.vector_store_id == store_id
                        )
                    ),
                    np.int64,
                )
                kept = np.flatnonzero(np.isin(held.ids, now))
                rows = _chunk_rows(session, store_id, np.setdiff1d(now, held.ids))
        keys = [ChunkKey(row[0], row[1]) for row in rows]
        ids = np.fromiter((row[2] for row in rows), np.int64, len(rows))
        lengths = np.fromiter((row[3] for row in rows), np.float64, len(rows))
        vectors = _unit([np.frombuffer(row[4], dtype="<f4") for row in rows])
        if held is not None and len(kept):
            keys = [held.keys[i] for i in kept] + keys
            ids = np.concatenate([held.ids[kept], ids])
            lengths = np.concatenate([held.lengths[kept], lengths])
            vectors = np.concatenate([held.vectors[kept], vectors]) if rows else held.vectors[kept]
        order = sorted(range(len(keys)), key=lambda i: (keys[i].file_id, keys[i].position))
        keys = [keys[i] for i in order]
        file_ids = sorted({key.file_id for key in keys})
        index = {file_id: i for i, file_id in enumerate(file_ids)}
        return StoreSnapshot(
            version=int(version or 0),
            keys=keys,
            ids=ids[order],
            lengths=lengths[order],
            vectors=vectors[order] if keys else np.zeros((0, 0), dtype=np.float32),
            files=files,
            file_of_row=np.fromiter((index[key.file_id] for key in keys), np.int64, len(keys)),
            file_ids=file_ids,
        )


def _chunk_rows(
    session: Session, store_id: str, chunk_ids: npt.NDArray[np.int64] | None
) -> list[Any]:
    """(file id, position, chunk id, length, embedding) of the store's chunks, or of those."""
    query = select(
        VectorStoreChunk.file_id,
        VectorStoreChunk.position,
        VectorStoreChunk.id,
        VectorStoreChunk.term_count,
        VectorStoreChunk.embedding,
    ).where(VectorStoreChunk.vector_store_id == store_id)
    if chunk_ids is None:
        return list(session.execute(query))
    rows: list[Any] = []
    for start in range(0, len(chunk_ids), IN_BATCH):
        part = [int(i) for i in chunk_ids[start : start + IN_BATCH]]
        rows.extend(session.execute(query.where(VectorStoreChunk.id.in_(part))))
    return rows


def _unit(vectors: list[npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]:
    if not vectors:
        return np.zeros((0, 0), dtype=np.float32)
    matrix = np.stack(vectors)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    unit: npt.NDArray[np.float32] = (matrix / norms).astype(np.float32)
    return unit
