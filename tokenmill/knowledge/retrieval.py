"""Hybrid retrieval over a vector store: BM25 keyword search, exact dense search, fused.

One interface (``Retriever.search``), one portable design, the same ranked results and scores
on SQLite and PostgreSQL: both are computed here, in Python, from what each database stores
alike (integers and float32 bytes), never by a database's own ranking functions.

- **keyword**: BM25 (``keywords.bm25``, k1 1.2, b 0.75) over the store's postings table; the
  corpus statistics (chunks, average length, document frequencies) are the whole store's, so a
  chunk's score does not change with the filter. Scored 0..1 by ``fusion.saturate`` (half at
  ``KEYWORD_SCORE_HALF``) when keyword search alone ranks.
- **dense**: cosine similarity between the query's embedding and every chunk's, exactly (numpy
  over the store's matrix of vectors). A store's matrix is held in memory and loaded again when
  the store's ``chunks_version`` moved (one small read per search tells).
- **hybrid** (the default): each query's keyword ranking and dense ranking, top
  ``candidates`` of each, fused by reciprocal rank fusion; the score is RRF's normalised 0..1.

``filters`` select files by their attributes with ``filters.evaluate`` (the reference meaning)
before anything is ranked, so every mode returns only matching files. ``ranking_options.ranker``
``none`` means no fusion ranker: results are ranked by dense similarity alone (the cosine is the
score); ``auto`` and ``default-2024-11-15`` are hybrid, weighted by ``hybrid_search``'s
``text_weight`` and ``embedding_weight`` (a zero weight leaves that method out). ``mode``
overrides this (benchmarks).
With several queries, hybrid fuses all their rankings; keyword and dense take a chunk's best
score over the queries. Ties go to the earlier chunk (by file id, then position in the file).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, select

from tokenmill.errors import NotFound
from tokenmill.knowledge.filters import Filter, evaluate
from tokenmill.knowledge.fusion import Ranking, reciprocal_rank_fusion, saturate
from tokenmill.knowledge.keywords import CorpusStats, bm25, query_terms
from tokenmill.knowledge.search import SearchOptions
from tokenmill.knowledge.stores import no_such_store
from tokenmill.store.db import Database
from tokenmill.store.tables import (
    VectorStore,
    VectorStoreChunk,
    VectorStoreFile,
    VectorStorePosting,
)

Mode = Literal["hybrid", "keyword", "dense"]
MODES: tuple[Mode, ...] = ("hybrid", "keyword", "dense")
Embed = Callable[[list[str]], list[list[float]]]
DEFAULT_CANDIDATES = 50  # of each ranking, before fusion
KEYWORD_SCORE_HALF = 4.0  # a BM25 score of 4 (about two rare terms matched) scores 0.5
IN_BATCH = 500  # ids per IN (...) list


@dataclass(frozen=True, slots=True, order=True)
class ChunkKey:
    """A chunk's place: the same on every database (row ids need not be)."""

    file_id: str
    position: int

    def label(self) -> str:
        return f"{self.file_id}#{self.position:09d}"


@dataclass(frozen=True, slots=True)
class Scored:
    key: ChunkKey
    score: float


@dataclass(frozen=True, slots=True)
class SearchResult:
    file_id: str
    filename: str
    score: float
    attributes: dict[str, Any]
    text: str
    position: int

    def as_openai(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "filename": self.filename,
            "score": self.score,
            "attributes": dict(self.attributes),
            "content": [{"type": "text", "text": self.text}],
        }


@dataclass(frozen=True, slots=True)
class SearchPage:
    queries: tuple[str, ...]
    results: list[SearchResult]

    def as_openai(self) -> dict[str, Any]:
        return {
            "object": "vector_store.search_results.page",
            "search_query": list(self.queries),
            "data": [r.as_openai() for r in self.results],
            "has_more": False,
            "next_page": None,
        }


@dataclass(frozen=True, slots=True)
class _Matrix:
    """A store's vectors, unit length, rows in (file id, position) order."""

    version: int
    keys: list[ChunkKey]
    file_ids: npt.NDArray[np.str_]
    vectors: npt.NDArray[np.float64]


def _unit(matrix: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    unit: npt.NDArray[np.float64] = matrix / norms
    return unit


def _batches(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), IN_BATCH):
        yield items[start : start + IN_BATCH]


class Retriever:
    def __init__(
        self,
        db: Database,
        embed: Embed,
        *,
        candidates: int = DEFAULT_CANDIDATES,
        keyword_half: float = KEYWORD_SCORE_HALF,
    ) -> None:
        self._db = db
        self._embed = embed
        self.candidates = candidates
        self.keyword_half = keyword_half
        self._matrices: dict[str, _Matrix] = {}
        self._lock = threading.Lock()

    def search(
        self, tenant_id: str, store_id: str, options: SearchOptions, *, mode: Mode | None = None
    ) -> SearchPage:
        """The store's best chunks for ``options`` (see the module's docstring)."""
        if mode is None:
            mode = _mode(options)
        if mode not in MODES:
            raise ValueError(f"mode is one of {', '.join(MODES)}, not {mode!r}")
        files = self._files(tenant_id, store_id, options.filters)
        allowed = set(files)
        keyword: list[list[Scored]] = []
        dense: list[list[Scored]] = []
        if mode in ("hybrid", "keyword"):
            keyword = [self.keyword(store_id, q, allowed) for q in options.queries]
        if mode in ("hybrid", "dense"):
            dense = self.dense(store_id, list(options.queries), allowed)
        if mode == "hybrid":
            ranked = self._fuse(keyword, dense, options.text_weight, options.embedding_weight)
        elif mode == "keyword":
            ranked = _best(keyword, lambda s: saturate(s, self.keyword_half))
        else:
            ranked = _best(dense, lambda s: max(0.0, min(1.0, s)))
        kept = [s for s in ranked if s.score >= options.score_threshold]
        kept = kept[: options.max_num_results]
        return SearchPage(options.queries, self._results(store_id, kept, files))

    # ---- the two rankings -----------------------------------------------------------------

    def keyword(self, store_id: str, query: str, allowed: set[str] | None = None) -> list[Scored]:
        """BM25 scores of the chunks matching ``query``'s terms, best first (all of them)."""
        wanted = query_terms(query)
        if not wanted:
            return []
        with self._db.session() as session:
            count, total = session.execute(
                select(func.count(), func.coalesce(func.sum(VectorStoreChunk.term_count), 0)).where(
                    VectorStoreChunk.vector_store_id == store_id
                )
            ).one()
            postings = list(
                session.execute(
                    select(
                        VectorStorePosting.term,
                        VectorStorePosting.chunk_id,
                        VectorStorePosting.term_frequency,
                    ).where(
                        VectorStorePosting.vector_store_id == store_id,
                        VectorStorePosting.term.in_(wanted),
                    )
                )
            )
            chunk_ids = sorted({chunk for _, chunk, _ in postings})
            chunks: dict[int, tuple[ChunkKey, int]] = {}
            for part in _batches(chunk_ids):
                for chunk_id, file_id, position, length in session.execute(
                    select(
                        VectorStoreChunk.id,
                        VectorStoreChunk.file_id,
                        VectorStoreChunk.position,
                        VectorStoreChunk.term_count,
                    ).where(VectorStoreChunk.id.in_(part))
                ):
                    chunks[chunk_id] = (ChunkKey(file_id, position), length)
        frequencies: dict[int, dict[str, int]] = {}
        document_frequency: dict[str, int] = {}
        for term, chunk_id, tf in postings:
            frequencies.setdefault(chunk_id, {})[term] = tf
            document_frequency[term] = document_frequency.get(term, 0) + 1
        stats = CorpusStats(
            int(count), int(total) / int(count) if count else 0.0, document_frequency
        )
        scored = [
            Scored(key, bm25(wanted, frequencies[chunk_id], length, stats))
            for chunk_id, (key, length) in chunks.items()
            if allowed is None or key.file_id in allowed
        ]
        scored.sort(key=lambda s: (-s.score, s.key))
        return scored

    def dense(
        self, store_id: str, queries: list[str], allowed: set[str] | None = None
    ) -> list[list[Scored]]:
        """For each query, the cosine similarity of the top ``candidates`` chunks, best first."""
        matrix = self._matrix(store_id)
        if not matrix.keys:
            return [[] for _ in queries]
        asked = np.asarray(self._embed(queries), dtype=np.float64)
        if asked.ndim != 2 or asked.shape[1] != matrix.vectors.shape[1]:
            raise ValueError(
                f"query vectors of shape {asked.shape} do not fit the store's "
                f"{matrix.vectors.shape[1]}-dimensional vectors"
            )
        similarities = matrix.vectors @ _unit(asked).T  # rows: chunks, columns: queries
        if allowed is None:
            usable = np.ones(len(matrix.keys), dtype=bool)
        else:
            usable = np.isin(matrix.file_ids, np.asarray(sorted(allowed), dtype=np.str_))
        rankings = []
        for column in range(len(queries)):
            scores = np.where(usable, similarities[:, column], -np.inf)
            order = np.argsort(-scores, kind="stable")[: self.candidates]
            rankings.append(
                [
                    Scored(matrix.keys[i], float(scores[i]))
                    for i in order
                    if math.isfinite(scores[i])
                ]
            )
        return rankings

    # ---- helpers --------------------------------------------------------------------------

    def _fuse(
        self,
        keyword: list[list[Scored]],
        dense: list[list[Scored]],
        text_weight: float = 1.0,
        embedding_weight: float = 1.0,
    ) -> list[Scored]:
        rankings = []
        by_label: dict[str, ChunkKey] = {}
        weighted = [(r, text_weight) for r in keyword] + [(r, embedding_weight) for r in dense]
        for ranking, weight in weighted:
            top = ranking[: self.candidates]
            by_label.update((s.key.label(), s.key) for s in top)
            rankings.append(Ranking([s.key.label() for s in top], weight))
        return [Scored(by_label[f.id], f.score) for f in reciprocal_rank_fusion(rankings)]

    def _files(
        self, tenant_id: str, store_id: str, filters: Filter | None
    ) -> dict[str, tuple[str, dict[str, Any]]]:
        """The store's indexed files that pass the filter: id → (filename, attributes)."""
        with self._db.session() as session:
            found = session.scalar(
                select(VectorStore.id).where(
                    VectorStore.id == store_id, VectorStore.tenant_id == tenant_id
                )
            )
            if found is None:
                raise NotFound(no_such_store(store_id), param="vector_store_id")
            rows = session.execute(
                select(
                    VectorStoreFile.file_id, VectorStoreFile.filename, VectorStoreFile.attributes
                ).where(
                    VectorStoreFile.vector_store_id == store_id,
                    VectorStoreFile.status == "completed",
                )
            )
            return {
                file_id: (filename, dict(attributes or {}))
                for file_id, filename, attributes in rows
                if filters is None or evaluate(filters, attributes or {})
            }

    def _matrix(self, store_id: str) -> _Matrix:
        with self._db.session() as session:
            version = session.scalar(
                select(VectorStore.chunks_version).where(VectorStore.id == store_id)
            )
        if version is None:
            with self._lock:
                self._matrices.pop(store_id, None)
            raise NotFound(no_such_store(store_id), param="vector_store_id")
        with self._lock:
            cached = self._matrices.get(store_id)
        if cached is not None and cached.version == version:
            return cached
        with self._db.session() as session:
            rows = list(
                session.execute(
                    select(
                        VectorStoreChunk.file_id,
                        VectorStoreChunk.position,
                        VectorStoreChunk.embedding,
                    ).where(VectorStoreChunk.vector_store_id == store_id)
                )
            )
        rows.sort(key=lambda row: (row[0], row[1]))  # in Python: collations differ
        keys = [ChunkKey(file_id, position) for file_id, position, _ in rows]
        if rows:
            vectors = np.stack([np.frombuffer(blob, dtype="<f4") for _, _, blob in rows])
            unit = _unit(vectors.astype(np.float64))
        else:
            unit = np.zeros((0, 0), dtype=np.float64)
        loaded = _Matrix(int(version), keys, np.asarray([k.file_id for k in keys]), unit)
        with self._lock:
            self._matrices[store_id] = loaded
        return loaded

    def _results(
        self,
        store_id: str,
        ranked: list[Scored],
        files: dict[str, tuple[str, dict[str, Any]]],
    ) -> list[SearchResult]:
        texts: dict[ChunkKey, str] = {}
        by_file: dict[str, list[int]] = {}
        for s in ranked:
            by_file.setdefault(s.key.file_id, []).append(s.key.position)
        with self._db.session() as session:
            for file_id, positions in by_file.items():
                for position, text in session.execute(
                    select(VectorStoreChunk.position, VectorStoreChunk.text).where(
                        VectorStoreChunk.vector_store_id == store_id,
                        VectorStoreChunk.file_id == file_id,
                        VectorStoreChunk.position.in_(positions),
                    )
                ):
                    texts[ChunkKey(file_id, position)] = text
        return [
            SearchResult(
                file_id=s.key.file_id,
                filename=files[s.key.file_id][0],
                score=s.score,
                attributes=files[s.key.file_id][1],
                text=texts[s.key],
                position=s.key.position,
            )
            for s in ranked
            if s.key in texts
        ]


def _mode(options: SearchOptions) -> Mode:
    """The methods a request asks for: ``ranker: none`` or no text weight is dense alone, no
    embedding weight is keyword alone, anything else is hybrid."""
    if options.ranker == "none" or options.text_weight == 0:
        return "dense"
    return "keyword" if options.embedding_weight == 0 else "hybrid"


def _best(rankings: list[list[Scored]], scale: Callable[[float], float]) -> list[Scored]:
    """Each chunk's best score over the rankings, scaled, best first."""
    best: dict[ChunkKey, float] = {}
    for ranking in rankings:
        for s in ranking:
            score = scale(s.score)
            if score > best.get(s.key, -math.inf):
                best[s.key] = score
    ordered = [Scored(key, score) for key, score in best.items()]
    ordered.sort(key=lambda s: (-s.score, s.key))
    return ordered
