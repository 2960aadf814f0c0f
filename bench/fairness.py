"""Fair share between tenants on one replica: virtual token counters against FCFS.

    .venv/bin/python bench/fairness.py [--quick] [--out bench/results/fairness.json]

One run, the bundled model, a fresh built-in replica for each part, requests sent straight to
it with the tenancy headers the gateway adds (streaming chat, prompts of about 60 tokens, 32
output tokens with end-of-generation banned, a different prompt for every request):
1. capacity: requests/s the replica completes under A's flood alone (5x what 32 closed-loop
   clients get through), so B's share is measured where the client's load is the same;
2. B alone: tenant B's open-loop Poisson arrivals at 0.5x capacity, for its time to first token;
3. A floods (at most 2,000 of its requests outstanding) while B sends at 0.5x capacity,
   under ``--scheduling fcfs`` and then ``fair``: per 30 s window the service each tenant got
   (prompt tokens + 2 x output tokens, as the counters charge) and Jain's index over the two,
   B's p99 time to first token, and output tokens/s in all;
4. four backlogged tenants with weights 1:2:3:4 (24 closed-loop clients each), fair: each one's
   share of the service against its weight's share.
Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.engine import Engine, Stream, prompt, stream_chat
from tokenmill.catalog.bundled import bundled_model

OUTPUT_TOKENS = 32
PROMPT_WORDS = 30
WINDOW_SECONDS = 30.0
CAP = 2000  # A's requests outstanding at most: a flood, not a leak of sockets


@dataclass
class Done:
    """A request, answered or still waiting when its part ended (cancelled)."""

    tenant: str
    stream: Stream
    ended: float

    @property
    def token_times(self) -> list[float]:
        return self.stream.token_times

    @property
    def ttft(self) -> float:
        """Its time to first token; for one that never had a token, at least its wait."""
        return self.stream.ttft if self.token_times else self.ended - self.stream.started


class Load:
    """Requests of several tenants against one replica, each kept with its token times."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.done: list[Done] = []
        self.counter = 0
        self.outstanding: dict[str, int] = {}

    async def one(self, session: aiohttp.ClientSession, tenant: str, weight: int = 1) -> None:
        self.counter += 1
        headers = {"x-tokenmill-tenant": tenant, "x-tokenmill-weight": str(weight)}
        self.outstanding[tenant] = self.outstanding.get(tenant, 0) + 1
        stream = Stream(started=time.perf_counter())
        content = prompt(self.counter, PROMPT_WORDS)
        try:
            await stream_chat(session, self.url, content, OUTPUT_TOKENS, headers, into=stream)
        finally:
            self.outstanding[tenant] -= 1
            self.done.append(Done(tenant, stream, time.perf_counter()))

    async def poisson(
        self,
        session: aiohttp.ClientSession,
        tenant: str,
        rate: float,
        until: float,
        cap: int = 10**9,
        seed: int = 0,
    ) -> None:
        """Open loop: arrivals at ``rate`` per second, whatever is answered; at most ``cap``
        outstanding (arrivals beyond it are skipped)."""
        rng = random.Random(seed)
        tasks: list[asyncio.Task[None]] = []
        while (now := time.perf_counter()) < until:
            if self.outstanding.get(tenant, 0) < cap:
                tasks.append(asyncio.create_task(self.one(session, tenant)))
            await asyncio.sleep(min(rng.expovariate(rate), until - now))
        for task in tasks:
            task.cancel()  # still running at the end: the replica is told to stop
        await asyncio.gather(*tasks, return_exceptions=True)

    async def closed(
        self, session: aiohttp.ClientSession, tenant: str, clients: int, until: float, weight: int
    ) -> None:
        async def client(index: int) -> None:
            await asyncio.sleep(index * 0.05)
            while time.perf_counter() < until:
                await self.one(session, tenant, weight)

        tasks = [asyncio.create_task(client(i)) for i in range(clients)]
        await asyncio.sleep(max(0.0, until - time.perf_counter()))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def service(self, tenant: str, start: float, end: float) -> float:
        """Prompt tokens (at the first token) plus 2 per output token, within [start, end).
        A request cut off before its usage arrived counts the typical prompt."""
        typical = statistics.median(
            d.stream.prompt_tokens for d in self.done if d.stream.prompt_tokens
        )
        total = 0.0
        for done in self.done:
            if done.tenant != tenant or not done.token_times:
                continue
            if start <= done.token_times[0] < end:
                total += done.stream.prompt_tokens or typical
            total += 2 * sum(1 for t in done.token_times if start <= t < end)
        return total

    def tokens(self, start: float, end: float) -> int:
        return sum(1 for d in self.done for t in d.token_times if start <= t < end)

    def ttfts(self, tenant: str) -> list[float]:
        return sorted(d.ttft for d in self.done if d.tenant == tenant)


def session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=3600)
    )


def p99(values: list[float]) -> float:
    return values[min(len(values) - 1, int(len(values) * 0.99))] if values else float("nan")


def jain(values: list[float]) -> float:
    square = sum(v * v for v in values)
    return sum(values) ** 2 / (len(values) * square) if square else float("nan")


async def capacity(url: str, seconds: float) -> tuple[float, float]:
    """The flood's rate (5x what 32 closed-loop clients get through) and the requests/s the
    replica completes under that flood alone, after its first third: what B's share is of."""
    probe = Load(url)
    begin = time.perf_counter()
    async with session() as s:
        await probe.closed(s, "solo", 32, begin + 10, 1)
    flood_rate = 5 * probe.tokens(begin, begin + 10) / OUTPUT_TOKENS / 10
    load = Load(url)
    begin = time.perf_counter()
    async with session() as s:
        await load.poisson(s, "a", flood_rate, begin + seconds, cap=CAP, seed=3)
    warm = begin + seconds / 3
    done = [d for d in load.done if len(d.token_times) >= OUTPUT_TOKENS]
    return flood_rate, sum(1 for d in done if d.token_times[-1] >= warm) / (seconds * 2 / 3)


async def alone(url: str, rate: float, seconds: float) -> dict:
    load = Load(url)
    async with session() as s:
        await load.poisson(s, "b", rate, time.perf_counter() + seconds, seed=2)
    return {"b_requests": len(load.ttfts("b")), "b_ttft_p99_s": p99(load.ttfts("b"))}


async def flood(url: str, flood_rate: float, rate: float, windows: int) -> dict:
    load = Load(url)
    begin = time.perf_counter()
    until = begin + windows * WINDOW_SECONDS
    async with session() as s:
        await asyncio.gather(
            load.poisson(s, "a", flood_rate, until, cap=CAP, seed=1),
            load.poisson(s, "b", 0.5 * rate, until, seed=2),
        )
    rows = []
    for k in range(windows):
        start, end = begin + k * WINDOW_SECONDS, begin + (k + 1) * WINDOW_SECONDS
        a, b = load.service("a", start, end), load.service("b", start, end)
        rows.append({"window": k, "service_a": a, "service_b": b, "jain": jain([a, b])})
    return {
        "windows": rows,
        "jain_mean": sum(r["jain"] for r in rows) / len(rows),
        "b_requests": len(load.ttfts("b")),
        "b_ttft_p99_s": p99(load.ttfts("b")),
        "tokens_per_second": load.tokens(begin, until) / (until - begin),
    }


async def weighted(url: str, seconds: float) -> dict:
    weights = {"w1": 1, "w2": 2, "w3": 3, "w4": 4}
    load = Load(url)
    begin = time.perf_counter()
    until = begin + seconds
    async with session() as s:
        await asyncio.gather(
            *(load.closed(s, tenant, 24, until, weight) for tenant, weight in weights.items())
        )
    warm = begin + min(10.0, seconds / 3)
    served = {tenant: load.service(tenant, warm, until) for tenant in weights}
    total = sum(served.values())
    return {
        tenant: {
            "weight": weight,
            "share": served[tenant] / total,
            "goal_share": weight / sum(weights.values()),
            "off_by": served[tenant] / total / (weight / sum(weights.values())) - 1,
        }
        for tenant, weight in weights.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/fairness.json"))
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="one window per policy")
    parser.add_argument(
        "--engine-args", default="", help="more flags for every replica, e.g. '--max-running 16'"
    )
    args = parser.parse_args()
    model = str(bundled_model("smollm2-135m-instruct").path())
    log = Path(os.environ.get("TMPDIR", "/tmp")) / "bench-fairness.log"
    windows = 1 if args.quick else 2

    def replica(scheduling: str) -> Engine:
        return Engine(
            [sys.executable, "-m", "tokenmill.engine", "--model", model, "--served-name",
             "bench", "--threads", str(args.threads), "--log-level", "warning",
             "--scheduling", scheduling, *args.engine_args.split()],
            log,
        )  # fmt: skip

    report: dict = {"benchmark": "fairness", "threads": args.threads, "model": model}
    with replica("fair") as url:
        flood_rate, rate = asyncio.run(capacity(url, 20.0 if args.quick else 30.0))
    report["capacity_requests_per_second"] = rate
    report["flood_requests_per_second"] = flood_rate
    with replica("fair") as url:
        report["b_alone"] = asyncio.run(alone(url, 0.5 * rate, 20.0 if args.quick else 40.0))
    for scheduling in ("fcfs", "fair"):
        with replica(scheduling) as url:
            report[scheduling] = asyncio.run(flood(url, flood_rate, rate, windows))
    with replica("fair") as url:
        report["weights"] = asyncio.run(weighted(url, 20.0 if args.quick else 40.0))

    fcfs, fair, b_alone = report["fcfs"], report["fair"], report["b_alone"]["b_ttft_p99_s"]
    print(
        f"capacity under the flood {rate:.2f} requests/s; A floods at {flood_rate:.2f}; "
        f"B alone: p99 time to first token {b_alone:.2f} s"
    )
    print(f"{'policy':<6} {'window':>6} {'service A':>10} {'service B':>10} {'Jain':>6}")
    for name in ("fcfs", "fair"):
        for row in report[name]["windows"]:
            print(
                f"{name:<6} {row['window']:>6} {row['service_a']:>10.0f} "
                f"{row['service_b']:>10.0f} {row['jain']:>6.3f}"
            )
    print(f"{'policy':<6} {'B ttft p99':>10} {'x alone':>8} {'tok/s':>7} {'x fcfs':>7}")
    for name in ("fcfs", "fair"):
        row = report[name]
        print(
            f"{name:<6} {row['b_ttft_p99_s']:>9.2f}s {row['b_ttft_p99_s'] / b_alone:>8.2f} "
            f"{row['tokens_per_second']:>7.1f} "
            f"{row['tokens_per_second'] / fcfs['tokens_per_second']:>7.2f}"
        )
    print(f"{'tenant':<6} {'weight':>6} {'share':>6} {'goal':>6} {'off by':>7}")
    for tenant, row in report["weights"].items():
        print(
            f"{tenant:<6} {row['weight']:>6} {row['share']:>6.3f} {row['goal_share']:>6.3f} "
            f"{row['off_by']:>+7.1%}"
        )
    report["goals"] = {
        "fair_jain_min": min(r["jain"] for r in fair["windows"]),
        "fcfs_jain_mean": fcfs["jain_mean"],
        "fair_b_ttft_p99_over_alone": fair["b_ttft_p99_s"] / b_alone,
        "fair_tokens_over_fcfs": fair["tokens_per_second"] / fcfs["tokens_per_second"],
        "weights_worst_off_by": max(abs(r["off_by"]) for r in report["weights"].values()),
    }
    print(json.dumps(report["goals"], indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
