"""Hybrid retrieval over a vector store: BM25 keyword search, exact dense search, fused.

One interface (``Retriever.search``), one portable design, the same ranked results and scores
on SQLite and PostgreSQL: both are computed here, with numpy, from what each database stores
alike (integers and float32 bytes), never by a database's own ranking functions.

- **keyword**: BM25 (``keywords.bm25_parts``, k1 1.2, b 0.75) over the store's postings table
  (a term's postings are read once per ``snapshot`` of the store and kept); the corpus
  statistics (chunks, average length, document frequencies) are the whole store's, so a
  chunk's score does not change with the filter. Scored 0..1 by ``fusion.saturate`` (half at
  ``KEYWORD_SCORE_HALF``) when keyword search alone ranks.
- **dense**: cosine similarity between the query's embedding and every chunk's, exactly (one
  matrix product over the store's unit vectors, held in the store's ``snapshot``).
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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from sqlalchemy import select

from tokenmill.knowledge.fusion import Ranking, reciprocal_rank_fusion, saturate
from tokenmill.knowledge.keywords import bm25_parts, idf, query_terms
from tokenmill.knowledge.search import SearchOptions
from tokenmill.knowledge.snapshot import ChunkKey, Postings, Snapshots, StoreSnapshot
from tokenmill.store.db import Database
from tokenmill.store.tables import VectorStoreChunk, VectorStorePosting

Mode = Literal["hybrid", "keyword", "dense"]
MODES: tuple[Mode, ...] = ("hybrid", "keyword", "dense")
Embed = Callable[[list[str]], list[list[float]]]
DEFAULT_CANDIDATES = 50  # of each ranking, before fusion
KEYWORD_SCORE_HALF = 4.0  # a BM25 score of 4 (about two rare terms matched) scores 0.5

__all__ = ["ChunkKey", "Retriever", "Scored", "SearchPage", "SearchResult"]


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
        self._snapshots = Snapshots(db)

    def search(
        self, tenant_id: str, store_id: str, options: SearchOptions, *, mode: Mode | None = None
    ) -> SearchPage:
        """The store's best chunks for ``options`` (see the module's docstring)."""
        if mode is None:
            mode = _mode(options)
        if mode not in MODES:
            raise ValueError(f"mode is one of {', '.join(MODES)}, not {mode!r}")
        snapshot = self._snapshots.get(tenant_id, store_id)
        allowed = snapshot.allowed(options.filters)
        # Each ranking needs no more than what fusion reads, or than the page shows.
        depth = self.candidates if mode == "hybrid" else options.max_num_results
        keyword: list[list[Scored]] = []
        dense: list[list[Scored]] = []
        if mode in ("hybrid", "keyword"):
            keyword = [
                self._keyword(snapshot, store_id, q, allowed, depth) for q in options.queries
            ]
        if mode in ("hybrid", "dense"):
            dense = self._dense(snapshot, list(options.queries), allowed, depth)
        if mode == "hybrid":
            ranked = self._fuse(keyword, dense, options.text_weight, options.embedding_weight)
        elif mode == "keyword":
            ranked = _best(keyword, lambda s: saturate(s, self.keyword_half))
        else:
            ranked = _best(dense, lambda s: max(0.0, min(1.0, s)))
        kept = [s for s in ranked if s.score >= options.score_threshold]
        kept = kept[: options.max_num_results]
        return SearchPage(options.queries, self._results(store_id, kept, snapshot))

    # ---- the two rankings -----------------------------------------------------------------

    def keyword(
        self, tenant_id: str, store_id: str, query: str, limit: int | None = None
    ) -> list[Scored]:
        """BM25 scores of the chunks matching ``query``'s terms, best first (all, or ``limit``)."""
        snapshot = self._snapshots.get(tenant_id, store_id)
        return self._keyword(snapshot, store_id, query, snapshot.allowed(None), limit)

    def _keyword(
        self,
        snapshot: StoreSnapshot,
        store_id: str,
        query: str,
        allowed: npt.NDArray[np.bool_],
        limit: int | None,
    ) -> list[Scored]:
        wanted = query_terms(query)
        if not wanted or not snapshot.keys:
            return []
        postings, missing = snapshot.postings(wanted)
        if missing:
            postings.update(self._read_postings(snapshot, store_id, missing))
        scores = np.zeros(len(snapshot.keys))
        for term in wanted:  # in sorted order, as the scores are summed on every database
            rows, tf = postings[term]
            if not len(rows):
                continue
            term_idf = np.full(len(rows), idf(len(snapshot.keys), len(rows)))
            scores[rows] += bm25_parts(
                term_idf, tf, snapshot.lengths[rows], snapshot.average_length
            )
        matched = np.flatnonzero((scores > 0) & allowed)
        return _top(snapshot, matched, scores[matched], limit)

    def _read_postings(
        self, snapshot: StoreSnapshot, store_id: str, terms: list[str]
    ) -> dict[str, Postings]:
        """The postings of ``terms`` from the database, kept by the snapshot for later searches."""
        with self._db.session() as session:
            rows = (
                session.connection()
                .execute(
                    select(
                        VectorStorePosting.term,
                        VectorStorePosting.chunk_id,
                        VectorStorePosting.term_frequency,
                    ).where(
                        VectorStorePosting.vector_store_id == store_id,
                        VectorStorePosting.term.in_(terms),
                    )
                )
                .all()
            )
        found: dict[str, tuple[list[int], list[int]]] = {t: ([], []) for t in terms}
        for term, chunk_id, frequency in rows:
            ids, frequencies = found[term]
            ids.append(chunk_id)
            frequencies.append(frequency)
        return {
            term: snapshot.hold_postings(
                term, np.asarray(ids, dtype=np.int64), np.asarray(tfs, dtype=np.float64)
            )
            for term, (ids, tfs) in found.items()
        }

    def _dense(
        self,
        snapshot: StoreSnapshot,
        queries: list[str],
        allowed: npt.NDArray[np.bool_],
        limit: int,
    ) -> list[list[Scored]]:
        """For each query, the cosine similarity of the top ``limit`` chunks, best first."""
        if not snapshot.keys:
            return [[] for _ in queries]
        asked = np.asarray(self._embed(queries), dtype=np.float64)
        if asked.ndim != 2 or asked.shape[1] != snapshot.vectors.shape[1]:
            raise ValueError(
                f"query vectors of shape {asked.shape} do not fit the store's "
                f"{snapshot.vectors.shape[1]}-dimensional vectors"
            )
        norms = np.linalg.norm(asked, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        unit = (asked / norms).astype(np.float32)
        similarities = snapshot.vectors @ unit.T  # rows: chunks, columns: queries
        usable = np.flatnonzero(allowed)
        return [
            _top(snapshot, usable, similarities[usable, column].astype(np.float64), limit)
            for column in range(len(queries))
        ]

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

    def _results(
        self, store_id: str, ranked: list[Scored], snapshot: StoreSnapshot
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
                filename=snapshot.files[s.key.file_id][0],
                score=s.score,
                attributes=snapshot.files[s.key.file_id][1],
                text=texts[s.key],
                position=s.key.position,
            )
            for s in ranked
            if s.key in texts
        ]


def _top(
    snapshot: StoreSnapshot,
    rows: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float64],
    limit: int | None,
) -> list[Scored]:
    """The best ``limit`` of ``rows`` by score, ties to the earlier row (the earlier chunk)."""
    finite = np.isfinite(scores)
    rows, scores = rows[finite], scores[finite]
    if limit is not None and len(rows) > limit:
        # Keep every row tied with the limit's score, so the tie-break below sees them all.
        cut = np.partition(-scores, limit - 1)[limit - 1]
        near = -scores <= cut
        rows, scores = rows[near], scores[near]
    order = np.lexsort((rows, -scores))[:limit]
    return [Scored(snapshot.keys[int(rows[i])], float(scores[i])) for i in order]


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
