"""Metering throughput and the cost of admission on the gateway's hot path.

    .venv/bin/python bench/metering.py [--events 50000] [--seconds 3] [--rounds 3]
                                       [--out bench/results/metering.json]

1. Usage events per second through the durable journal (append + group fsync) and into the
   database (usage record + ledger debit in one transaction), on SQLite and, when it is
   reachable, PostgreSQL (``TOKENMILL_TEST_POSTGRES_URL``, in a scratch schema).
2. The gateway's requests/s and latency with admission (prices, credit, budgets, rate
   limits) on versus off, in front of bench/gateway.py's instant upstream. On a 2-core
   machine read the ratios, not the absolute figures.
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
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.gateway import MODEL, _load, _wait, run_upstream, serve_gateway


def _events(count: int, tenant_id: str) -> list:  # type: ignore[type-arg]
    from tokenmill.billing.usage import UsageEvent

    now = datetime.now(UTC)
    return [
        UsageEvent(
            request_id=f"bench-{i:09d}",
            tenant_id=tenant_id,
            key_id="key_bench",
            model=MODEL,
            endpoint="chat.completions",
            stream=True,
            prompt_tokens=120,
            cached_tokens=0,
            completion_tokens=40,
            ttft_seconds=0.01,
            duration_seconds=0.2,
            status="ok",
            http_status=200,
            error_code=None,
            created_at=now,
            cost_micros=230,
        )
        for i in range(count)
    ]


def ingest(url: str, count: int, data_dir: Path) -> dict:  # type: ignore[type-arg]
    """Events per second: journaled (fsynced) and in the database, with their debits."""
    from tokenmill.billing.journal import UsageJournal
    from tokenmill.billing.ledger import LedgerRepository
    from tokenmill.billing.recorder import UsageRecorder
    from tokenmill.billing.usage import UsageRepository
    from tokenmill.clock import SystemClock
    from tokenmill.control.tenants import TenantRepository
    from tokenmill.store.db import Database

    db = Database(url)
    db.migrate()
    clock = SystemClock()
    tenant = TenantRepository(db, clock).create(f"bench-{time.time_ns()}")
    events = _events(count, tenant.id)
    recorder = UsageRecorder(UsageRepository(db), 0.05, batch_size=2000)
    journal = UsageJournal(data_dir, recorder, clock.utcnow)
    recorder.on_written = journal.ingested
    journal.start()
    started = time.perf_counter()
    futures = [journal.record(event) for event in events]
    for future in futures:
        future.result()
    journaled = time.perf_counter() - started
    recorder.flush()
    total = time.perf_counter() - started
    journal.close()
    recorder.close()
    debits = -LedgerRepository(db, clock).balance(tenant.id)
    db.dispose()
    assert debits == 230 * count, "every event has its debit, once"
    return {
        "events": count,
        "journaled_per_second": count / journaled,
        "ingested_per_second": count / total,
    }


def run_gateway(port: int, upstream_port: int, data_dir: Path, admission: bool) -> None:
    from tokenmill.billing.ledger import LedgerRepository
    from tokenmill.billing.pricebook import PriceBookRepository
    from tokenmill.billing.pricing import Price
    from tokenmill.catalog.repository import ModelRepository
    from tokenmill.clock import SystemClock
    from tokenmill.control.bootstrap import ensure_admin
    from tokenmill.control.keys import KeyRepository
    from tokenmill.control.tenants import TenantRepository
    from tokenmill.store.db import Database

    clock = SystemClock()
    db = Database(f"sqlite:///{data_dir / 'bench.db'}")
    db.migrate()
    ensure_admin(db, clock)
    tenants = TenantRepository(db, clock)
    tenant = tenants.create("bench")
    # Limits high enough never to refuse, so every request pays for checking them.
    limits = {"rpm_limit": 10**9, "tpm_limit": 10**12, "concurrency_limit": 10**6}
    tenants.update_terms(tenant.id, {**limits, "monthly_budget_micros": 10**15})
    _, secret = KeyRepository(db, clock).create(tenant.id, "bench", terms=limits)
    (data_dir / "key").write_text(secret)
    ModelRepository(db, clock).register(MODEL, task="chat", artifact="bench", context_tokens=4096)
    PriceBookRepository(db, clock).add(MODEL, Price(1_000_000, 500_000, 2_000_000, 100))
    LedgerRepository(db, clock).top_up(tenant.id, 10**15)
    serve_gateway(port, upstream_port, db, data_dir, admission=admission)


def admission_overhead(seconds: float, rounds: int) -> list[dict]:  # type: ignore[type-arg]
    from tokenmill.fleet.local import free_port

    me = [sys.executable, __file__]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    upstream_port = free_port()
    ports = {"off": free_port(), "on": free_port()}
    dirs = {mode: Path(tempfile.mkdtemp(prefix=f"tokenmill-bench-{mode}-")) for mode in ports}
    procs = [subprocess.Popen([*me, "--role", "upstream", "--port", str(upstream_port)], env=env)]
    for mode, port in ports.items():
        procs.append(
            subprocess.Popen(
                [
                    *me,
                    "--role",
                    f"gateway-{mode}",
                    "--port",
                    str(port),
                    "--upstream-port",
                    str(upstream_port),
                    "--data-dir",
                    str(dirs[mode]),
                ],
                env=env,
            )
        )
    results = []
    try:
        _wait(f"http://127.0.0.1:{upstream_port}/health")
        for port in ports.values():
            _wait(f"http://127.0.0.1:{port}/health")
        for stream in (False, True):
            for concurrency in (1, 16):
                runs: dict[str, list[dict]] = {"off": [], "on": []}  # type: ignore[type-arg]
                for _ in range(rounds):
                    for mode, port in ports.items():
                        key = (dirs[mode] / "key").read_text()
                        url = f"http://127.0.0.1:{port}/v1/chat/completions"
                        runs[mode].append(
                            asyncio.run(_load(url, key, concurrency, seconds, stream))
                        )
                row: dict = {"stream": stream, "concurrency": concurrency}  # type: ignore[type-arg]
                for mode, found in runs.items():
                    row[mode] = {f: statistics.median(r[f] for r in found) for f in found[0]}
                row["rps_ratio_on_off"] = row["on"]["rps"] / row["off"]["rps"]
                row["added_p50_ms"] = row["on"]["p50_ms"] - row["off"]["p50_ms"]
                results.append(row)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/metering.json"))
    parser.add_argument("--role", default="bench")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--upstream-port", type=int, default=0)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--skip-gateway", action="store_true")
    args = parser.parse_args()
    if args.role == "upstream":
        return run_upstream(args.port)
    if args.role.startswith("gateway-"):
        return run_gateway(args.port, args.upstream_port, args.data_dir, args.role.endswith("on"))

    from tests.conftest import postgres_schema, postgres_url

    report: dict = {"benchmark": "metering", "ingest": {}}  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        report["ingest"]["sqlite"] = ingest(f"sqlite:///{root / 'm.db'}", args.events, root / "j1")
        try:
            with postgres_schema(postgres_url()) as url:
                report["ingest"]["postgresql"] = ingest(url, args.events, root / "j2")
        except Exception as error:
            report["ingest"]["postgresql"] = {"skipped": str(error)}
    print(f"{'database':>10} {'events':>7} {'journaled/s':>12} {'ingested/s':>11}")
    for name, row in report["ingest"].items():
        if "skipped" in row:
            print(f"{name:>10} skipped: {row['skipped']}")
            continue
        print(
            f"{name:>10} {row['events']:>7} {row['journaled_per_second']:>12.0f} "
            f"{row['ingested_per_second']:>11.0f}"
        )
    if not args.skip_gateway:
        report["admission"] = admission_overhead(args.seconds, args.rounds)
        print(
            f"\n{'stream':>6} {'conc':>4} {'off rps':>8} {'on rps':>8} {'on/off':>6} "
            f"{'off p50':>8} {'on p50':>8} {'added p50':>9} {'errors':>6}"
        )
        for r in report["admission"]:
            off, on = r["off"], r["on"]
            print(
                f"{r['stream']!s:>6} {r['concurrency']:>4} {off['rps']:>8.0f} {on['rps']:>8.0f} "
                f"{r['rps_ratio_on_off']:>6.2f} {off['p50_ms']:>6.2f}ms {on['p50_ms']:>6.2f}ms "
                f"{r['added_p50_ms']:>7.2f}ms {off['errors'] + on['errors']:>6}"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
