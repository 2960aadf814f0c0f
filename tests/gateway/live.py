"""Live gateways for tests: real ``tokenmill`` gateway processes in front of a test replica.

The test replica speaks the replica API (chat completions, streamed or whole, always with
usage; ``DELETE /v1/requests/{id}``; ``/health``) and answers at once, or one token every
``--token-delay`` seconds. ``GET /stats`` says how many completions reached it, and the
tenancy headers (tenant: weight) they came with.

    python -m tests.gateway.live replica --port P [--token-delay S]
    python -m tests.gateway.live embeddings --port P --model NAME  (the real embedding replica)
    python -m tests.gateway.live gateway --port P --replica URL --database URL [--model NAME]
        [--redis URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tests.processes import start_process, wait_healthy
from tokenmill.fleet.local import free_port, stop_process

MODEL = "test-model"
EMBEDDINGS_MODEL = "all-minilm-l6-v2"
PROMPT_TOKENS = 10
ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 120  # the embedding replica imports torch and loads its model first


def served_name(model: str) -> str:
    """What the gateway routes a registered model by, and names it to its replica."""
    return f"{model}@1"


async def read_body(receive: Any) -> bytes:
    """The whole body of an ASGI request."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


class TestReplica:
    def __init__(self, token_delay_seconds: float) -> None:
        self.token_delay_seconds = token_delay_seconds
        self.completions = 0
        self.generated: dict[str, int] = {}
        self.tenants: dict[str, str] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        headers = dict(scope["headers"])
        request_id = headers.get(b"x-request-id", b"").decode()
        path = scope["path"]
        if scope["method"] == "DELETE":
            made = self.generated.get(path.rsplit("/", 1)[-1], 0)
            await send_json(send, 200, _usage(made))
        elif path == "/health":
            await send_json(send, 200, {"status": "ok"})
        elif path == "/stats":
            await send_json(send, 200, {"completions": self.completions, "tenants": self.tenants})
        else:
            self.completions += 1
            tenant = headers.get(b"x-tokenmill-tenant", b"").decode()
            self.tenants[tenant] = headers.get(b"x-tokenmill-weight", b"").decode()
            request = orjson.loads(body)
            tokens = int(request.get("max_tokens") or 16)
            if request.get("stream"):
                await self._stream(send, request_id, tokens)
            else:
                reply = {"choices": [{"index": 0, "message": {"content": "x" * tokens}}]}
                await send_json(send, 200, {**reply, **_usage(tokens)})

    async def _stream(self, send: Any, request_id: str, tokens: int) -> None:
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i in range(tokens):
            if self.token_delay_seconds:
                await asyncio.sleep(self.token_delay_seconds)
            self.generated[request_id] = i + 1
            chunk = {"choices": [{"index": 0, "delta": {"content": "x"}}]}
            await send({"type": "http.response.body", "body": sse_event(chunk), "more_body": True})
        tail = sse_event({"choices": [], **_usage(tokens)}) + b"data: [DONE]\n\n"
        await send({"type": "http.response.body", "body": tail})


def _usage(completion_tokens: int) -> dict[str, Any]:
    return {
        "usage": {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": completion_tokens,
            "total_tokens": PROMPT_TOKENS + completion_tokens,
        }
    }


def sse_event(obj: Any) -> bytes:
    """One server-sent event carrying ``obj`` as JSON."""
    return b"data: " + orjson.dumps(obj) + b"\n\n"


async def send_json(send: Any, status: int, obj: Any) -> None:
    """An ASGI response of ``obj`` as JSON."""
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": orjson.dumps(obj)})


def _serve(app: Any, port: int) -> None:
    import uvicorn

    uvicorn.run(
        app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", log_level="warning"
    )


def run_gateway(args: argparse.Namespace) -> None:
    from tokenmill.clock import SystemClock
    from tokenmill.gateway.app import build_app
    from tokenmill.gateway.compose import build_gateway
    from tokenmill.gateway.routing import Router
    from tokenmill.settings import Settings
    from tokenmill.store.db import Database

    settings = Settings()
    db = Database(args.database)
    router = Router()
    router.set_replicas(served_name(args.model), [args.replica])
    gateway = build_gateway(settings, db, SystemClock(), router)
    try:
        _serve(build_app(gateway.services), args.port)
    finally:
        gateway.close()
        db.dispose()


@dataclass
class Live:
    url: str
    process: subprocess.Popen[bytes]


def spawn(args: list[str], env: dict[str, str], log: Path) -> Live:
    port = free_port()
    with open(log, "ab") as out:
        process = start_process(
            [sys.executable, "-m", "tests.gateway.live", *args, "--port", str(port)],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    live = Live(f"http://127.0.0.1:{port}", process)
    wait_healthy(live.url, process, log, STARTUP_SECONDS)
    return live


def stop(live: Live) -> None:
    stop_process(live.process, grace_seconds=15)


@contextmanager
def running(args: list[str], env: dict[str, str], log: Path) -> Iterator[Live]:
    live = spawn(args, env, log)
    try:
        yield live
    finally:
        stop(live)


@contextmanager
def live_gateways(
    database_url: str,
    data_dir: Path,
    *,
    gateways: int = 1,
    redis_url: str | None = None,
    token_delay_seconds: float = 0.0,
    env: dict[str, str] | None = None,
    embeddings: bool = False,
) -> Iterator[tuple[Live, list[Live]]]:
    """A test replica (or, with ``embeddings``, the real embedding replica serving
    ``EMBEDDINGS_MODEL``) and ``gateways`` gateway processes in front of it."""
    extra = {"TOKENMILL_DATA_DIR": str(data_dir), "TOKENMILL_CONFIG": str(data_dir / "none")}
    extra.update(env or {})
    if redis_url:
        extra["TOKENMILL_REDIS_URL"] = redis_url
    log = data_dir / "live.log"
    with ExitStack() as stack:
        model = EMBEDDINGS_MODEL if embeddings else MODEL
        role = ["embeddings"] if embeddings else ["replica"]
        replica = stack.enter_context(
            running(
                [*role, "--model", model, "--token-delay", str(token_delay_seconds)], extra, log
            )
        )
        gateway = ["gateway", "--replica", replica.url, "--database", database_url]
        started = [
            stack.enter_context(running([*gateway, "--model", model], extra, log))
            for _ in range(gateways)
        ]
        yield replica, started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["replica", "embeddings", "gateway"])
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token-delay", type=float, default=0.0)
    parser.add_argument("--replica")
    parser.add_argument("--database")
    args = parser.parse_args()
    if args.role == "replica":
        _serve(TestReplica(args.token_delay), args.port)
    elif args.role == "embeddings":
        from tokenmill.engine.embed.__main__ import main as embed

        embed(
            ["--served-name", served_name(args.model), "--port", str(args.port), "--threads", "1"]
        )
    else:
        run_gateway(args)


if __name__ == "__main__":
    main()
