"""Vector store search latency at 50,000 chunks, and what bounds the indexing rate.

    .venv/bin/python bench/search_latency.py [--chunks 50000] [--queries 200]
                                             [--database-url URL]
                                             [--out bench/results/search_latency.json]

Builds one store of ``--chunks`` chunks from SciFact's abstracts (uploaded again as new files
until there are enough; static chunks of 100 word pieces with 50 overlapping) on SQLite in a
temporary directory or in a new schema of the PostgreSQL at ``--database-url``, then times, in
one process and one run:

- **indexing**, split into its parts: extraction and chunking, embedding with the bundled
  all-MiniLM-L6-v2 (on a sample of the chunks: embedding all 50,000 on 2 cores takes over an
  hour), and writing chunks and postings to the database. The chunks are stored with seeded
  random unit vectors, which cost a search exactly what real ones do.
- **search** with ``Retriever.search`` (what ``POST /v1/vector_stores/{id}/search`` runs after
  parsing), hybrid, keyword and dense, with and without an attribute filter, for SciFact's
  claims; the query's embedding is computed beforehand with the real model and timed apart.
  The first search after indexing (which loads the store's snapshot) is reported alone; each
  row then starts from a loaded snapshot with no term's postings read yet, and "hybrid, again"
  repeats the claims once their terms' postings are held.

Prints a table and writes JSON; the goal is a search p95 of at most 100 ms at 50,000 chunks.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from sqlalchemy import make_url

sys.path.insert(0, str(Path(__file__).parent))

from retrieval import load

from tokenmill.clock import SystemClock
from tokenmill.control.tenants import TenantRepository
from tokenmill.engine.embed.__main__ import bundled_model_path
from tokenmill.engine.embed.model import EmbeddingModel
from tokenmill.files.objects import FileInfo, new_file_id
from tokenmill.files.repository import FileRepository
from tokenmill.knowledge.chunking import ChunkingStrategy, split, wordpiece_tokenizer
from tokenmill.knowledge.filters import parse_filters
from tokenmill.knowledge.repository import VectorStoreRepository
from tokenmill.knowledge.retrieval import MODES, Mode, Retriever
from tokenmill.knowledge.search import SearchOptions
from tokenmill.knowledge.stores import NewChunk
from tokenmill.store.db import Database

STRATEGY = ChunkingStrategy("static", 100, 50)
DIMENSIONS = 384
EMBED_SAMPLE = 256
GOAL_P95_MS = 100.0
FILTER = {"type": "eq", "key": "half", "value": 0}


@contextlib.contextmanager
def database_at(url: str | None) -> Iterator[Database]:
    """A migrated, empty database: SQLite in a temporary directory, or a new PostgreSQL schema."""
    if url is None:
        with tempfile.TemporaryDirectory(prefix="tm-latency-") as directory:
            db = Database(f"sqlite:///{directory}/tokenmill.db")
            db.migrate()
            try:
                yield db
            finally:
                db.dispose()
        return
    schema = f"tm_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin_url = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    db = Database(scoped.render_as_string(hide_password=False))
    try:
        db.migrate()
        yield db
    finally:
        db.dispose()
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def build(
    db: Database, corpus: dict[str, str], wanted: int, model: EmbeddingModel
) -> tuple[str, str, dict[str, Any]]:
    """A store of at least ``wanted`` chunks; its tenant, its id, and the indexing timings."""
    clock = SystemClock()
    tenant = TenantRepository(db, clock).create("bench").id
    files = FileRepository(db, clock)
    stores = VectorStoreRepository(db, clock)
    store = stores.create_store(tenant, name="latency")
    tokenizer = wordpiece_tokenizer(bundled_model_path())
    rng = np.random.default_rng(7)
    chunking = writing = 0.0
    chunks = files_added = 0
    sample: list[str] = []
    texts = list(corpus.values())
    while chunks < wanted:
        text = texts[files_added % len(texts)]
        started = time.perf_counter()
        pieces = split(text, tokenizer, STRATEGY)
        chunking += time.perf_counter() - started
        if len(sample) < EMBED_SAMPLE:
            sample.extend(p.text for p in pieces)
        vectors = rng.standard_normal((len(pieces), DIMENSIONS)).astype("<f4")
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        file_id = new_file_id()
        data = text.encode()
        files.add(
            FileInfo(file_id, tenant, "key_bench", "assistants", f"{file_id}.txt", len(data),
                     "0" * 64, clock.utcnow()),
            10**12, lambda: None,
        )  # fmt: skip
        attributes = {"half": files_added % 2, "copy": files_added // len(texts)}
        stores.add_file(tenant, store.id, file_id, attributes=attributes,
                        chunking_strategy=STRATEGY.body())  # fmt: skip
        made = [
            NewChunk(p.index, p.text, p.start, p.end, p.tokens, v.tobytes())
            for p, v in zip(pieces, vectors, strict=True)
        ]
        started = time.perf_counter()
        stores.save_chunks(tenant, store.id, file_id, made)
        writing += time.perf_counter() - started
        chunks += len(made)
        files_added += 1
        if files_added % 1000 == 0:
            print(f"  {chunks} chunks in {files_added} files", flush=True)
    sample = sample[:EMBED_SAMPLE]
    started = time.perf_counter()
    for start in range(0, len(sample), 32):
        model.embed(model.tokenize(sample[start : start + 32]))
    embedding = time.perf_counter() - started
    return (
        tenant,
        store.id,
        {
            "chunks": chunks,
            "files": files_added,
            "chunking_per_s": round(chunks / chunking, 1),
            "embedding_per_s": round(len(sample) / embedding, 1),
            "embedding_sample": len(sample),
            "writing_per_s": round(chunks / writing, 1),
        },
    )


def measure(
    retriever: Retriever, tenant: str, store: str, claims: list[str], mode: Mode, filtered: bool
) -> dict[str, float]:
    times = []
    for claim in claims:
        options = SearchOptions(
            queries=(claim,),
            max_num_results=10,
            filters=parse_filters(FILTER, "filters") if filtered else None,
        )
        started = time.perf_counter()
        retriever.search(tenant, store, options, mode=mode)
        times.append((time.perf_counter() - started) * 1000)
    return {
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(percentile(times, 0.95), 1),
        "max_ms": round(max(times), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--out", type=Path, default=Path("bench/results/search_latency.json"))
    args = parser.parse_args()
    corpus, queries, _ = load()
    claims = list(queries.values())[: args.queries]
    model = EmbeddingModel(bundled_model_path(), threads=2)
    embed_ms = []
    vectors: dict[str, list[float]] = {}
    for claim in claims:
        started = time.perf_counter()
        vectors[claim] = [float(v) for v in model.embed(model.tokenize([claim]))[0]]
        embed_ms.append((time.perf_counter() - started) * 1000)

    def embed(texts: list[str]) -> list[list[float]]:
        return [vectors[t] for t in texts]

    with database_at(args.database_url) as db:
        print(f"building a store of {args.chunks} chunks on {db.dialect} ...", flush=True)
        tenant, store, indexing = build(db, corpus, args.chunks, model)
        retriever = Retriever(db, embed)
        started = time.perf_counter()
        retriever.search(tenant, store, SearchOptions(queries=(claims[0],)))
        first_ms = (time.perf_counter() - started) * 1000
        searches = {}
        for mode in MODES:
            for filtered in (False, True):
                # A new retriever per row: its store snapshot loaded (by a search for a claim
                # not measured), no term's postings read yet.
                fresh = Retriever(db, embed)
                fresh.search(tenant, store, SearchOptions(queries=(claims[0],)), mode="dense")
                name = f"{mode}{' +filter' if filtered else ''}"
                searches[name] = measure(fresh, tenant, store, claims[1:], mode, filtered)
                if mode == "hybrid" and not filtered:
                    searches["hybrid, again"] = measure(
                        fresh, tenant, store, claims[1:], mode, filtered
                    )
    report = {
        "database": db.dialect,
        "queries": len(claims),
        "indexing": indexing,
        "first_search_ms": round(first_ms, 1),
        "query_embedding": {
            "p50_ms": round(statistics.median(embed_ms), 1),
            "p95_ms": round(percentile(embed_ms, 0.95), 1),
        },
        "search": searches,
        "goal_p95_ms": GOAL_P95_MS,
    }
    print(
        f"\n{indexing['chunks']} chunks in {indexing['files']} files on {db.dialect}; "
        f"{len(claims)} SciFact claims, 10 results each"
    )
    print(
        f"indexing parts (chunks/s): chunking {indexing['chunking_per_s']}, "
        f"embedding {indexing['embedding_per_s']} (MiniLM, 2 threads), "
        f"writing {indexing['writing_per_s']}"
    )
    print(
        f"query embedding p50 {report['query_embedding']['p50_ms']} ms, "
        f"p95 {report['query_embedding']['p95_ms']} ms; first search {report['first_search_ms']} ms"
    )
    print(f"{'search':<18}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}  goal p95 <= {GOAL_P95_MS:.0f}")
    for name, found in searches.items():
        mark = "ok" if found["p95_ms"] <= GOAL_P95_MS else "MISSED"
        print(f"{name:<18}{found['p50_ms']:>9}{found['p95_ms']:>9}{found['max_ms']:>9}  {mark}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
