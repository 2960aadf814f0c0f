"""Service tiers under overload: priority requests against FCFS, and goodput.

    .venv/bin/python bench/tiers.py [--seconds 120] [--overload 1.5] [--out FILE.json]

One run, the bundled chat model, one replica, the whole platform (gateway and engine),
streaming chat through the gateway (prompts of about 60 tokens, 32 output tokens with
end-of-generation banned, a different prompt for every request):
1. capacity: requests/s the replica completes for 32 closed-loop clients;
2. FCFS: the engine in arrival order and no tier targets held at the gateway; open-loop
   Poisson arrivals at ``--overload`` x capacity, a quarter of them ``priority``, the rest
   ``default``, for ``--seconds``; the engine runs ``--max-running`` sequences (8: a batch
   whose steps keep time per token within its target; priority work may run past it);
3. tiers: the same arrivals (same seed) with the engine's queue classes and the gateway holding
   each tier to its time-to-first-token target (a priority request that would miss it is
   served as default; a default one is refused with 429).
A request meets its targets when its first token comes within its tier's TTFT target and its
mean time per output token is within the TPOT target; a refused one does not. Goodput is
requests meeting both per second. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.engine import Stream, prompt, stream_chat
from bench.fairness import p99, session
from bench.serving import start_platform
from tokenmill.fleet.local import stop_process

CHAT = "smollm2-135m-instruct"
OUTPUT_TOKENS = 32
PROMPT_WORDS = 30
PRIORITY_SHARE = 0.25
TTFT_TARGETS = {"priority": 2.0, "default": 10.0}
TPOT_TARGET = 0.3
NO_TARGETS = {"priority": 1e9, "default": 1e9, "flex": 1e9}


@dataclass
class Sent:
    tier: str
    stream: Stream
    status: int = 200

    @property
    def whole(self) -> bool:
        return self.status == 200 and len(self.stream.token_times) >= OUTPUT_TOKENS

    @property
    def tpot(self) -> float:
        times = self.stream.token_times
        return (times[-1] - times[0]) / (len(times) - 1)

    def met_ttft(self) -> bool:
        return self.whole and self.stream.ttft <= TTFT_TARGETS[self.tier]

    def met_tpot(self) -> bool:
        return self.whole and self.tpot <= TPOT_TARGET

    def met(self) -> bool:
        return self.met_ttft() and self.met_tpot()


class Traffic:
    def __init__(self, base: str, key: str) -> None:
        self.base = base
        self.headers = {"authorization": f"Bearer {key}"}
        self.sent: list[Sent] = []
        self.counter = 0

    async def one(self, http: aiohttp.ClientSession, tier: str) -> int:
        self.counter += 1
        sent = Sent(tier, Stream(started=time.perf_counter()))
        self.sent.append(sent)
        try:
            await stream_chat(
                http,
                self.base,
                prompt(self.counter, PROMPT_WORDS),
                OUTPUT_TOKENS,
                self.headers,
                model=CHAT,
                into=sent.stream,
                service_tier=tier,
            )
        except RuntimeError as error:  # the reply's status, e.g. "429: {...}"
            sent.status = int(str(error).split(":", 1)[0])
        return sent.status

    async def closed(self, clients: int, seconds: float) -> float:
        """Completions per second of ``clients`` back-to-back clients, after a warm-up third."""
        until = time.perf_counter() + seconds
        warm = time.perf_counter() + seconds / 3

        async def client(index: int, http: aiohttp.ClientSession) -> None:
            await asyncio.sleep(index * 0.05)
            while time.perf_counter() < until:
                if await self.one(http, "default") != 200:
                    await asyncio.sleep(1.0)  # refused: its Retry-After, about

        async with session() as http:
            await asyncio.gather(*(client(i, http) for i in range(clients)))
        done = [s for s in self.sent if s.stream.token_times and s.stream.token_times[-1] >= warm]
        return len(done) / (seconds * 2 / 3)

    async def poisson(self, rate: float, seconds: float, seed: int = 11) -> None:
        rng = random.Random(seed)
        until = time.perf_counter() + seconds
        tasks = []
        async with session() as http:
            while (now := time.perf_counter()) < until:
                tier = "priority" if rng.random() < PRIORITY_SHARE else "default"
                tasks.append(asyncio.create_task(self.one(http, tier)))
                await asyncio.sleep(min(rng.expovariate(rate), until - now))
            await asyncio.gather(*tasks)


def summary(traffic: Traffic, seconds: float) -> dict:
    out: dict = {"requests": len(traffic.sent)}
    for tier in ("priority", "default"):
        sent = [s for s in traffic.sent if s.tier == tier]
        answered = [s for s in sent if s.status == 200 and s.stream.token_times]
        ttfts = sorted(s.stream.ttft for s in answered)
        tpots = sorted(s.tpot for s in sent if s.whole)
        count = max(len(sent), 1)
        out[tier] = {
            "sent": len(sent),
            "refused": sum(1 for s in sent if s.status == 429),
            "served_as_default": sum(1 for s in answered if s.stream.service_tier != tier),
            "met": sum(1 for s in sent if s.met()) / count,
            "met_ttft": sum(1 for s in sent if s.met_ttft()) / count,
            "met_tpot": sum(1 for s in sent if s.met_tpot()) / count,
            "admitted_met_ttft": sum(1 for s in sent if s.met_ttft())
            / max(sum(1 for s in sent if s.status == 200), 1),
            "ttft_p50": statistics.median(ttfts) if ttfts else None,
            "ttft_p99": p99(ttfts),
            "tpot_p50": statistics.median(tpots) if tpots else None,
            "tpot_p99": p99(tpots),
        }
    out["goodput"] = sum(1 for s in traffic.sent if s.met()) / seconds
    return out


def run(arm: str, rate: float | None, args: argparse.Namespace) -> tuple[float, dict]:
    """One platform for one arm; measures capacity first when ``rate`` is None."""
    targets = NO_TARGETS if arm == "fcfs" else {**TTFT_TARGETS, "flex": 300.0}
    env = {
        "TOKENMILL_BUNDLED_MAX_REPLICAS": "1",
        "TOKENMILL_ENGINE_SCHEDULING": "fcfs" if arm == "fcfs" else "fair",
        "TOKENMILL_SERVICE_TIER_TTFT_SECONDS": json.dumps(targets),
        "TOKENMILL_ENGINE_MAX_RUNNING": str(args.max_running),
    }
    with tempfile.TemporaryDirectory() as data_dir:
        process, base, key = start_platform(Path(data_dir), [CHAT], env=env, startup_seconds=180)
        try:
            warm = Traffic(base, key)
            measured = asyncio.run(warm.closed(32, 30.0))
            rate = rate or measured * args.overload
            refused = sum(1 for s in warm.sent if s.status != 200)
            print(
                f"{arm}: capacity {measured:.2f} req/s ({refused} refused in the probe); "
                f"sending {rate:.2f} req/s",
                flush=True,
            )
            traffic = Traffic(base, key)
            traffic.counter = 10**6  # prompts not seen in the warm-up
            asyncio.run(traffic.poisson(rate, args.seconds))
            return rate, {"capacity": measured, **summary(traffic, args.seconds)}
        finally:
            stop_process(process, grace_seconds=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--overload", type=float, default=1.5)
    parser.add_argument("--out", type=Path, default=Path("bench/results/tiers.json"))
    parser.add_argument(
        "--max-running", type=int, default=8, help="the engine's batch, in both arms"
    )
    parser.add_argument("--only-tiers-at", type=float, help="just the tiers arm, at this rate")
    args = parser.parse_args()
    if args.only_tiers_at:
        print(json.dumps(run("tiers", args.only_tiers_at, args)[1], indent=2))
        return
    rate, fcfs = run("fcfs", None, args)
    _, tiers = run("tiers", rate, args)
    report = {
        "rate": rate,
        "overload": args.overload,
        "ttft_targets": TTFT_TARGETS,
        "tpot_target": TPOT_TARGET,
        "max_running": args.max_running,
        "fcfs": fcfs,
        "tiers": tiers,
        "priority_met": {"fcfs": fcfs["priority"]["met"], "tiers": tiers["priority"]["met"]},
        "goodput_ratio": tiers["goodput"] / fcfs["goodput"] if fcfs["goodput"] else None,
    }
    rows = [
        (f"{tier} met targets", f"{fcfs[tier]['met']:.1%}", f"{tiers[tier]['met']:.1%}")
        for tier in ("priority", "default")
    ]
    rows += [
        (f"{tier} met {what}", f"{fcfs[tier][key]:.1%}", f"{tiers[tier][key]:.1%}")
        for tier in ("priority", "default")
        for what, key in (("TTFT", "met_ttft"), ("TPOT", "met_tpot"))
    ]
    rows += [
        (f"{tier} TPOT p99 (s)", f"{fcfs[tier]['tpot_p99']:.3f}", f"{tiers[tier]['tpot_p99']:.3f}")
        for tier in ("priority", "default")
    ]
    rows += [
        (f"{tier} TTFT p99 (s)", f"{fcfs[tier]['ttft_p99']:.2f}", f"{tiers[tier]['ttft_p99']:.2f}")
        for tier in ("priority", "default")
    ]
    rows += [
        ("default refused", str(fcfs["default"]["refused"]), str(tiers["default"]["refused"])),
        ("priority served as default", "-", str(tiers["priority"]["served_as_default"])),
        ("goodput (req/s)", f"{fcfs['goodput']:.2f}", f"{tiers['goodput']:.2f}"),
    ]
    print(f"\n{args.overload}x overload ({rate:.2f} req/s) for {args.seconds:.0f} s")
    print(f"{'':30} {'FCFS':>10} {'tiers':>10}")
    for name, a, b in rows:
        print(f"{name:30} {a:>10} {b:>10}")
    print(f"goodput ratio: {report['goodput_ratio']:.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
