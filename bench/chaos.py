"""Chaos under load: faults one after another while streaming clients run; after each, what
failed, how long until requests succeed again at a normal rate, and whether the money is right.

    .venv/bin/python bench/chaos.py [--clients 16] [--credits 1000000,1000000,500,150]
        [--database chaos] [--redis-url redis://127.0.0.1:6379/0] [--disk-size 64m]
        [--redis-down-seconds 30] [--disk-full-seconds 25] [--baseline-seconds 30]
        [--recovery-timeout-seconds 180] [--settle-seconds 10] [--out bench/results/chaos.json]

Runs as root on one machine, loopback only, for 5-10 minutes. The platform as separate roles:
two ``tokenmill controller`` (one leads and runs the fleet: one replica of the bundled
SmolLM2-135M chat model, one engine thread), two ``tokenmill gateway`` on one port; PostgreSQL
(the database ``--database``, dropped and made afresh), Redis (a namespace of the run's own)
and a data directory whose ``journal`` is a ``--disk-size`` tmpfs (big enough that the
journals never fill it by themselves). One tenant per ``--credits`` entry (micro-USD; the
small ones run out during the run, so "no balance below zero" is really tested), and
``--clients`` closed-loop clients spread over them, each sending streamed chat requests of
8-16 tokens one after another.

Faults, in order (``bench/chaos_faults.py``), each followed by a recovery period: kill -9 a
gateway (started again 2 s later); kill -9 the replica (the leader starts another); kill -9
the leading controller (the standby takes over; the killed one comes back as a standby);
restart PostgreSQL; stop Redis for ``--redis-down-seconds``; fill the journal's disk for
``--disk-full-seconds``. For each: requests that ended in its window by outcome (answered,
refused for credit, failed by status: 0 = no answer, ``cut`` = a stream broken off), the time
from the fault until the requests answered in a 5 s window reach half the rate of the 20 s
before the fault, with no failure after it, and the invariants (``bench/chaos_checks.py``),
checked in the database.

Whatever happens (an exception, Ctrl-C, SIGTERM), every process started is stopped, the tmpfs
is unmounted, and PostgreSQL and Redis are left running and answering (checked and reported).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import chaos_services as services
from bench import platform_client
from bench.chaos_checks import NORMAL_SHARE, WINDOW_SECONDS, Books, check, print_table
from bench.chaos_checks import recovered_at as recovery_point
from bench.chaos_cluster import Cluster, platform_env
from bench.chaos_faults import FAULTS, Setting
from bench.chaos_load import Load, Outcome, tally
from tokenmill.store.db import Database

STARTUP_SECONDS = 300
WARM_SECONDS = 15.0  # load before the baseline is measured
STABLE_SECONDS = 10.0  # recovered, and still so this long after
PRE_FAULT_SECONDS = 20.0  # the rate before a fault is what recovery is measured against
MAX_TOKENS = (8, 16)


def start_platform(cluster: Cluster) -> str:
    """Controllers one after another (the first makes the schema and the admin key), then the
    gateways; returns the admin key."""
    for index in (1, 2):
        cluster.add_controller(index)
        cluster.add_gateway(index)
    key = None
    for name in ("controller-1", "controller-2", "gateway-1", "gateway-2"):
        member = cluster.start(name)
        assert member.process is not None
        marker = "controller " if name.startswith("controller") else ""
        text = platform_client.wait_answering(
            member.process, member.log, member.health_url, STARTUP_SECONDS, marker
        )
        key = key or platform_client.admin_key_in(text)
    if key is None:
        raise RuntimeError(f"no admin key printed; see {cluster.data_dir}/controller-1.log")
    return key


def wait_for_chat(base: str, key: str) -> float:
    """Until the chat model answers (its replica is up); how long that took. Asked with the
    admin key: the operator's usage is not the tenants' under test."""
    began = time.monotonic()
    body = {"model": "chat-small", "max_tokens": 1, "messages": [{"role": "user", "content": "Hi"}]}
    headers = {"authorization": f"Bearer {key}"}
    while time.monotonic() - began < STARTUP_SECONDS:
        try:
            answer = httpx.post(f"{base}/v1/chat/completions", json=body, headers=headers,
                                timeout=120)  # fmt: skip
            if answer.status_code == 200:
                return time.monotonic() - began
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise RuntimeError(f"the chat model did not answer in {STARTUP_SECONDS} s")


def await_recovery(
    load: Load, since: float, repaired: float, normal: float, timeout: float
) -> float | None:
    """Polls until the platform has been recovered for ``STABLE_SECONDS``; the moment it
    recovered (None: not within ``timeout`` after the repair)."""
    while time.monotonic() - repaired < timeout:
        now = time.monotonic()
        point = recovery_point(load.outcomes, since, now, normal)
        if point is not None and now - point >= STABLE_SECONDS and now - repaired >= STABLE_SECONDS:
            return point
        time.sleep(0.5)
    return None


def failures(outcomes: list[Outcome], origin: float) -> list[dict[str, Any]]:
    return [
        {"t": round(o.ended - origin, 2), "tenant": o.tenant, "kind": o.kind,
         "request_id": o.request_id, "chunks": o.chunks, "error": o.error}
        for o in outcomes if o.failed
    ]  # fmt: skip


def run(
    args: argparse.Namespace, report: dict[str, Any], data_dir: Path, redis: dict[str, str]
) -> None:
    cluster: Cluster | None = None
    load: Load | None = None
    journal_dir = data_dir / "journal"
    namespace = f"chaos-{time.strftime('%Y%m%d%H%M%S')}"
    database_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{args.database}"
    try:
        services.fresh_database(args.database)
        services.mount_small_disk(journal_dir, args.disk_size)
        cluster = Cluster(data_dir, platform_env(data_dir, database_url, args.redis_url, namespace))
        admin_key = start_platform(cluster)
        credits = [int(c) for c in args.credits.split(",")]
        tenants = platform_client.make_tenants(cluster.base, admin_key, credits, "chaos")
        report["tenants"] = [
            {"id": t["id"], "credit_micros": c} for t, c in zip(tenants, credits, strict=True)
        ]
        report["chat_ready_seconds"] = round(wait_for_chat(cluster.base, admin_key), 1)
        load = Load(cluster.base, [t["key"] for t in tenants], args.clients, MAX_TOKENS)
        began_utc, origin = datetime.now(UTC), time.monotonic()
        load.start()
        books = Books(Database(database_url), [t["id"] for t in tenants])
        time.sleep(WARM_SECONDS + args.baseline_seconds)
        measured = load.ended_between(origin + WARM_SECONDS, time.monotonic())
        rate = sum(o.ok for o in measured) / args.baseline_seconds
        report["baseline"] = {"answered_per_second": round(rate, 2), **tally(measured)}
        print(f"baseline: {rate:.2f} answered/s", flush=True)
        setting = Setting(
            cluster, journal_dir, redis, args.redis_down_seconds, args.disk_full_seconds
        )
        faults = report["faults"]
        for name, inject in FAULTS:
            since = time.monotonic()
            # Normal: half the answered rate of the PRE_FAULT_SECONDS before the fault (not the
            # baseline's: a tenant that ran out of credit since has lowered it).
            before = load.ended_between(since - PRE_FAULT_SECONDS, since)
            normal = NORMAL_SHARE * WINDOW_SECONDS * sum(o.ok for o in before) / PRE_FAULT_SECONDS
            print(f"{name} ... (recovered: {normal:.1f} answered in {WINDOW_SECONDS:.0f} s)",
                  flush=True)  # fmt: skip
            details = inject(setting)
            repaired = time.monotonic()
            point = await_recovery(load, since, repaired, normal, args.recovery_timeout_seconds)
            time.sleep(args.settle_seconds)
            checked_until, until_utc = time.monotonic(), datetime.now(UTC)
            done = [o for o in list(load.outcomes) if o.ended < checked_until]
            invariants = check(books, done, began_utc, args.clients, until_utc)
            faults.append({
                "name": name, "at": round(since - origin, 2),
                "held_seconds": float(details.pop("held_seconds")),
                "recover_seconds": None if point is None else round(point - since, 1),
                "normal_answered_per_window": round(normal, 1),
                "details": details, "invariants": invariants,
            })  # fmt: skip
            print(f"  recovered after {faults[-1]['recover_seconds']} s; invariants "
                  f"{invariants['ok']}", flush=True)  # fmt: skip
        load.stop()
        ended = time.monotonic()
        starts = [origin + f["at"] for f in faults] + [ended]
        for fault, (start, end) in zip(faults, itertools.pairwise(starts), strict=True):
            fault["tally"] = tally(load.ended_between(start, end))
            fault["failures"] = failures(load.ended_between(start, end), origin)
        report["total"] = tally(load.outcomes)
        report["final_invariants"] = check(books, load.outcomes, began_utc, in_flight=0)
        report["members"] = {m.name: m.starts for m in cluster.members.values()}
    except KeyboardInterrupt:
        report["interrupted"] = True
        print("interrupted: stopping everything")
    finally:
        if load is not None:
            load.stop()
        if cluster is not None:
            report["stop"] = cluster.stop_all()
        report["unmounted"] = services.unmount(journal_dir)
        report["services_at_end"] = services.ensure_running(redis)
        report["redis_keys_removed"] = services.forget_namespace(namespace)
        print(
            f"data directory (logs): {data_dir}; services at the end: {report['services_at_end']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument(
        "--credits", default="1000000,1000000,500,150", help="micro-USD, one tenant each"
    )
    parser.add_argument("--database", default="chaos", help="on 127.0.0.1:5432; made afresh")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--disk-size", default="64m", help="the journal's tmpfs")
    parser.add_argument("--redis-down-seconds", type=float, default=30.0)
    parser.add_argument("--disk-full-seconds", type=float, default=25.0)
    parser.add_argument("--baseline-seconds", type=float, default=30.0)
    parser.add_argument("--recovery-timeout-seconds", type=float, default=180.0)
    parser.add_argument("--settle-seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/chaos.json"))
    args = parser.parse_args()
    if args.database == "test":
        parser.error("the test database is CI's: give the benchmark its own")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still cleans up
    redis = services.redis_settings()  # before anything is broken
    report: dict[str, Any] = {
        "benchmark": "chaos",
        "settings": {**vars(args), "out": str(args.out)},
        "redis_settings": redis,
        "cpu_count": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "faults": [],
    }
    data_dir = Path(tempfile.mkdtemp(prefix="tm-bench-chaos-"))
    run(args, report, data_dir, redis)
    report["load_average_at_end"] = os.getloadavg()
    if "total" in report:
        print_table(report["faults"], report["total"])
        final = report["final_invariants"]
        print(f"final invariants: {final['ok']} ({final['produced_tokens']} requests produced "
              f"tokens, {final['usage_records']} usage records)")  # fmt: skip
    stop = report.get("stop", {})
    print(f"stopped: {stop.get('signals')}; left behind: {stop.get('left_behind') or 'none'}; "
          f"tmpfs unmounted: {report['unmounted']}")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
