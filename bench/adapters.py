"""Multi-LoRA serving: one replica, its base model alone against many adapters at once.

    .venv/bin/python bench/adapters.py [--quick] [--out bench/results/adapters.json]

One replica of the bundled SmolLM2 with ``--adapters-dir`` holding 8 random LoRA adapters
(``--rank``, default 16 as our trainer makes them) of every attention and MLP weight (written
once, with ``tests/engine/lora.py``).
16 streaming clients, each sending one request after another (prompts of about 70 tokens,
128 output tokens, end-of-generation banned): first all on the base model, then spread over
the 8 adapters, 2 clients each (header ``x-tokenmill-adapter``). The two phases alternate for
``--rounds`` rounds on the same replica, so a machine whose load changes affects both alike;
tokens/s counts tokens that arrived in a window after every client started (streams still
open at its end are cancelled). Prints a table, the ratio of the medians (adapters over
base), and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.engine import Engine, Stream, prompt, stream_chat
from tests.engine.lora import write_random_lora
from tokenmill.catalog.bundled import bundled_model
from tokenmill.protocol.tenancy import ADAPTER_HEADER

CLIENTS = 16
ADAPTERS = 8
MAX_TOKENS = 128


async def phase(url: str, adapters: int, window_seconds: float, stagger_seconds: float) -> dict:
    """``CLIENTS`` clients, client ``i`` on adapter ``i % adapters`` (0: all on the base); the
    streams still open when the window closes are cancelled (the replica drops them)."""
    begin = time.perf_counter()
    opens = begin + stagger_seconds * CLIENTS + 2.0
    closes = opens + window_seconds
    streams: list[Stream] = []

    async def client(index: int, session: aiohttp.ClientSession) -> None:
        headers = {ADAPTER_HEADER: f"a{index % adapters}"} if adapters else None
        await asyncio.sleep(index * stagger_seconds)
        n = 0
        while True:
            content = prompt(index * 1000 + n, words=40)
            streams.append(into := Stream(started=time.perf_counter()))
            await stream_chat(session, url, content, MAX_TOKENS, headers, into=into)
            n += 1

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600)) as session:
        clients = [asyncio.create_task(client(i, session)) for i in range(CLIENTS)]
        await asyncio.sleep(closes - time.perf_counter())
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
    tokens = sum(1 for s in streams for t in s.token_times if opens <= t < closes)
    gaps = sorted(g for s in streams for g in s.gaps())
    return {
        "adapters": adapters,
        "requests": len(streams),
        "tokens_in_window": tokens,
        "tokens_per_second": tokens / window_seconds,
        "tpot_p50_s": statistics.median(gaps) if gaps else None,
        "tpot_p99_s": gaps[int(len(gaps) * 0.99)] if gaps else None,
    }


async def warm_up(url: str) -> None:
    """Load every adapter once, so the first measured phase does not pay for it."""
    async with aiohttp.ClientSession() as session:
        for i in range(ADAPTERS):
            await stream_chat(session, url, "hello", 2, {ADAPTER_HEADER: f"a{i}"})


def scrape(url: str, names: tuple[str, ...]) -> dict[str, float]:
    import urllib.request

    text = urllib.request.urlopen(f"{url}/metrics").read().decode()
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in names:
            values[name] = float(value)
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/adapters.json"))
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--rank", type=int, default=16, help="LoRA rank (16: what tokenmill's trainer makes)"
    )
    parser.add_argument("--quick", action="store_true", help="shorter measuring windows")
    parser.add_argument("--engine-arg", action="append", default=[], help="passed to the replica")
    args = parser.parse_args()
    model = bundled_model("smollm2-135m-instruct").path()
    window = 12.0 if args.quick else 30.0
    logs = Path(os.environ.get("TMPDIR", "/tmp"))
    report: dict = {
        "benchmark": "adapters",
        "threads": args.threads,
        "clients": CLIENTS,
        "rank": args.rank,
    }
    report["load_average_before"] = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-adapters-") as directory:
        for i in range(ADAPTERS):
            write_random_lora(Path(directory) / f"a{i}.gguf", model, seed=i, rank=args.rank)
        command = [
            sys.executable, "-m", "tokenmill.engine", "--model", str(model), "--served-name",
            "bench", "--threads", str(args.threads), "--log-level", "warning",
            "--adapters-dir", directory, *args.engine_arg,
        ]  # fmt: skip
        with Engine(command, logs / "bench-adapters.log") as url:
            asyncio.run(warm_up(url))
            rows = []
            for _ in range(args.rounds):
                for adapters in (0, ADAPTERS):
                    rows.append(asyncio.run(phase(url, adapters, window, 0.25)))
                    asyncio.run(asyncio.sleep(2.0))  # cancelled streams leave the replica
                    print(row_text(rows[-1]), flush=True)
            report["adapter_metrics"] = scrape(
                url, ("tokenmill:lora_adapter_loads_total", "tokenmill:lora_adapter_switches_total")
            )
    report["rows"] = rows
    base = statistics.median(r["tokens_per_second"] for r in rows if not r["adapters"])
    tuned = statistics.median(r["tokens_per_second"] for r in rows if r["adapters"])
    report["base_tokens_per_second"] = base
    report["adapters_tokens_per_second"] = tuned
    report["ratio"] = tuned / base
    report["load_average_after"] = os.getloadavg()
    print(
        f"\nbase {base:.1f} tok/s, {ADAPTERS} adapters {tuned:.1f} tok/s: ratio {tuned / base:.2f}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


def row_text(row: dict) -> str:
    who = "base model" if not row["adapters"] else f"{row['adapters']} adapters"
    p50 = row["tpot_p50_s"] or 0.0
    p99 = row["tpot_p99_s"] or 0.0
    return (
        f"{who:>12}  {row['tokens_per_second']:7.1f} tok/s  {row['requests']:4d} requests  "
        f"TPOT p50 {1000 * p50:6.1f} ms  p99 {1000 * p99:7.1f} ms"
    )


if __name__ == "__main__":
    main()
