"""A batch line sent as the batch's key: checked like the route checks it, posted through the
router whole (never streamed), metered at the batch price; its refusals are its answers."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import pytest

from tests.gateway.support import JsonReplica, ListSink, principal
from tokenmill.batches.lines import BatchRequest
from tokenmill.batches.objects import BatchInfo, RequestCounts
from tokenmill.batches.status import BatchStatus
from tokenmill.billing.pricing import TokenUsage
from tokenmill.clock import SystemClock
from tokenmill.control.keys import Principal
from tokenmill.errors import InsufficientQuota, RateLimited, TokenmillError
from tokenmill.gateway.batch_lines import PlatformLineSender
from tokenmill.gateway.directory import ModelDirectory, ModelEntry
from tokenmill.gateway.platform_calls import PlatformCaller
from tokenmill.gateway.relay import UpstreamClient
from tokenmill.gateway.routing import Router
from tokenmill.gateway.services import RequestIds

CHAT_MODEL, EMBED_MODEL = "smol", "minilm"
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def chat(request: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
    }


def batch(endpoint: str = "/v1/chat/completions") -> BatchInfo:
    return BatchInfo(
        "batch_1", "ten_a", "key_ten_a", endpoint, "file-1", "24h", BatchStatus.IN_PROGRESS,
        RequestCounts(), NOW, NOW + timedelta(hours=24),
    )  # fmt: skip


def line(body: dict[str, Any], url: str = "/v1/chat/completions") -> BatchRequest:
    return BatchRequest(4, "q-4", url, body)


@dataclasses.dataclass
class Setup:
    send: PlatformLineSender
    replica: JsonReplica
    sink: ListSink
    who: dict[str, Principal | None]
    caller: PlatformCaller


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    replica = JsonReplica(chat)
    server = await asyncio.start_server(replica.handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    entries = [
        ModelEntry(id=CHAT_MODEL, task="chat", context_tokens=2048, owner_tenant_id=None,
                   created_at=NOW),
        ModelEntry(id=EMBED_MODEL, task="embeddings", context_tokens=256, owner_tenant_id=None,
                   created_at=NOW),
        ModelEntry(id="theirs", task="chat", context_tokens=2048, owner_tenant_id="ten_b",
                   created_at=NOW),
    ]  # fmt: skip
    router = Router()
    for entry in entries:
        router.set_replicas(entry.served_name, [url])
    upstream = UpstreamClient(10.0)
    sink = ListSink()

    def cost_of(model: str, usage: TokenUsage, at: datetime) -> int:
        return 7 * usage.prompt_tokens + 5 * usage.completion_tokens

    caller = PlatformCaller(
        ModelDirectory(entries), router, upstream, lambda: sink, SystemClock(), RequestIds(),
        cost_of,
    )  # fmt: skip
    who: dict[str, Principal | None] = {"key_ten_a": principal("ten_a")}
    send = PlatformLineSender(caller, lambda key_id: who.get(key_id), Fraction(1, 2))
    task = asyncio.create_task(caller.run())
    await asyncio.sleep(0)
    yield Setup(send, replica, sink, who, caller)
    task.cancel()
    await upstream.close()
    server.close()


async def test_a_line_is_sent_whole_and_metered_at_the_batch_price(setup: Setup) -> None:
    body = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    result = await asyncio.to_thread(setup.send, batch(), line(body))
    assert result.succeeded and result.body == chat({})
    assert (result.line, result.custom_id) == (4, "q-4")
    sent = setup.replica.requests[0]
    assert sent["_path"] == "/v1/chat/completions" and sent["stream"] is False
    assert sent["model"] == f"{CHAT_MODEL}@1"
    assert sent["_headers"]["x-tokenmill-tenant"] == "ten_a"
    assert sent["_headers"]["x-tokenmill-priority"] == "flex"  # yields to interactive work
    [event] = setup.sink.events
    assert event.request_id == result.request_id and event.endpoint == "chat.completions"
    assert (event.tenant_id, event.key_id, event.model) == ("ten_a", "key_ten_a", CHAT_MODEL)
    assert (event.prompt_tokens, event.completion_tokens) == (11, 3)
    assert event.cost_micros == math.ceil((7 * 11 + 5 * 3) / 2)  # 46, the factor applied


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"model": "nowhere", "messages": [{"role": "user", "content": "x"}]}, 404,
         "model_not_found"),
        ({"model": "theirs", "messages": [{"role": "user", "content": "x"}]}, 404,
         "model_not_found"),
        ({"model": EMBED_MODEL, "messages": [{"role": "user", "content": "x"}]}, 400,
         "model_not_supported"),
        ({"model": CHAT_MODEL, "messages": "not a list"}, 400, None),
    ],
)  # fmt: skip
async def test_a_refused_line_is_answered_with_the_routes_error(
    setup: Setup, body: dict[str, Any], status: int, code: str | None
) -> None:
    result = await asyncio.to_thread(setup.send, batch(), line(body))
    assert result.status_code == status and not result.succeeded
    assert result.body is not None and set(result.body["error"]) >= {"message", "type"}
    if code is not None:
        assert result.body["error"]["code"] == code
    assert setup.replica.requests == [] and setup.sink.events == []


async def test_an_error_answer_of_the_replica_is_the_lines_answer_unmetered(
    setup: Setup,
) -> None:
    setup.replica.status = 422
    body = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "x"}]}
    result = await asyncio.to_thread(setup.send, batch(), line(body))
    assert result.status_code == 422 and setup.sink.events == []


async def test_a_revoked_key_answers_401(setup: Setup) -> None:
    setup.who["key_ten_a"] = dataclasses.replace(principal("ten_a"), revoked=True)
    body = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "x"}]}
    result = await asyncio.to_thread(setup.send, batch(), line(body))
    assert result.status_code == 401 and setup.replica.requests == []


async def test_a_line_is_admitted_like_a_clients_call(setup: Setup) -> None:
    """Out of credit, the line's answer is the 429; over a rate limit, it waits and goes."""
    asked: list[tuple[str, str, int | None]] = []
    refusals: list[TokenmillError] = [
        RateLimited("slow down", headers={"Retry-After": "2"}),
        InsufficientQuota("no credit left"),
    ]

    async def admit(who: Principal, entry: ModelEntry, parsed: Any, size: int, rid: str) -> None:
        asked.append((who.tenant_id, entry.id, parsed.sampling.max_tokens))
        if refusals:
            raise refusals.pop()

    slept: list[float] = []
    send = PlatformLineSender(
        setup.caller, lambda key_id: principal("ten_a"), Fraction(1, 2), admit, slept.append
    )
    body = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 5}
    broke = await asyncio.to_thread(send, batch(), line(body))
    assert broke.status_code == 429 and broke.body is not None
    assert broke.body["error"]["code"] == "insufficient_quota"
    assert setup.replica.requests == [] and setup.sink.events == []

    paced = await asyncio.to_thread(send, batch(), line(body))
    assert paced.succeeded and slept == [2.0] and len(setup.sink.events) == 1
    assert asked == [("ten_a", CHAT_MODEL, 5)] * 3
