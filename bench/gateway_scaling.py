"""Gateway processes on one port: requests/s at 1, 2 and 4 ``tokenmill gateway`` processes
(SO_REUSEPORT) against an upstream that answers at once, with the upstream alone as the
baseline, in the same run. Every gateway is the real one (auth, validation, admission through
Redis, routing from the fleet's board, the usage journal and metering all on).

    .venv/bin/python bench/gateway_scaling.py [--gateways 1 2 4] [--concurrency 32]
        [--seconds 4] [--rounds 3] [--redis-url redis://127.0.0.1:6379/0]
        [--out bench/results/gateway_scaling.json]

Rounds alternate the gateway counts, so drifts in the machine's load hit all of them. The
load generator, the upstream and the gateways share this machine's cores: on 2 cores, read
the ratios between counts, and expect them to flatten once the gateways outnumber the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.gateway import CHAT_BODY, MODEL, _load, _wait
from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import SystemClock
from tokenmill.control.bootstrap import ensure_admin
from tokenmill.control.leader import LeaderLease
from tokenmill.fleet.board import REPLICAS, FleetBoard
from tokenmill.fleet.local import free_port, stop_process
from tokenmill.store.db import Database


def prepare(data_dir: Path, upstream: str) -> str:
    """The database with an admin key, the model, and the upstream published on the board as
    its replica (by a lease holder standing in for the controller); returns the key."""
    clock = SystemClock()
    db = Database(f"sqlite:///{data_dir / 'tokenmill.db'}")
    db.migrate()
    secret = ensure_admin(db, clock)
    assert secret is not None
    ModelRepository(db, clock).register(MODEL, task="chat", artifact="bench", context_tokens=4096)
    epoch = LeaderLease(db, clock, "bench", ttl_seconds=24 * 3600).claim()
    assert epoch is not None
    FleetBoard(db, clock).publish(epoch, f"{REPLICAS}{MODEL}@1", [["upstream", upstream]])
    db.dispose()
    return secret


def start_gateways(count: int, port: int, env: dict[str, str], logs: Path) -> list:  # type: ignore[type-arg]
    command = [sys.executable, "-m", "tokenmill.cli.main", "gateway", "--port", str(port)]
    started = []
    for index in range(count):
        with (logs / f"gateway-{count}-{index}.log").open("ab") as log:
            started.append(subprocess.Popen(command, env=env, stdout=log, stderr=log))
    return started


def wait_all(url: str, key: str, count: int, timeout_seconds: float = 60.0) -> None:
    """Until chats on fresh connections have been answered by ``count`` gateway processes (a
    request id's prefix is its process's)."""
    body = json.dumps(CHAT_BODY).encode()
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_seconds
    while len(seen) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(seen)} of {count} gateways answered")
        request = urllib.request.Request(url, data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                seen.add(response.headers["x-request-id"][:20])
        except OSError:
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=4.0, help="per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stream", action="store_true", help="streaming chat requests")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--out", type=Path, default=Path("bench/results/gateway_scaling.json"))
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="tokenmill-scaling-"))
    upstream_port, port = free_port(), free_port()
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        "TOKENMILL_DATA_DIR": str(data_dir),
        "TOKENMILL_DATABASE_URL": f"sqlite:///{data_dir / 'tokenmill.db'}",
        "TOKENMILL_REDIS_URL": args.redis_url,
        "TOKENMILL_REDIS_NAMESPACE": f"bench-scaling-{uuid.uuid4().hex[:8]}",
        "TOKENMILL_CONFIG": str(data_dir / "absent.toml"),
        "TOKENMILL_LOG_LEVEL": "warning",
    }
    upstream = subprocess.Popen(
        [sys.executable, str(root / "bench" / "gateway.py"), "--role", "upstream", "--port",
         str(upstream_port)], env=env,
    )  # fmt: skip
    runs: dict[str, list[dict]] = {"direct": [], **{str(n): [] for n in args.gateways}}
    try:
        _wait(f"http://127.0.0.1:{upstream_port}/health")
        key = prepare(data_dir, f"http://127.0.0.1:{upstream_port}")
        for round_index in range(args.rounds):
            order = args.gateways if round_index % 2 == 0 else list(reversed(args.gateways))
            url = f"http://127.0.0.1:{upstream_port}/v1/chat/completions"
            runs["direct"].append(
                asyncio.run(_load(url, key, args.concurrency, args.seconds, args.stream))
            )
            for count in order:
                gateways = start_gateways(count, port, env, data_dir)
                try:
                    url = f"http://127.0.0.1:{port}/v1/chat/completions"
                    wait_all(url, key, count)
                    runs[str(count)].append(
                        asyncio.run(_load(url, key, args.concurrency, args.seconds, args.stream))
                    )
                finally:
                    for gateway in gateways:
                        stop_process(gateway, grace_seconds=10)
    finally:
        stop_process(upstream, grace_seconds=5)

    table = {
        name: {f: statistics.median(r[f] for r in rounds) for f in rounds[0]}
        for name, rounds in runs.items()
    }
    one = table[str(args.gateways[0])]["rps"]
    print(f"{'gateways':>8} {'rps':>8} {'x first':>8} {'/direct':>8} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'errors':>6}")  # fmt: skip
    for name, row in table.items():
        print(
            f"{name:>8} {row['rps']:>8.0f} {row['rps'] / one:>8.2f} "
            f"{row['rps'] / table['direct']['rps']:>8.2f} {row['p50_ms']:>8.2f} "
            f"{row['p99_ms']:>8.2f} {row['errors']:>6.0f}"
        )
    print(f"cores: {os.cpu_count()}, load average at the end: {os.getloadavg()}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "gateway_scaling",
                "concurrency": args.concurrency,
                "seconds": args.seconds,
                "rounds": args.rounds,
                "stream": args.stream,
                "cores": os.cpu_count(),
                "median": table,
                "runs": runs,
            },
            indent=2,
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
