"""Batch work on spare capacity: a large batch beside interactive traffic on one replica.

    .venv/bin/python bench/batch.py [--lines 2000] [--out bench/results/batch.json]

Starts ``tokenmill serve`` with the bundled chat model (exactly one replica; batches send up to 32
lines at once), then, through the public API (streaming chat, prompts of about 60 tokens, 32
output tokens with end-of-generation banned, a different prompt for every request):
1. capacity: requests/s of 32 closed-loop clients;
2. interactive alone: Poisson arrivals at 0.3x capacity for 60 s: p99 time to first token, and
   how busy the replica was (its ``tokenmill:engine_busy_seconds_total`` over wall time);
3. the same interactive load while a batch of ``--lines`` chat requests (16 output tokens each)
   runs from start to end: interactive p99 time to first token against (2), the replica's busy
   share, the batch's duration, and its output checked to hold every custom_id exactly once.
Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import re
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import openai
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.engine import Stream, prompt, stream_chat
from bench.serving import start_platform

CHAT = "smollm2-135m-instruct"
EOG_BAN = {"0": -100, "1": -100, "2": -100, "4": -100}
OUTPUT_TOKENS = 32
LINE_TOKENS = 16
PROMPT_WORDS = 30


class Interactive:
    def __init__(self, base: str, key: str) -> None:
        self.url = base
        self.headers = {"authorization": f"Bearer {key}"}
        self.streams: list[Stream] = []
        self.counter = 0

    async def one(self, session: aiohttp.ClientSession) -> None:
        self.counter += 1
        content = prompt(self.counter, PROMPT_WORDS)
        stream = await stream_chat(
            session, self.url, content, OUTPUT_TOKENS, self.headers, model=CHAT
        )
        self.streams.append(stream)

    async def poisson(self, rate: float, until: float) -> None:
        rng = random.Random(7)
        async with _session() as session:
            tasks = []
            while (now := time.perf_counter()) < until:
                tasks.append(asyncio.create_task(self.one(session)))
                await asyncio.sleep(min(rng.expovariate(rate), until - now))
            await asyncio.gather(*tasks)

    async def closed(self, clients: int, until: float) -> None:
        async def client(index: int, session: aiohttp.ClientSession) -> None:
            await asyncio.sleep(index * 0.05)
            while time.perf_counter() < until:
                await self.one(session)

        async with _session() as session:
            await asyncio.gather(*(client(i, session) for i in range(clients)))

    def ttft_p99(self, since: float = 0.0) -> float:
        values = sorted(s.ttft for s in self.streams if s.started >= since)
        return values[min(len(values) - 1, int(len(values) * 0.99))]


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=3600)
    )


class Replica:
    """The chat replica's busy seconds, read from its own metrics."""

    def __init__(self, admin: httpx.Client) -> None:
        replicas = admin.get("/admin/v1/overview").json()["replicas"]
        self.url = next(r["url"] for r in replicas if r["model"].startswith(CHAT))

    def busy_seconds(self) -> float:
        text = httpx.get(f"{self.url}/metrics").text
        found = re.search(r"^tokenmill:engine_busy_seconds_total (\S+)$", text, re.M)
        assert found is not None
        return float(found.group(1))


def batch_file(lines: int) -> bytes:
    out = io.BytesIO()
    for i in range(lines):
        body = {
            "model": CHAT,
            "messages": [{"role": "user", "content": prompt(100_000 + i, PROMPT_WORDS)}],
            "max_tokens": LINE_TOKENS,
            "temperature": 0,
            "logit_bias": EOG_BAN,
        }
        line = {"custom_id": f"line-{i}", "method": "POST", "url": "/v1/chat/completions"}
        out.write(orjson.dumps({**line, "body": body}) + b"\n")
    return out.getvalue()


def measure(replica: Replica, run: Coroutine[Any, Any, Any]) -> dict:
    """Runs ``run``; returns wall seconds and the replica's busy share meanwhile."""
    busy, began = replica.busy_seconds(), time.perf_counter()
    asyncio.run(run)
    wall = time.perf_counter() - began
    return {"seconds": wall, "busy_share": (replica.busy_seconds() - busy) / wall}


def run_batch(client: openai.OpenAI, lines: int, interactive: Interactive, rate: float) -> dict:
    uploaded = client.files.create(file=("batch.jsonl", batch_file(lines)), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    began = time.perf_counter()

    async def alongside() -> None:
        load = asyncio.create_task(interactive.poisson(rate, float("inf")))
        while True:
            await asyncio.sleep(1)
            status = await asyncio.to_thread(client.batches.retrieve, batch.id)
            if status.status in ("completed", "failed", "cancelled", "expired"):
                break
        load.cancel()
        await asyncio.gather(load, return_exceptions=True)

    asyncio.run(alongside())
    done = client.batches.retrieve(batch.id)
    seconds = time.perf_counter() - began
    ids: list[str] = []
    if done.output_file_id:
        text = client.files.content(done.output_file_id).text
        ids = [json.loads(line)["custom_id"] for line in text.splitlines() if line]
    return {
        "status": done.status,
        "seconds": seconds,
        "completed": done.request_counts.completed if done.request_counts else None,
        "failed": done.request_counts.failed if done.request_counts else None,
        "every_line_once": sorted(ids) == sorted(f"line-{i}" for i in range(lines)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path("bench/results/batch.json"))
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="tm-bench-batch-"))
    env = {
        "TOKENMILL_BATCH_CONCURRENCY": "32",
        "TOKENMILL_BUNDLED_MIN_REPLICAS": "1",
        "TOKENMILL_BUNDLED_MAX_REPLICAS": "1",
    }
    process, base, key = start_platform(data_dir, [CHAT], env=env)
    report: dict = {"benchmark": "batch", "lines": args.lines}
    try:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=600)
        with httpx.Client(base_url=base, headers={"authorization": f"Bearer {key}"}) as admin:
            probe = Interactive(base, key)
            asyncio.run(probe.closed(4, time.perf_counter() + 5))  # the replica is up and warm
            replica = Replica(admin)
            cap = Interactive(base, key)
            began = time.perf_counter()
            asyncio.run(cap.closed(32, began + 30))
            ended = [s for s in cap.streams if s.started >= began + 10]
            rate = len(ended) / 20
            report["capacity_requests_per_second"] = rate
            alone = Interactive(base, key)
            report["alone"] = measure(replica, alone.poisson(0.3 * rate, time.perf_counter() + 60))
            report["alone"]["ttft_p99_s"] = alone.ttft_p99()
            report["alone"]["requests"] = len(alone.streams)
            print(f"interactive alone: {json.dumps(report['alone'])}", flush=True)
            beside = Interactive(base, key)
            busy, began = replica.busy_seconds(), time.perf_counter()
            report["batch"] = run_batch(client, args.lines, beside, 0.3 * rate)
            wall = time.perf_counter() - began
            report["with_batch"] = {
                "seconds": wall,
                "busy_share": (replica.busy_seconds() - busy) / wall,
                "ttft_p99_s": beside.ttft_p99(),
                "requests": len(beside.streams),
            }
    finally:
        process.terminate()
        process.wait(30)
    alone_row, with_row, batch = report["alone"], report["with_batch"], report["batch"]
    print(f"capacity {report['capacity_requests_per_second']:.2f} requests/s; interactive at 0.3x")
    print(f"{'phase':<12} {'seconds':>8} {'busy':>6} {'ttft p99':>9} {'x alone':>8}")
    for name, row in (("alone", alone_row), ("with batch", with_row)):
        print(
            f"{name:<12} {row['seconds']:>8.0f} {row['busy_share']:>6.1%} "
            f"{row['ttft_p99_s']:>8.2f}s {row['ttft_p99_s'] / alone_row['ttft_p99_s']:>8.2f}"
        )
    print(
        f"batch of {args.lines}: {batch['status']} in {batch['seconds']:.0f} s, "
        f"{batch['completed']} completed, {batch['failed']} failed, "
        f"every line exactly once: {batch['every_line_once']}"
    )
    report["goals"] = {
        "busy_share_with_batch": with_row["busy_share"],
        "ttft_p99_with_batch_over_alone": with_row["ttft_p99_s"] / alone_row["ttft_p99_s"],
        "batch_every_line_once": batch["every_line_once"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
