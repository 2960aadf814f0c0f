"""Gateway overhead: requests/s and latency, directly against an instant upstream and through
the real gateway (auth, validation, routing, metering all on), in the same run. Each
figure is the median of several alternating rounds.

    .venv/bin/python bench/gateway.py [--seconds 3] [--rounds 3] [--out bench/results/gateway.json]

Three processes: an upstream that answers at once, the gateway in front of it, and this
load generator. On a 2-core machine they share the cores, so read the ratios, not the
absolute figures.
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
from pathlib import Path

import aiohttp
import orjson

MODEL = "bench-model"
CHAT_BODY = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "Hello there, how are you today?"}],
    "max_tokens": 16,
}
COMPLETION = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "I am fine, thank you."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18},
    }
)


def _chunk(delta: dict[str, str], finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


STREAM = b"".join(
    [
        _chunk({"role": "assistant", "content": ""}),
        *(_chunk({"content": word}) for word in ["I ", "am ", "fine, ", "thank ", "you", "."]),
        _chunk({}, "stop"),
        b"data: "
        + orjson.dumps(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": MODEL,
                "choices": [],
                "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18},
            }
        )
        + b"\n\n",
        b"data: [DONE]\n\n",
    ]
)


async def read_body(receive):  # type: ignore[no-untyped-def]
    """The whole body of an ASGI request."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def upstream_app(scope, receive, send):  # type: ignore[no-untyped-def]
    """An OpenAI-compatible replica that answers at once (the same bytes every time)."""
    if scope["type"] != "http":
        return
    body = await read_body(receive)
    if scope["method"] == "DELETE":
        payload, media = (
            b'{"usage": {"prompt_tokens": 12, "completion_tokens": 1}}',
            b"application/json",
        )
    elif b'"stream":true' in body:
        payload, media = STREAM, b"text/event-stream"
    else:
        payload, media = COMPLETION, b"application/json"
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", media)]}
    )
    await send({"type": "http.response.body", "body": payload})


def run_upstream(port: int) -> None:
    import uvicorn

    uvicorn.run(
        upstream_app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


def run_gateway(port: int, upstream_port: int, data_dir: Path) -> None:
    """The real gateway stack as ``tokenmill serve`` builds it (journal and admission on),
    with the upstream registered as the model's replica."""
    from tokenmill.catalog.repository import ModelRepository
    from tokenmill.clock import SystemClock
    from tokenmill.control.bootstrap import ensure_admin
    from tokenmill.store.db import Database

    clock = SystemClock()
    db = Database(f"sqlite:///{data_dir / 'bench.db'}")
    db.migrate()
    secret = ensure_admin(db, clock)
    assert secret is not None
    (data_dir / "key").write_text(secret)
    ModelRepository(db, clock).register(MODEL, task="chat", artifact="bench", context_tokens=4096)
    serve_gateway(port, upstream_port, db, data_dir)


def serve_gateway(port: int, upstream_port: int, db, data_dir: Path, **options: bool) -> None:  # type: ignore[no-untyped-def]
    """Runs the gateway ``build_gateway`` makes, the upstream as the model's only replica."""
    import uvicorn

    from tokenmill.clock import SystemClock
    from tokenmill.gateway.app import build_app
    from tokenmill.gateway.compose import build_gateway
    from tokenmill.gateway.routing import Router
    from tokenmill.settings import Settings

    router = Router()
    router.set_replicas(f"{MODEL}@1", [f"http://127.0.0.1:{upstream_port}"])
    gateway = build_gateway(Settings(data_dir=data_dir), db, SystemClock(), router, **options)
    try:
        uvicorn.run(
            build_app(gateway.services),
            host="127.0.0.1",
            port=port,
            loop="uvloop",
            http="httptools",
            access_log=False,
            log_level="warning",
            proxy_headers=False,
        )
    finally:
        gateway.close()


async def _load(url: str, key: str, concurrency: int, seconds: float, stream: bool) -> dict:
    body = orjson.dumps({**CHAT_BODY, "stream": stream})
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(20):  # warm-up: connections open, caches filled
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


def _wait(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/gateway.json"))
    parser.add_argument("--role", choices=["bench", "upstream", "gateway"], default="bench")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--upstream-port", type=int, default=0)
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args()
    if args.role == "upstream":
        return run_upstream(args.port)
    if args.role == "gateway":
        return run_gateway(args.port, args.upstream_port, args.data_dir)

    from tokenmill.fleet.local import free_port

    upstream_port, gateway_port = free_port(), free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="tokenmill-bench-"))
    me = [sys.executable, __file__]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    procs = [
        subprocess.Popen([*me, "--role", "upstream", "--port", str(upstream_port)], env=env),
        subprocess.Popen(
            [
                *me,
                "--role",
                "gateway",
                "--port",
                str(gateway_port),
                "--upstream-port",
                str(upstream_port),
                "--data-dir",
                str(data_dir),
            ],
            env=env,
        ),
    ]
    try:
        _wait(f"http://127.0.0.1:{upstream_port}/health")
        _wait(f"http://127.0.0.1:{gateway_port}/health")
        key = (data_dir / "key").read_text()
        results = []
        for stream in (False, True):
            for concurrency in (1, 16):
                row: dict = {"stream": stream, "concurrency": concurrency}
                rounds: dict[str, list[dict]] = {"direct": [], "gateway": []}
                for _ in range(args.rounds):  # alternate, so drifts in machine load hit both
                    for target, port in (("direct", upstream_port), ("gateway", gateway_port)):
                        url = f"http://127.0.0.1:{port}/v1/chat/completions"
                        rounds[target].append(
                            asyncio.run(_load(url, key, concurrency, args.seconds, stream))
                        )
                for target, runs in rounds.items():
                    row[target] = {
                        field: statistics.median(r[field] for r in runs) for field in runs[0]
                    }
                    row[target]["rounds"] = runs
                row["rps_ratio"] = row["gateway"]["rps"] / row["direct"]["rps"]
                row["added_p50_ms"] = row["gateway"]["p50_ms"] - row["direct"]["p50_ms"]
                results.append(row)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)

    print(
        f"{'stream':>6} {'conc':>4} {'direct rps':>10} {'gateway rps':>11} {'ratio':>6} "
        f"{'direct p50':>10} {'gateway p50':>11} {'added p50':>9} {'errors':>6}"
    )
    for r in results:
        d, g = r["direct"], r["gateway"]
        print(
            f"{r['stream']!s:>6} {r['concurrency']:>4} {d['rps']:>10.0f} {g['rps']:>11.0f} "
            f"{r['rps_ratio']:>6.2f} {d['p50_ms']:>8.2f}ms {g['p50_ms']:>9.2f}ms "
            f"{r['added_p50_ms']:>7.2f}ms {d['errors'] + g['errors']:>6}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "gateway",
                "seconds": args.seconds,
                "rounds": args.rounds,
                "results": results,
            },
            indent=2,
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
