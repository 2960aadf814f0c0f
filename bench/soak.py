"""Soak: under moderate load for a long time, do memory, files and connections stay flat?

    .venv/bin/python bench/soak.py [--minutes 30] [--warmup-minutes 5] [--clients 4]
        [--tenants 3] [--sample-seconds 10] [--window-minutes 5] [--gateways 1]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
        [--redis-url redis://127.0.0.1:6379/0] [--out bench/results/soak.json]

Starts ``tokenmill serve`` as a user would (a fresh data directory, SQLite in it unless
``--database-url``; the bundled SmolLM2-135M chat model and MiniLM embeddings, one replica
each, up before the load starts), makes ``--tenants`` tenants with a key and credit through
``/admin/v1``, and runs ``--clients`` closed-loop clients over them for ``--minutes``: streamed
and whole chat replies of 16-32 tokens, and now and then embeddings, ``/v1/models``, a file
upload and delete, and malformed JSON (answered 400, as it should be). Every
``--sample-seconds`` it reads from /proc the RSS, open file descriptors, TCP connections and
threads of the ``serve`` process and of every process under it (gateway workers with
``--gateways N``, replicas), and the gateway's journal lag from ``/metrics``.

Verdicts, on what comes after ``--warmup-minutes``:
- each series gets a least-squares slope; it is flat when it grows by less than 2% of its warm
  value per 10 minutes (RSS) or by less than 1 per 10 minutes (file descriptors, TCP
  connections, threads);
- chat latency p50/p99 per ``--window-minutes`` window; p99 is stable when the last window's
  is at most 1.5 times the first's;
- invariants through the admin API: per tenant, usage records answered = the successful
  inference requests it made, all records = the inference requests it sent; no balance below
  zero;
- the platform stops on SIGINT (as Ctrl-C would) with exit code 0 and leaves no process of
  its tree behind.
Prints tables and writes JSON with every sample. Ctrl-C stops the load early; the platform is
still stopped and what was measured is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import platform_client, processes
from bench import soak_probe as probe
from bench.platform_client import CHAT, TOPICS, Reply, chat, send, without_password
from tokenmill.fleet.local import die_with_parent, free_port

MODELS = ["smollm2-135m-instruct", "all-minilm-l6-v2"]
EMBED = "embed-small"
OPS = {"stream": 45, "chat": 40, "embeddings": 5, "models": 4, "file": 3, "bad_json": 3}
CHAT_OPS = frozenset({"chat", "stream"})
ANSWERED_OPS = frozenset({"chat", "stream", "embeddings", "warm_chat", "warm_embeddings"})
INFERENCE_OPS = ANSWERED_OPS | {"bad_json"}  # each leaves one usage record
EXPECTED_STATUS = {"bad_json": 400}  # every other op: 200
MALFORMED = b'{"model": "chat-small", "messages": [{"role": "user", "content": '
CREDIT_MICROS = 1_000_000_000  # 1,000 USD a tenant: the run never runs out
GAUGES = (
    "tokenmill_gateway_journal_unsynced_events",
    "tokenmill_gateway_journal_pending_events",
    "tokenmill_gateway_requests_waiting",
)
STARTUP_SECONDS = 300  # serve up, then both replicas answering
REQUEST_TIMEOUT_SECONDS = 300


@dataclass(slots=True)
class Platform:
    process: subprocess.Popen[bytes]
    data_dir: Path
    base: str
    admin_key: str = ""
    seen: dict[int, int] = field(default_factory=dict)  # pid → start ticks, its whole tree

    def remember_tree(self) -> list[probe.Proc]:
        return processes.remember_tree(self.process.pid, self.seen)


@dataclass(slots=True)
class Soak:
    """What the run measured; kept by the caller so an interrupted run still reports it."""

    outcomes: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    began: float | None = None  # monotonic, when the load started


# the platform


def start_platform(args: argparse.Namespace, data_dir: Path) -> Platform:
    port = free_port()
    env = {
        **os.environ,
        "TOKENMILL_DATA_DIR": str(data_dir),
        "TOKENMILL_PORT": str(port),
        "TOKENMILL_CONFIG": str(data_dir / "none.toml"),
        "TOKENMILL_BUNDLED_MODELS": json.dumps(MODELS),
        "TOKENMILL_BUNDLED_MIN_REPLICAS": "1",
        "TOKENMILL_BUNDLED_MAX_REPLICAS": "1",  # the same processes all run long
        "TOKENMILL_LOG_LEVEL": "warning",
        "PYTHONUNBUFFERED": "1",
    }
    for name, value in (("DATABASE_URL", args.database_url), ("REDIS_URL", args.redis_url)):
        env.pop(f"TOKENMILL_{name}", None)
        if value:
            env[f"TOKENMILL_{name}"] = value
    command = [str(Path(sys.executable).with_name("tokenmill")), "serve"]
    if args.gateways != 1:
        command += ["--gateways", str(args.gateways)]
    with open(data_dir / "serve.log", "wb") as log:
        process = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only this script, which stops it
            preexec_fn=die_with_parent,  # and it gets SIGTERM if this script is killed
        )  # fmt: skip
    return Platform(process, data_dir, f"http://127.0.0.1:{port}")


def wait_started(platform: Platform) -> None:
    """Reads the admin key ``serve`` prints; returns once ``/health`` answers."""
    log = platform.data_dir / "serve.log"
    url, marker = f"{platform.base}/health", "tokenmill is serving"
    text = platform_client.wait_answering(platform.process, log, url, STARTUP_SECONDS, marker)
    platform.admin_key = platform_client.admin_key_in(text) or ""


def stop_platform(platform: Platform) -> dict[str, Any]:
    """SIGINT, then wait (SIGTERM, then SIGKILL, if it does not end); then any process of
    its tree still running is reported and killed."""
    if platform.process.poll() is None:
        platform.remember_tree()
    how, stop_seconds = processes.stop(platform.process)
    others = {pid: ticks for pid, ticks in platform.seen.items() if pid != platform.process.pid}
    left_behind = processes.kill_left_behind(others)
    return {
        "signal": how,
        "exit_code": platform.process.returncode,
        "stop_seconds": round(stop_seconds, 2),
        "processes": len(platform.seen),
        "left_behind": left_behind,
        "clean": how == "SIGINT" and platform.process.returncode == 0 and not left_behind,
    }


# the load


async def timed(soak: Soak, tenant: int, op: str, request: Awaitable[Reply]) -> Reply:
    """Awaits one request and records its outcome: a failure to connect is status 0, one
    in flight when the run is interrupted 499 (the gateway records it as cancelled)."""
    at = time.monotonic()
    try:
        reply = await request
    except (aiohttp.ClientError, TimeoutError) as error:
        reply = Reply(0, complete=False, error=f"{type(error).__name__}: {error}"[:200])
    except asyncio.CancelledError:
        reply = Reply(499, complete=False, error="cancelled: the run was interrupted")
        soak.outcomes.append(outcome(at, op, tenant, reply, False))
        raise
    ok = reply.status == EXPECTED_STATUS.get(op, 200) and reply.complete
    soak.outcomes.append(outcome(at, op, tenant, reply, ok))
    return reply


def outcome(at: float, op: str, tenant: int, reply: Reply, ok: bool) -> dict[str, Any]:
    return {
        "at": at,
        "op": op,
        "tenant": tenant,
        "status": reply.status,
        "ok": ok,
        "seconds": time.monotonic() - at,
        "ttft": reply.ttft,
        "error": None if ok else reply.error,
    }


async def one_op(
    soak: Soak, session: aiohttp.ClientSession, base: str, key: str, tenant: int, op: str, n: int
) -> bool:
    """Runs ``op`` (a file is an upload and a delete); whether it went as expected."""
    rng = random.Random(n)
    if op in CHAT_OPS:
        reply = await timed(soak, tenant, op, chat(session, base, key, rng, n, op == "stream"))
    elif op == "embeddings":
        texts = [f"Sentence {n} is about {rng.choice(TOPICS)}.", "A second, shorter one."]
        body = {"model": EMBED, "input": texts}
        request = send(session, "POST", f"{base}/v1/embeddings", key, json=body)
        reply = await timed(soak, tenant, op, request)
    elif op == "models":
        reply = await timed(soak, tenant, op, send(session, "GET", f"{base}/v1/models", key))
    elif op == "bad_json":
        json_type = {"content-type": "application/json"}
        url = f"{base}/v1/chat/completions"
        request = send(session, "POST", url, key, data=MALFORMED, headers=json_type)
        reply = await timed(soak, tenant, op, request)
    else:
        form = aiohttp.FormData()
        form.add_field("purpose", "user_data")
        form.add_field("file", f"soak {n}\n".encode() * 64, filename=f"soak-{n}.txt")
        upload = send(session, "POST", f"{base}/v1/files", key, data=form)
        reply = await timed(soak, tenant, "file_upload", upload)
        if reply.file_id is None:
            return False
        delete = send(session, "DELETE", f"{base}/v1/files/{reply.file_id}", key)
        reply = await timed(soak, tenant, "file_delete", delete)
    return reply.status == EXPECTED_STATUS.get(op, 200) and reply.complete


async def client(
    soak: Soak, session: aiohttp.ClientSession, base: str, tenants: list[dict[str, str]],
    index: int, until: float,
) -> None:  # fmt: skip
    """One closed-loop client: the next request as soon as the last is answered."""
    rng = random.Random(index)
    names, weights = list(OPS), list(OPS.values())
    n = 0
    while time.monotonic() < until:
        n += 1
        tenant = (index + n) % len(tenants)
        op = rng.choices(names, weights)[0]
        if not await one_op(
            soak, session, base, tenants[tenant]["key"], tenant, op, index << 32 | n
        ):
            await asyncio.sleep(1)  # refused or failed: do not spin


async def warm(soak: Soak, session: aiohttp.ClientSession, base: str, key: str) -> None:
    """Returns once both replicas answer (they start with the platform)."""
    deadline = time.monotonic() + STARTUP_SECONDS
    for op in ("warm_chat", "warm_embeddings"):
        while True:
            if op == "warm_chat":
                body: dict[str, Any] = {"model": CHAT, "max_tokens": 1}
                body["messages"] = [{"role": "user", "content": "Hello"}]
                url = f"{base}/v1/chat/completions"
            else:
                body, url = {"model": EMBED, "input": "Hello"}, f"{base}/v1/embeddings"
            reply = await timed(soak, 0, op, send(session, "POST", url, key, json=body))
            if reply.status == 200:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{op}: no answer in {STARTUP_SECONDS} s: {reply.error}")
            await asyncio.sleep(2)


async def take_sample(platform: Platform, session: aiohttp.ClientSession) -> dict[str, Any]:
    root = platform.process.pid
    tcp = probe.tcp_states(root)
    processes = {}
    for proc in platform.remember_tree():
        values = probe.measure(proc, tcp)
        if values is not None:
            processes[f"{probe.role_of(proc, root)} {proc.pid}"] = values
    gauges: dict[str, float] = {}
    try:
        async with session.get(f"{platform.base}/metrics") as resp:
            gauges = probe.parse_metrics(await resp.text(), GAUGES)
    except (aiohttp.ClientError, TimeoutError):
        pass
    return {"processes": processes, "metrics": gauges}


async def sampler(
    soak: Soak, platform: Platform, session: aiohttp.ClientSession, every: float, until: float
) -> None:
    """Samples every ``every`` seconds from now (the load's start) to ``until``."""
    began = next_at = time.monotonic()
    minute = -1
    while True:
        at = time.monotonic()
        sample = {"t": round(at - began, 2), **await take_sample(platform, session)}
        soak.samples.append(sample)
        if sample["t"] // 60 > minute:  # a line a minute, so a long run is seen to go on
            minute = int(sample["t"] // 60)
            failed = sum(not o["ok"] for o in soak.outcomes)
            rss = {name.rsplit(" ", 1)[0]: v["rss_mib"] for name, v in sample["processes"].items()}
            print(f"minute {minute}: {len(soak.outcomes)} requests, {failed} failed, "
                  f"RSS MiB {rss}", flush=True)  # fmt: skip
        if at >= until:
            return
        next_at += every
        await asyncio.sleep(max(0.0, min(next_at, until) - time.monotonic()))


async def run_load(
    soak: Soak, platform: Platform, tenants: list[dict[str, str]], args: argparse.Namespace
) -> None:
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    connector = aiohttp.TCPConnector(limit=args.clients + 2)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        await warm(soak, session, platform.base, tenants[0]["key"])
        soak.began = time.monotonic()
        until = soak.began + args.minutes * 60
        clients = (
            client(soak, session, platform.base, tenants, index, until)
            for index in range(args.clients)
        )
        await asyncio.gather(sampler(soak, platform, session, args.sample_seconds, until), *clients)


# the verdict


def analyse(soak: Soak, args: argparse.Namespace) -> dict[str, Any]:
    began = soak.began if soak.began is not None else time.monotonic()
    outcomes = [{**o, "t": o["at"] - began} for o in soak.outcomes]
    measured = max([o["t"] for o in outcomes] + [s["t"] for s in soak.samples] + [0.0])
    return probe.summarise(
        outcomes,
        soak.samples,
        warm_seconds=args.warmup_minutes * 60,
        end_seconds=min(measured, args.minutes * 60),
        window_seconds=args.window_minutes * 60,
        chat_ops=CHAT_OPS,
        gauges=GAUGES,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--warmup-minutes", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--tenants", type=int, default=3)
    parser.add_argument("--sample-seconds", type=float, default=10.0)
    parser.add_argument("--window-minutes", type=float, default=5.0)
    parser.add_argument("--gateways", type=int, default=1, help="passed to tokenmill serve")
    parser.add_argument("--database-url", help="default: SQLite in the data directory")
    parser.add_argument("--redis-url", help="default: none (in-process counters)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/soak.json"))
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stops the platform
    report: dict[str, Any] = {
        "benchmark": "soak",
        "settings": {
            **vars(args),
            "out": str(args.out),
            "database_url": without_password(args.database_url or "sqlite"),
            "redis_url": args.redis_url and without_password(args.redis_url),
        },
        "thresholds": {
            "rss_growth_share_per_10_minutes": probe.RSS_GROWTH_SHARE_PER_10_MIN,
            "count_growth_per_10_minutes": probe.COUNT_GROWTH_PER_10_MIN,
            "p99_ratio_limit": probe.P99_RATIO_LIMIT,
        },
        "cpu_count": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
    }
    data_dir = Path(tempfile.mkdtemp(prefix="tm-bench-soak-"))
    soak = Soak()
    platform = start_platform(args, data_dir)
    try:
        wait_started(platform)
        credits = [CREDIT_MICROS] * args.tenants  # tenants made as an operator would
        tenants = platform_client.make_tenants(platform.base, platform.admin_key, credits, "soak")
        try:
            asyncio.run(run_load(soak, platform, tenants, args))
        except KeyboardInterrupt:
            report["interrupted"] = True
            print("interrupted: stopping the platform")
        report["invariants"] = platform_client.check_recorded_usage(
            platform.base, platform.admin_key, tenants, soak.outcomes, ANSWERED_OPS, INFERENCE_OPS
        )
    finally:
        report["stop"] = stop_platform(platform)
        print(f"data directory (serve.log, replicas' logs): {data_dir}")
    report["load_average_at_end"] = os.getloadavg()
    report["result"] = analyse(soak, args)
    series, invariants = report["result"]["series"], report["invariants"]
    report["passed"] = (  # a run too short for a slope or a second window has not passed
        not report.get("interrupted")
        and bool(series)
        and all(fit["flat"] for fit in series)
        and bool(report["result"]["p99_stable"])
        and invariants["usage_matches"]
        and invariants["balances_non_negative"]
        and report["stop"]["clean"]
    )
    report["samples"] = soak.samples
    probe.print_tables(report)
    print(f"passed: {report['passed']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
