"""The fleet under a live ``tokenmill serve``: cold starts from zero, and two replicas vs one.

    .venv/bin/python bench/fleet.py [--quick] [--out bench/results/fleet.json]

1. Cold start: the chat model's deployment idles to zero replicas; then one streamed request
   arrives and we time its first token (the fleet places, launches, health-checks and warms a
   replica meanwhile). Baseline in the same run: the same request's time to first token on
   the warm replica right after. Goal: cold ≤ 2 s for SmolLM2 here.
2. Scale-out: the same load (streaming clients with ~100-token prompts, 64 output tokens,
   end-of-generation banned) for a fixed time against the deployment pinned at one replica,
   then at two; each replica gets one llama.cpp thread, so two replicas use both cores.

Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.serving import start_platform

CHAT = "smollm2-135m-instruct"
EOG_BAN = {"0": -100, "1": -100, "2": -100, "4": -100}
PROMPT = "Tell me about rivers, mountains and lanterns. " * 9


def deployment(admin: httpx.Client) -> dict[str, Any]:
    found = [d for d in admin.get("/admin/v1/deployments").json()["data"] if d["model"] == CHAT]
    return dict(found[0])


def wait_replicas(admin: httpx.Client, state: str | None, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replicas = deployment(admin)["replicas"]
        if len([r for r in replicas if state is None or r["state"] == state]) == count:
            return
        time.sleep(0.2)
    raise RuntimeError(f"no {count} {state} replicas after {timeout} s: {deployment(admin)}")


async def first_token_seconds(session: aiohttp.ClientSession, base: str) -> float:
    body = {
        "model": CHAT,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 8,
        "stream": True,
        "logit_bias": EOG_BAN,
    }
    started = time.perf_counter()
    async with session.post(f"{base}/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.content:
            if not line.startswith(b"data: ") or line.strip() == b"data: [DONE]":
                continue
            choices = json.loads(line[6:]).get("choices") or [{}]
            if (choices[0].get("delta") or {}).get("content"):
                return time.perf_counter() - started
    raise RuntimeError("no token came back")


async def load(base: str, key: str, clients: int, seconds: float) -> dict[str, float]:
    headers = {"authorization": f"Bearer {key}"}
    tokens = 0
    stop_at = time.monotonic() + seconds

    async def client(session: aiohttp.ClientSession, index: int) -> None:
        nonlocal tokens
        await asyncio.sleep(index * 0.05)
        sent = 0
        while time.monotonic() < stop_at:
            sent += 1
            body = {  # every request its own prompt: no shared prefix to pin it to a replica
                "model": CHAT,
                "messages": [
                    {"role": "user", "content": f"Client {index}, request {sent}. {PROMPT}"}
                ],
                "max_tokens": 64,
                "logit_bias": EOG_BAN,
            }
            async with session.post(f"{base}/v1/chat/completions", json=body) as response:
                reply = await response.json()
            if time.monotonic() <= stop_at:
                tokens += reply["usage"]["completion_tokens"]

    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        await asyncio.gather(*(client(session, i) for i in range(clients)))
    elapsed = min(time.monotonic(), stop_at) - started
    return {"tokens_per_second": tokens / elapsed, "completion_tokens": tokens}


async def cold_starts(
    base: str, key: str, admin: httpx.Client, rounds: int
) -> list[dict[str, float]]:
    out = []
    headers = {"authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        for _ in range(rounds):
            wait_replicas(admin, None, 0, 120)  # idled back to zero
            cold = await first_token_seconds(session, base)
            warm = statistics.median([await first_token_seconds(session, base) for _ in range(3)])
            out.append({"cold_seconds": cold, "warm_seconds": warm})
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("bench/results/fleet.json"))
    args = parser.parse_args()
    rounds, seconds, clients = (2, 10.0, 8) if args.quick else (5, 30.0, 16)
    data_dir = Path(tempfile.mkdtemp(prefix="tokenmill-bench-fleet-"))
    process, base, key = start_platform(
        data_dir,
        [CHAT],
        env={
            "TOKENMILL_BUNDLED_MIN_REPLICAS": "0",
            "TOKENMILL_BUNDLED_IDLE_SECONDS": "3",
            "TOKENMILL_ENGINE_CONTEXT_TOKENS": "1024",
            "TOKENMILL_ENGINE_THREADS": "1",
        },
        startup_seconds=60,
    )
    try:
        with httpx.Client(
            base_url=base, headers={"authorization": f"Bearer {key}"}, timeout=60
        ) as admin:
            starts = asyncio.run(cold_starts(base, key, admin, rounds))
            dep = deployment(admin)["id"]
            throughput = {}
            for replicas in (1, 2):
                admin.patch(
                    f"/admin/v1/deployments/{dep}",
                    json={"min_replicas": replicas, "max_replicas": replicas},
                ).raise_for_status()
                wait_replicas(admin, "ready", replicas, 120)
                throughput[replicas] = asyncio.run(load(base, key, clients, seconds))
    finally:
        process.terminate()
        process.wait(30)
    cold = statistics.median(s["cold_seconds"] for s in starts)
    warm = statistics.median(s["warm_seconds"] for s in starts)
    ratio = throughput[2]["tokens_per_second"] / throughput[1]["tokens_per_second"]
    print(f"{'measure':<44} {'value':>10}")
    print(f"{'cold start to first token, median (s)':<44} {cold:>10.2f}")
    slowest = max(s["cold_seconds"] for s in starts)
    print(f"{f'  slowest of {rounds} rounds (s)':<44} {slowest:>10.2f}")
    print(f"{'warm first token, same request (s)':<44} {warm:>10.3f}")
    print(f"{'one replica, tokens/s':<44} {throughput[1]['tokens_per_second']:>10.1f}")
    print(f"{'two replicas, tokens/s':<44} {throughput[2]['tokens_per_second']:>10.1f}")
    print(f"{'two vs one':<44} {ratio:>10.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "cold_starts": starts,
                "cold_median_seconds": cold,
                "warm_median_seconds": warm,
                "throughput": throughput,
                "two_vs_one": ratio,
                "clients": clients,
                "seconds": seconds,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
