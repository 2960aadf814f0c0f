"""Retrieval quality of vector stores on BEIR's SciFact, through the public API.

    .venv/bin/python bench/retrieval.py [--queries 809] [--database-url URL]
                                        [--out bench/results/retrieval.json]

Starts ``tokenmill serve`` (SQLite in a temporary directory, or the PostgreSQL at
``--database-url``) with the bundled embedding model, uploads SciFact's 5,183 abstracts as
files with the official ``openai`` client, adds them to one vector store in file batches
(timing the indexing), then searches every training claim three ways in the same run:
hybrid (``hybrid_search`` weights 1 and 1), keyword alone (embedding weight 0) and dense
alone (text weight 0). Chunks are folded into documents (a document ranks at its best chunk)
and scored with nDCG@10 and recall@10 against the judgements. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import openai

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.serving import start_platform

DATA = Path(
    os.environ.get("TOKENMILL_SCIFACT_DIR", Path(__file__).parents[2] / "shared/data/scifact")
)
METHODS = {"hybrid": (1.0, 1.0), "keyword": (0.0, 1.0), "dense": (1.0, 0.0)}
BATCH_FILES = 500
EMBEDDING_MODEL = "all-minilm-l6-v2"


def load() -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]:
    corpus = {}
    for line in (DATA / "corpus.jsonl").read_text().splitlines():
        doc = json.loads(line)
        corpus[doc["_id"]] = f"{doc['title']}\n\n{doc['text']}"
    queries = {}
    for line in (DATA / "queries_train.jsonl").read_text().splitlines():
        query = json.loads(line)
        queries[query["_id"]] = query["text"]
    qrels: dict[str, dict[str, int]] = {}
    for line in (DATA / "qrels_train.tsv").read_text().splitlines()[1:]:
        query_id, doc_id, score = line.split("\t")
        qrels.setdefault(query_id, {})[doc_id] = int(score)
    return corpus, {q: t for q, t in queries.items() if q in qrels}, qrels


def ndcg_at_10(ranked: list[str], relevant: dict[str, int]) -> float:
    gains = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted(relevant.values(), reverse=True)[:10]
    best = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return gains / best if best else 0.0


def build_store(client: openai.OpenAI, corpus: dict[str, str]) -> tuple[str, dict[str, Any]]:
    client.embeddings.create(model=EMBEDDING_MODEL, input="warm")  # the replica is up
    started = time.monotonic()
    file_ids = []
    for doc_id, text in corpus.items():
        uploaded = client.files.create(
            file=(f"{doc_id}.txt", io.BytesIO(text.encode())), purpose="assistants"
        )
        file_ids.append(uploaded.id)
    uploaded_at = time.monotonic()
    store = client.vector_stores.create(name="scifact")
    for start in range(0, len(file_ids), BATCH_FILES):
        client.vector_stores.file_batches.create_and_poll(
            vector_store_id=store.id, file_ids=file_ids[start : start + BATCH_FILES]
        )
    indexed_at = time.monotonic()
    found = client.vector_stores.retrieve(store.id)
    return store.id, {
        "files": len(file_ids),
        "upload_seconds": round(uploaded_at - started, 1),
        "index_seconds": round(indexed_at - uploaded_at, 1),
        "file_counts": found.file_counts.model_dump(),
        "usage_bytes": found.usage_bytes,
    }


def evaluate(
    client: openai.OpenAI, store_id: str, queries: dict[str, str], qrels: dict[str, dict[str, int]]
) -> dict[str, dict[str, float]]:
    scores: dict[str, dict[str, list[float]]] = {
        m: {"ndcg": [], "recall": [], "ms": []} for m in METHODS
    }
    for query_id, text in queries.items():
        relevant = qrels[query_id]
        for method, (embedding, keyword) in METHODS.items():
            started = time.perf_counter()
            page = client.vector_stores.search(
                store_id,
                query=text,
                max_num_results=50,
                ranking_options={
                    "hybrid_search": {"embedding_weight": embedding, "text_weight": keyword}
                },  # type: ignore[typeddict-unknown-key]
            )
            elapsed = (time.perf_counter() - started) * 1000
            ranked: list[str] = []
            for result in page.data:
                doc_id = result.filename.removesuffix(".txt")
                if doc_id not in ranked:
                    ranked.append(doc_id)
            scores[method]["ndcg"].append(ndcg_at_10(ranked, relevant))
            scores[method]["recall"].append(len(set(ranked[:10]) & set(relevant)) / len(relevant))
            scores[method]["ms"].append(elapsed)
    out = {}
    for method, found in scores.items():
        ms = sorted(found["ms"])
        out[method] = {
            "ndcg_at_10": sum(found["ndcg"]) / len(found["ndcg"]),
            "recall_at_10": sum(found["recall"]) / len(found["recall"]),
            "p50_ms": ms[len(ms) // 2],
            "p95_ms": ms[int(len(ms) * 0.95)],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=0, help="first N claims (0: all 809)")
    parser.add_argument(
        "--docs", type=int, default=0, help="first N abstracts (0: all), a smoke run"
    )
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--out", type=Path, default=Path("bench/results/retrieval.json"))
    args = parser.parse_args()
    corpus, queries, qrels = load()
    if args.docs:
        corpus = dict(list(corpus.items())[: args.docs])
    if args.queries:
        queries = dict(list(queries.items())[: args.queries])
    data_dir = Path(tempfile.mkdtemp(prefix="tm-retrieval-"))
    process, base, key = start_platform(data_dir, [EMBEDDING_MODEL], database_url=args.database_url)
    try:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=600)
        store_id, indexing = build_store(client, corpus)
        results = evaluate(client, store_id, queries, qrels)
    finally:
        process.terminate()
        process.wait(30)
    report = {
        "database": "postgresql" if args.database_url else "sqlite",
        "docs": len(corpus),
        "queries": len(queries),
        "indexing": indexing,
        "methods": results,
    }
    where = report["database"]
    print(f"SciFact through the API on {where}: {len(corpus)} abstracts, {len(queries)} claims")
    print(f"upload {indexing['upload_seconds']} s, indexing {indexing['index_seconds']} s")
    print(f"{'method':<10}{'nDCG@10':>10}{'recall@10':>11}{'p50 ms':>9}{'p95 ms':>9}")
    for method, found in results.items():
        print(
            f"{method:<10}{found['ndcg_at_10']:>10.3f}{found['recall_at_10']:>11.3f}"
            f"{found['p50_ms']:>9.1f}{found['p95_ms']:>9.1f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
