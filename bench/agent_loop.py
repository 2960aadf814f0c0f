"""Agent loop overhead: what a response with two platform-run searches costs beyond its calls.

    .venv/bin/python bench/agent_loop.py [--rounds 30] [--out bench/results/agent_loop.json]

Three processes, as ``bench/gateway.py``: a scripted replica that answers at once, the real
gateway in front of it (journal and admission on, a vector store indexed through it), and
this client. The replica serves the chat model (a call of ``file_search`` while the request
holds fewer than two tool results, then an answer) and the embeddings model (a fixed vector
per text). Each round times, in the same run:

- ``response``: one ``POST /v1/responses`` whose loop makes three model calls and two searches;
- ``calls``: the same three chat calls and two searches made by the client itself through the
  gateway (``/v1/chat/completions`` streamed, ``/v1/vector_stores/{id}/search``);
- ``chat``: the three chat calls alone;
- ``mcp_response``: a response whose loop lists an MCP server's tools (the test MCP server,
  streamable HTTP on a local port) and makes three model calls and two MCP calls;
- ``mcp_calls``: the same listing, chat calls and MCP calls made by the client, a session per
  operation (the platform keeps one session per server for a whole response).

``response - calls`` is the platform time the loop adds beyond the calls it makes (bookkeeping,
events, storing the response; the client's extra round trips count against it), and
``calls - chat`` what the two searches cost. Medians over rounds; read the differences.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.gateway import MODEL, _wait, read_body
from tests.plugins.mcp_server import running
from tokenmill.fleet.local import free_port

EMBEDDINGS = "all-minilm-l6-v2"
DIMENSIONS = 384
QUERIES = ("parental leave", "travel expenses")
ADDS = ({"a": 2, "b": 3}, {"a": 5, "b": 8})
HANDBOOK = (
    "# Handbook\n\n## Parental leave\nEvery employee may take sixteen weeks of paid parental "
    "leave.\n\n## Expenses\nTravel expenses are refunded within thirty days.\n"
)


def _vector(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [(digest[i % 32] - 127.5) / 127.5 for i in range(DIMENSIONS)]


def _sse(*chunks: dict[str, Any]) -> bytes:
    head = {"id": "chatcmpl-b", "object": "chat.completion.chunk", "created": 0, "model": MODEL}
    return b"".join(b"data: " + orjson.dumps({**head, **c}) + b"\n\n" for c in chunks) + (
        b"data: [DONE]\n\n"
    )


def _chat(request: dict[str, Any]) -> bytes:
    """A search (or, when it is offered, a call of the MCP tool ``add``) while fewer than two
    tool results are in the request, then an answer."""
    searched = sum(1 for m in request["messages"] if m["role"] == "tool")
    usage = {"choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 8}}
    offered = {tool["function"]["name"] for tool in request.get("tools") or ()}
    if searched < len(QUERIES):
        name = "add" if "add" in offered else "file_search"
        arguments = orjson.dumps(
            ADDS[searched] if name == "add" else {"query": QUERIES[searched]}
        ).decode()
        call = {"index": 0, "id": f"call_{searched}", "type": "function",
                "function": {"name": name, "arguments": arguments}}  # fmt: skip
        return _sse(
            {"choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
            usage,
        )
    return _sse(
        {
            "choices": [
                {"index": 0, "delta": {"content": "Sixteen weeks [1]."}, "finish_reason": None}
            ]
        },
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        usage,
    )


async def replica_app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    body = await read_body(receive)
    media = b"application/json"
    if scope["method"] == "DELETE":
        payload = b'{"usage": {"prompt_tokens": 1, "completion_tokens": 0}}'
    elif scope["path"] == "/health":
        payload = b'{"status": "ok"}'
    elif scope["path"] == "/v1/embeddings":
        texts = orjson.loads(body)["input"]
        texts = [texts] if isinstance(texts, str) else texts
        data = [{"object": "embedding", "index": i, "embedding": _vector(t)}
                for i, t in enumerate(texts)]  # fmt: skip
        tokens = sum(len(t.split()) for t in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        payload = orjson.dumps(
            {"object": "list", "data": data, "model": EMBEDDINGS, "usage": usage}
        )
    else:
        payload, media = _chat(orjson.loads(body)), b"text/event-stream"
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", media)]}
    )
    await send({"type": "http.response.body", "body": payload})


def run_replica(port: int) -> None:
    import uvicorn

    uvicorn.run(replica_app, host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                access_log=False, log_level="warning")  # fmt: skip


def run_gateway(port: int, replica_port: int, data_dir: Path) -> None:
    import uvicorn

    from tokenmill.catalog.repository import ModelRepository
    from tokenmill.clock import SystemClock
    from tokenmill.control.bootstrap import ensure_admin
    from tokenmill.gateway.app import build_app
    from tokenmill.gateway.compose import build_gateway
    from tokenmill.gateway.routing import Router
    from tokenmill.settings import Settings
    from tokenmill.store.db import Database

    clock = SystemClock()
    db = Database(f"sqlite:///{data_dir / 'bench.db'}")
    db.migrate()
    secret = ensure_admin(db, clock)
    assert secret is not None
    (data_dir / "key").write_text(secret)
    models = ModelRepository(db, clock)
    models.register(MODEL, task="chat", artifact="bench", context_tokens=4096)
    models.register(EMBEDDINGS, task="embeddings", artifact="bench", context_tokens=256)
    router = Router()
    for name in (MODEL, EMBEDDINGS):
        router.set_replicas(f"{name}@1", [f"http://127.0.0.1:{replica_port}"])
    gateway = build_gateway(Settings(data_dir=data_dir), db, clock, router)
    try:
        uvicorn.run(build_app(gateway.services), host="127.0.0.1", port=port, loop="uvloop",
                    http="httptools", access_log=False, log_level="warning")  # fmt: skip
    finally:
        gateway.close()


def _tenant(http: httpx.Client) -> str:
    return str(http.get("/admin/v1/me").json()["tenant_id"])


def _store(http: httpx.Client) -> str:
    uploaded = http.post(
        "/v1/files", files={"file": ("handbook.md", HANDBOOK.encode())},
        data={"purpose": "assistants"},
    ).json()  # fmt: skip
    store = http.post("/v1/vector_stores", json={"name": "hb", "file_ids": [uploaded["id"]]})
    store_id = str(store.json()["id"])
    deadline = time.monotonic() + 60
    while http.get(f"/v1/vector_stores/{store_id}").json()["file_counts"]["completed"] < 1:
        if time.monotonic() > deadline:
            raise SystemExit("the handbook was not indexed within 60 s")
        time.sleep(0.2)
    return store_id


def _response(http: httpx.Client, store_id: str) -> float:
    started = time.perf_counter()
    reply = http.post("/v1/responses", json={
        "model": MODEL, "input": "How long is parental leave?",
        "tools": [{"type": "file_search", "vector_store_ids": [store_id]}],
    })  # fmt: skip
    elapsed = time.perf_counter() - started
    kinds = [item["type"] for item in reply.json()["output"]]
    assert kinds == ["file_search_call", "file_search_call", "message"], reply.text
    return elapsed


def _mcp_response(http: httpx.Client) -> float:
    started = time.perf_counter()
    reply = http.post("/v1/responses", json={
        "model": MODEL, "input": "What is 2 + 3, plus 5 + 8?",
        "tools": [{"type": "mcp", "server_label": "calc", "require_approval": "never"}],
    })  # fmt: skip
    elapsed = time.perf_counter() - started
    kinds = [item["type"] for item in reply.json()["output"]]
    assert kinds == ["mcp_list_tools", "mcp_call", "mcp_call", "message"], reply.text
    return elapsed


def _mcp_calls(http: httpx.Client, url: str) -> float:
    """The loop's three chat calls and two MCP calls (each its own session, as the platform
    makes them, with the same SDK) made by the client, in order; the tools listed first."""
    import asyncio

    from tokenmill.plugins.client import Endpoint, McpClient

    client, endpoint = McpClient(), Endpoint("calc", url)
    messages: list[dict[str, Any]] = [{"role": "user", "content": "What is 2 + 3?"}]
    started = time.perf_counter()
    listed = asyncio.run(client.list_tools(endpoint))
    tools = [{"type": "function", "function": {"name": t["name"], "parameters": t["input_schema"]}}
             for t in listed.tools]  # fmt: skip
    for n in range(len(ADDS) + 1):
        body = {"model": MODEL, "messages": messages, "stream": True, "tools": tools}
        with http.stream("POST", "/v1/chat/completions", json=body) as reply:
            for _ in reply.iter_bytes():
                pass
        if n < len(ADDS):
            called = asyncio.run(client.call(endpoint, "add", ADDS[n]))
            call = {"id": f"call_{n}", "type": "function",
                    "function": {"name": "add", "arguments": json.dumps(ADDS[n])}}  # fmt: skip
            messages = [*messages, {"role": "assistant", "content": None, "tool_calls": [call]},
                        {"role": "tool", "tool_call_id": f"call_{n}",
                         "content": called.output or ""}]  # fmt: skip
    return time.perf_counter() - started


def _calls(http: httpx.Client, store_id: str, searches: bool) -> float:
    """The loop's three chat calls (and its two searches) made by the client, in order."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "How long is parental leave?"}]
    started = time.perf_counter()
    for n in range(len(QUERIES) + 1):
        body = {"model": MODEL, "messages": messages, "stream": True}
        with http.stream("POST", "/v1/chat/completions", json=body) as reply:
            for _ in reply.iter_bytes():
                pass
        if n < len(QUERIES):
            text = ""
            if searches:
                found = http.post(f"/v1/vector_stores/{store_id}/search",
                                  json={"query": QUERIES[n]}).json()  # fmt: skip
                text = json.dumps(found["data"])
            call = {"id": f"call_{n}", "type": "function",
                    "function": {"name": "file_search", "arguments": "{}"}}  # fmt: skip
            messages = [*messages, {"role": "assistant", "content": None, "tool_calls": [call]},
                        {"role": "tool", "tool_call_id": f"call_{n}", "content": text}]  # fmt: skip
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("bench/results/agent_loop.json"))
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="tm-agent-loop-"))
    replica_port, port = free_port(), free_port()
    replica = multiprocessing.Process(target=run_replica, args=(replica_port,), daemon=True)
    gateway = multiprocessing.Process(
        target=run_gateway, args=(port, replica_port, data_dir), daemon=True
    )
    replica.start()
    gateway.start()
    try:
        _wait(f"http://127.0.0.1:{port}/health")
        key = (data_dir / "key").read_text()
        headers = {"authorization": f"Bearer {key}"}
        with (
            httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as http,
            running() as mcp_url,
        ):
            store_id = _store(http)
            registered = http.post(
                f"/admin/v1/tenants/{_tenant(http)}/mcp_servers",
                json={"label": "calc", "url": mcp_url, "require_approval": "never"},
            )
            assert registered.is_success, registered.text
            for _ in range(3):  # warm: connections, caches, the first query's snapshot
                _response(http, store_id), _calls(http, store_id, True)
                _mcp_response(http), _mcp_calls(http, mcp_url)
            times: dict[str, list[float]] = {
                "response": [], "calls": [], "chat": [], "mcp_response": [], "mcp_calls": []
            }  # fmt: skip
            for _ in range(args.rounds):  # alternating, so drift hits all alike
                times["response"].append(_response(http, store_id))
                times["calls"].append(_calls(http, store_id, True))
                times["chat"].append(_calls(http, store_id, False))
                times["mcp_response"].append(_mcp_response(http))
                times["mcp_calls"].append(_mcp_calls(http, mcp_url))
    finally:
        gateway.terminate()
        replica.terminate()
    median = {name: statistics.median(values) * 1000 for name, values in times.items()}
    report = {
        "rounds": args.rounds,
        "median_ms": median,
        "loop_beyond_calls_ms": median["response"] - median["calls"],
        "two_searches_ms": median["calls"] - median["chat"],
        "mcp_loop_beyond_calls_ms": median["mcp_response"] - median["mcp_calls"],
        "mcp_listing_and_two_calls_ms": median["mcp_calls"] - median["chat"],
        "mcp_response_beyond_chat_ms": median["mcp_response"] - median["chat"],
    }
    print(f"{'what':<44}{'median ms':>10}")
    print(f"{'response (3 model calls, 2 searches)':<44}{median['response']:>10.1f}")
    print(f"{'the same calls and searches by the client':<44}{median['calls']:>10.1f}")
    print(f"{'the 3 chat calls alone':<44}{median['chat']:>10.1f}")
    print(f"{'loop beyond its calls':<44}{report['loop_beyond_calls_ms']:>10.1f}")
    print(f"{'two searches':<44}{report['two_searches_ms']:>10.1f}")
    print(f"{'response (3 model calls, 2 MCP calls)':<44}{median['mcp_response']:>10.1f}")
    print(f"{'the same calls and MCP calls by the client':<44}{median['mcp_calls']:>10.1f}")
    print(f"{'MCP loop beyond its calls':<44}{report['mcp_loop_beyond_calls_ms']:>10.1f}")
    print(f"{'listing + two MCP calls (new sessions)':<44}"
          f"{report['mcp_listing_and_two_calls_ms']:>10.1f}")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
