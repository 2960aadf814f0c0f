"""Grounded answers through an App: SciFact's claims answered over its abstracts.

    .venv/bin/python bench/grounded.py [--claims 100] [--docs 0] [--results 5]
                                       [--rewrite gemma-3-270m] [--reuse DATA_DIR]
                                       [--out bench/results/grounded.json]

Starts ``tokenmill serve`` with the bundled chat and embedding models, uploads SciFact's
abstracts (all 5,183 unless ``--docs``) into one vector store (as ``bench/retrieval.py``),
builds an App over it (instructions to judge the claim from the passages and cite them, the
search always run, with ``--rewrite`` a second model writing the search query), then asks
about each training claim with ``POST /v1/responses`` and the App's ``prompt``, results
included. For
each answer it checks: does it cite at least one passage (a ``file_citation``)? Do the cited
passages include an abstract judged relevant to the claim? Is a relevant abstract among the
search results the model was given (retrieval's ceiling for the second figure)? Prints a
table, writes JSON. The bundled model is small: the figures judge citations, not prose.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import openai

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.retrieval import EMBEDDING_MODEL, build_store, load
from bench.serving import start_platform

CHAT_MODEL = "smollm2-135m-instruct"
INSTRUCTIONS = (
    "Decide whether the passages support or contradict the claim. Answer in one or two "
    "sentences and cite the passages you use as [1], [2]."
)


def build_app(base: str, key: str, store_id: str, results: int, rewrite: str | None) -> str:
    config = {
        "model": CHAT_MODEL,
        "instructions": INSTRUCTIONS,
        "vector_store_ids": [store_id],
        "max_num_results": results,
        "search": "always",
        "max_output_tokens": 96,
        "temperature": 0,
        "steps": {"rewrite_model": rewrite},
    }
    made = httpx.post(
        f"{base}/v1/apps", json={"name": "SciFact", "config": config},
        headers={"authorization": f"Bearer {key}"}, timeout=60,
    )  # fmt: skip
    made.raise_for_status()
    return str(made.json()["id"])


def ask(client: openai.OpenAI, app_id: str, claim: str) -> dict[str, Any]:
    started = time.monotonic()
    response = client.responses.create(
        model=CHAT_MODEL,
        input=f"Claim: {claim}",
        prompt={"id": app_id},
        include=["file_search_call.results"],
    )
    seconds = time.monotonic() - started
    found = [
        result.file_id
        for item in response.output
        if item.type == "file_search_call"
        for result in item.results or []
    ]
    cited = [
        annotation.file_id
        for item in response.output
        if item.type == "message"
        for part in item.content
        if part.type == "output_text"
        for annotation in part.annotations
        if annotation.type == "file_citation"
    ]
    usage = response.usage
    return {
        "status": response.status,
        "found": found,
        "cited": cited,
        "seconds": seconds,
        "tokens": usage.total_tokens if usage is not None else 0,
    }


def score(answers: list[dict[str, Any]], relevant_files: list[set[str]]) -> dict[str, Any]:
    n = len(answers)
    citing = sum(1 for a in answers if a["cited"])
    relevant_cited = sum(
        1 for a, rel in zip(answers, relevant_files, strict=True) if set(a["cited"]) & rel
    )
    relevant_found = sum(
        1 for a, rel in zip(answers, relevant_files, strict=True) if set(a["found"]) & rel
    )
    seconds = sorted(a["seconds"] for a in answers)
    return {
        "claims": n,
        "cite_at_least_one": citing / n,
        "cite_a_relevant_abstract": relevant_cited / n,
        "relevant_among_results": relevant_found / n,
        "completed": sum(1 for a in answers if a["status"] == "completed") / n,
        "p50_seconds": statistics.median(seconds),
        "p95_seconds": seconds[int(0.95 * (n - 1))],
        "mean_tokens": statistics.fmean(a["tokens"] for a in answers),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--claims", type=int, default=100, help="first N judged claims")
    parser.add_argument("--docs", type=int, default=0, help="first N abstracts (0: all)")
    parser.add_argument("--results", type=int, default=5, help="file_search max_num_results")
    parser.add_argument("--rewrite", help="a model that rewrites each claim into the query")
    parser.add_argument(
        "--reuse", type=Path, help="the data dir of an earlier run: ask its store again"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/grounded.json"))
    args = parser.parse_args()
    corpus, queries, qrels = load()
    claims = dict(list(queries.items())[: args.claims])
    if args.docs:  # keep every judged abstract of the chosen claims, then fill up
        wanted = {d for q in claims for d in qrels[q]}
        rest = [d for d in corpus if d not in wanted][: max(args.docs - len(wanted), 0)]
        corpus = {d: corpus[d] for d in corpus if d in wanted or d in set(rest)}
    data_dir = args.reuse or Path(tempfile.mkdtemp(prefix="tm-grounded-"))
    models = [CHAT_MODEL, EMBEDDING_MODEL, *([args.rewrite] if args.rewrite else [])]
    process, base, key = start_platform(data_dir, models)
    try:
        key = key or _new_key(data_dir)
        client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=600)
        if args.reuse:
            store_id, indexing = next(s.id for s in client.vector_stores.list()), {}
        else:
            store_id, indexing = build_store(client, corpus)
        names = {f.id: f.filename.removesuffix(".txt") for f in _files(client)}
        app_id = build_app(base, key, store_id, args.results, args.rewrite)
        answers = []
        for n, claim in enumerate(claims.values(), 1):
            answers.append(ask(client, app_id, claim))
            if n % 20 == 0:
                print(f"{n}/{len(claims)} claims answered", flush=True)
    finally:
        process.terminate()
        process.wait(30)
    for answer in answers:
        answer["found"] = [names.get(f, f) for f in answer["found"]]
        answer["cited"] = [names.get(f, f) for f in answer["cited"]]
    relevant = [set(qrels[q]) for q in claims]
    figures = score(answers, relevant)
    report = {
        "docs": len(corpus),
        "results": args.results,
        "rewrite": args.rewrite,
        "indexing": indexing,
        **figures,
        "answers": [{"claim": q, **a} for q, a in zip(claims, answers, strict=True)],
    }
    print(f"SciFact through an App: {len(corpus)} abstracts, {len(claims)} claims, "
          f"rewrite {args.rewrite or 'none'}")  # fmt: skip
    for name in ("cite_at_least_one", "cite_a_relevant_abstract", "relevant_among_results",
                 "completed"):  # fmt: skip
        print(f"{name:<28}{figures[name]:>8.1%}")
    print(f"{'p50 / p95 seconds':<28}{figures['p50_seconds']:>8.2f} / {figures['p95_seconds']:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


def _new_key(data_dir: Path) -> str:
    """A platform-admin key for a data dir whose first key was shown to an earlier run."""
    env = {**os.environ, "TOKENMILL_DATA_DIR": str(data_dir),
           "TOKENMILL_CONFIG": str(data_dir / "none.toml")}  # fmt: skip
    command = [sys.executable, "-m", "tokenmill.cli.main", "keys", "create", "--name",
               f"bench-{time.time_ns()}", "--role", "platform_admin"]  # fmt: skip
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return next(word for word in out.split() if word.startswith("tm-"))


def _files(client: openai.OpenAI) -> list[Any]:
    return list(client.files.list(purpose="assistants"))  # every page


if __name__ == "__main__":
    main()
