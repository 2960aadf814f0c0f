"""Hybrid retrieval on SQLite and PostgreSQL: BM25 against a brute-force computation, hybrid
against each method alone, filters, thresholds, the shape of a page, the vector cache."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from sqlalchemy import select

from tests.knowledge.conftest import (
    Doc,
    MiniLM,
    Upload,
    build_store,
    hashed_embed,
)
from tokenmill.clock import ManualClock
from tokenmill.errors import NotFound
from tokenmill.knowledge.chunking import ChunkingStrategy, whitespace_tokenizer
from tokenmill.knowledge.filters import parse_filters
from tokenmill.knowledge.indexing import index_file
from tokenmill.knowledge.keywords import STOP_WORDS, terms
from tokenmill.knowledge.repository import VectorStoreRepository
from tokenmill.knowledge.retrieval import MODES, Mode, Retriever
from tokenmill.knowledge.search import SearchOptions, parse_search
from tokenmill.store.db import Database
from tokenmill.store.tables import VectorStoreChunk

DOCS = [
    Doc(
        "tea.txt",
        "Green tea is brewed at 80 degrees. Black tea tolerates boiling water.",
        {"topic": "drinks", "year": 2021},
    ),
    Doc(
        "coffee.txt",
        "Coffee beans are roasted; espresso is brewed under pressure. Coffee coffee coffee.",
        {"topic": "drinks", "year": 2023},
    ),
    Doc(
        "garden.txt",
        "Tomatoes need sun. Water the tomatoes at dawn, never at noon.",
        {"topic": "garden", "year": 2023},
    ),
    Doc(
        "batteries.txt",
        "Lithium batteries dislike heat. Store batteries half charged.",
        {"topic": "tech", "year": 2022, "draft": True},
    ),
    Doc(
        "kettle.txt",
        "The kettle boils water for tea in two minutes; descale the kettle monthly.",
        {"topic": "tech", "year": 2024},
    ),
]


def brute_bm25(query: str, texts: list[str]) -> list[float]:
    """BM25 from the texts themselves, written out without the module under test's helpers."""
    docs = [Counter(terms(t)) for t in texts]
    lengths = [sum(d.values()) for d in docs]
    average = sum(lengths) / len(docs)
    scores = []
    for doc, length in zip(docs, lengths, strict=True):
        total = 0.0
        for term in set(terms(query)):
            if doc[term] == 0:
                continue
            df = sum(1 for d in docs if d[term])
            idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
            tf = doc[term]
            total += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * length / average))
        scores.append(total)
    return scores


def test_bm25_matches_a_brute_force_computation(
    database: Database, clock: ManualClock, tenants: tuple[str, str], upload: Upload
) -> None:
    alpha, _ = tenants
    store, ids = build_store(database, clock, upload, alpha, DOCS)
    with database.session() as session:
        rows = list(session.execute(select(VectorStoreChunk.file_id, VectorStoreChunk.text)))
    texts = [text for _, text in rows]
    retriever = Retriever(database, hashed_embed)
    for query in ("tea water", "coffee", "boiling kettle tea", "Tomatoes at dawn", "heat"):
        expected = brute_bm25(query, texts)
        found = {s.key.file_id: s.score for s in retriever.keyword(alpha, store, query)}
        want = {rows[i][0]: score for i, score in enumerate(expected) if score > 0}
        assert found.keys() == want.keys()
        for file_id, score in want.items():
            assert found[file_id] == pytest.approx(score, rel=1e-12, abs=1e-12)
    coffee = retriever.keyword(alpha, store, "coffee")
    assert coffee[0].key.file_id == ids["coffee.txt"]
    assert retriever.keyword(alpha, store, " ".join(sorted(STOP_WORDS)[:5])) == []


CODES = ["ZQ-4471", "ZQ-4417", "ZQ-7441", "ZQ-1744", "ZQ-4714", "ZQ-1474"]
PARAPHRASES = {
    "cat.txt": (
        "The feline dozed on the rug all afternoon while rain fell outside.",
        "a cat sleeping on a carpet",
    ),
    "money.txt": (
        "Quarterly revenue grew because subscription renewals rose sharply.",
        "company earnings increased",
    ),
    "car.txt": (
        "The automobile would not start on frosty mornings until the battery was replaced.",
        "vehicle fails to ignite in cold weather",
    ),
    "doctor.txt": (
        "The physician prescribed rest and fluids for the child's fever.",
        "medic recommended staying in bed when sick",
    ),
}


def test_hybrid_finds_what_either_method_alone_misses(
    database: Database,
    clock: ManualClock,
    tenants: tuple[str, str],
    upload: Upload,
    minilm: MiniLM,
) -> None:
    """Exact product codes only keyword search tells apart; paraphrases share no word with
    their document, so only dense search finds them. Hybrid finds both kinds first."""
    alpha, _ = tenants
    docs = [
        Doc(
            f"{code}.txt",
            f"Spare part {code} is a replacement fan assembly that fits the compact heater line.",
        )
        for code in CODES
    ] + [Doc(name, text) for name, (text, _) in PARAPHRASES.items()]
    store, ids = build_store(
        database, clock, upload, alpha, docs, minilm.embed, minilm.tokenizer, minilm.strategy
    )
    asked = {code.split("-")[1]: ids[f"{code}.txt"] for code in CODES}
    asked |= {query: ids[name] for name, (_, query) in PARAPHRASES.items()}
    retriever = Retriever(database, minilm.embed)

    def first_hits(mode: Mode) -> int:
        hits = 0
        for query, wanted in asked.items():
            page = retriever.search(alpha, store, SearchOptions((query,)), mode=mode)
            hits += bool(page.results) and page.results[0].file_id == wanted
        return hits

    found = {mode: first_hits(mode) for mode in MODES}
    assert found["hybrid"] == len(asked)
    assert found["keyword"] == len(CODES)  # every code, no paraphrase
    assert found["dense"] < len(asked)  # near-identical codes confuse the embedding
    assert found["hybrid"] > max(found["keyword"], found["dense"])


@pytest.mark.parametrize("mode", MODES)
def test_filters_apply_in_every_mode(
    database: Database, clock: ManualClock, tenants: tuple[str, str], upload: Upload, mode: Mode
) -> None:
    alpha, _ = tenants
    store, ids = build_store(database, clock, upload, alpha, DOCS)
    retriever = Retriever(database, hashed_embed)
    raw = {
        "type": "and",
        "filters": [
            {"type": "gte", "key": "year", "value": 2022},
            {"type": "ne", "key": "draft", "value": True},
        ],
    }
    options = SearchOptions(("tea water kettle heat coffee",), filters=parse_filters(raw))
    page = retriever.search(alpha, store, options, mode=mode)
    names = {name for name, file_id in ids.items() if file_id in {r.file_id for r in page.results}}
    assert names and names <= {"coffee.txt", "garden.txt", "kettle.txt"}
    unfiltered = retriever.search(alpha, store, SearchOptions(options.queries), mode=mode)
    assert {r.file_id for r in unfiltered.results} > {r.file_id for r in page.results}


def test_threshold_limit_ranker_and_page_shape(
    database: Database, clock: ManualClock, tenants: tuple[str, str], upload: Upload
) -> None:
    alpha, beta = tenants
    store, ids = build_store(database, clock, upload, alpha, DOCS)
    retriever = Retriever(database, hashed_embed)
    options = parse_search({"query": ["tea", "kettle"], "max_num_results": 2})
    page = retriever.search(alpha, store, options).as_openai()
    assert page["object"] == "vector_store.search_results.page"
    assert page["search_query"] == ["tea", "kettle"]
    assert page["has_more"] is False and page["next_page"] is None
    assert len(page["data"]) == 2
    top = page["data"][0]
    assert top["file_id"] == ids["kettle.txt"] and top["filename"] == "kettle.txt"
    assert top["attributes"] == {"topic": "tech", "year": 2024}
    assert top["content"][0]["type"] == "text" and "kettle" in top["content"][0]["text"]
    assert 0 < top["score"] <= 1 and page["data"][1]["score"] <= top["score"]

    everything = retriever.search(alpha, store, parse_search({"query": "tea water"}))
    cut = everything.results[1].score
    strict = parse_search({"query": "tea water", "ranking_options": {"score_threshold": cut}})
    kept = retriever.search(alpha, store, strict).results
    assert kept and all(r.score >= cut for r in kept) and len(kept) < len(everything.results)

    none = parse_search({"query": "tea water", "ranking_options": {"ranker": "none"}})
    dense = retriever.search(alpha, store, SearchOptions(("tea water",)), mode="dense")
    assert retriever.search(alpha, store, none) == dense

    def weighted(embedding: float, text: float) -> object:
        weights = {"embedding_weight": embedding, "text_weight": text}
        body = {"query": "tea water", "ranking_options": {"hybrid_search": weights}}
        return retriever.search(alpha, store, parse_search(body))

    keyword = retriever.search(alpha, store, SearchOptions(("tea water",)), mode="keyword")
    assert weighted(1, 0) == dense and weighted(0, 1) == keyword
    hybrid = retriever.search(alpha, store, SearchOptions(("tea water",)))
    assert weighted(2, 2) == hybrid  # only the ratio matters
    leaning = weighted(1, 0.01).results
    assert leaning[0].file_id == dense.results[0].file_id  # mostly dense

    with pytest.raises(NotFound):
        retriever.search(beta, store, SearchOptions(("tea",)))


def test_the_vector_cache_follows_the_store(
    database: Database, clock: ManualClock, tenants: tuple[str, str], upload: Upload
) -> None:
    alpha, _ = tenants
    store, ids = build_store(database, clock, upload, alpha, DOCS[:2])
    retriever = Retriever(database, hashed_embed)
    query = SearchOptions(("tomatoes sun dawn",))
    before = {r.file_id for r in retriever.search(alpha, store, query, mode="dense").results}
    assert before == set(ids.values())
    repo = VectorStoreRepository(database, clock)
    garden = upload(alpha, DOCS[2].text.encode(), "garden.txt")
    repo.add_file(
        alpha,
        store,
        garden,
        chunking_strategy={
            "type": "static",
            "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 20},
        },
    )

    chunks = index_file(
        DOCS[2].text.encode(),
        "garden.txt",
        None,
        ChunkingStrategy("static", 100, 20),
        whitespace_tokenizer,
        hashed_embed,
    )
    repo.save_chunks(alpha, store, garden, chunks)
    after = retriever.search(alpha, store, query, mode="dense").results
    assert after[0].file_id == garden
    repo.delete_file(alpha, store, garden)
    gone = {r.file_id for r in retriever.search(alpha, store, query, mode="dense").results}
    assert garden not in gone and gone == before
    repo.delete_store(alpha, store)
    with pytest.raises(NotFound):
        retriever.search(alpha, store, query, mode="dense")
