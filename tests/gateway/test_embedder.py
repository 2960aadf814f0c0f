"""Vector store embeddings through the router: batched, in order, metered to the tenant."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.gateway.support import JsonReplica, ListSink, principal
from tokenmill.billing.counters import LocalBudgetCounters
from tokenmill.billing.ledger import LedgerRepository
from tokenmill.billing.pricebook import PriceBookRepository
from tokenmill.billing.pricing import Price, TokenUsage
from tokenmill.billing.sync import BillingSync
from tokenmill.clock import ManualClock, SystemClock
from tokenmill.control.keys import Role
from tokenmill.control.tenants import TenantRepository
from tokenmill.errors import InsufficientQuota, ServiceUnavailable, UpstreamError
from tokenmill.gateway.admission import Admission
from tokenmill.gateway.directory import ModelDirectory, ModelEntry
from tokenmill.gateway.embedder import PlatformEmbedder
from tokenmill.gateway.limits.local import LocalRateCounters
from tokenmill.gateway.relay import UpstreamClient
from tokenmill.gateway.routing import Router
from tokenmill.gateway.services import RequestIds
from tokenmill.store.db import Database

MODEL = "all-minilm-l6-v2"


def embeddings(request: dict[str, Any]) -> dict[str, Any]:
    """An embeddings replica's answer: a text's vector is [len(text), index]."""
    texts = request["input"]
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": [float(len(t)), float(i)]}
            for i, t in reversed(list(enumerate(texts)))
        ],
        "model": request["model"],
        "usage": {"prompt_tokens": 3 * len(texts), "total_tokens": 3 * len(texts)},
    }


@pytest.fixture
async def setup() -> AsyncIterator[tuple[PlatformEmbedder, JsonReplica, ListSink]]:
    replica = JsonReplica(embeddings)
    server = await asyncio.start_server(replica.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    entry = ModelEntry(
        id=MODEL,
        task="embeddings",
        context_tokens=256,
        owner_tenant_id=None,
        created_at=datetime.now(UTC),
    )
    router = Router()
    router.set_replicas(entry.served_name, [f"http://127.0.0.1:{port}"])
    upstream = UpstreamClient(10.0)
    sink = ListSink()

    def cost_of(model: str, usage: TokenUsage, at: datetime) -> int:
        return 7 * usage.prompt_tokens

    embedder = PlatformEmbedder(
        ModelDirectory([entry]),
        router,
        upstream,
        lambda: sink,
        SystemClock(),
        RequestIds(),
        cost_of,
        batch_size=2,
    )
    task = asyncio.create_task(embedder.run())
    await asyncio.sleep(0)
    yield embedder, replica, sink
    task.cancel()
    await upstream.close()
    server.close()


async def test_embeds_in_batches_in_order_and_meters_each(
    setup: tuple[PlatformEmbedder, JsonReplica, ListSink],
) -> None:
    embedder, replica, sink = setup
    texts = ["a", "bb", "ccc", "dddd", "eeeee"]
    vectors = await asyncio.to_thread(embedder.embed, "ten_a", "key_a", texts)
    assert [v[0] for v in vectors] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert [len(r["input"]) for r in replica.requests] == [2, 2, 1]
    assert {r["model"] for r in replica.requests} == {f"{MODEL}@1"}
    assert len(sink.events) == 3
    for event in sink.events:
        assert event.tenant_id == "ten_a" and event.key_id == "key_a"
        assert event.endpoint == "embeddings" and event.model == MODEL
        assert event.status == "ok" and event.cost_micros == 7 * event.prompt_tokens
    assert [e.prompt_tokens for e in sink.events] == [6, 6, 3]
    assert len({e.request_id for e in sink.events}) == 3


async def test_a_failing_replica_is_an_error_and_nothing_is_metered(
    setup: tuple[PlatformEmbedder, JsonReplica, ListSink],
) -> None:
    embedder, replica, sink = setup
    replica.status = 500
    with pytest.raises(UpstreamError):
        await asyncio.to_thread(embedder.embed, "ten_a", "key_a", ["a"])
    assert sink.events == []


def test_not_running_is_unavailable() -> None:
    embedder = PlatformEmbedder(
        ModelDirectory(),
        Router(),
        UpstreamClient(1.0),
        ListSink,
        SystemClock(),
        RequestIds(),
        lambda model, usage, at: 0,
    )
    with pytest.raises(ServiceUnavailable):
        embedder.embed("ten_a", "key_a", ["a"])


async def test_admit_refuses_what_the_tenants_credit_cannot_embed(
    setup: tuple[PlatformEmbedder, JsonReplica, ListSink], database: Database, clock: ManualClock
) -> None:
    """A file's worth of tokens at the embeddings price is checked against the tenant's credit
    and nothing stays reserved: the work is billed when it runs."""
    embedder, _, _ = setup
    tenant = TenantRepository(database, clock).create("acme")
    PriceBookRepository(database, clock).add(MODEL, Price(input_micros_per_mtok=10**6))
    LedgerRepository(database, clock).top_up(tenant.id, 1_000)  # 1,000 tokens' worth
    counters = LocalBudgetCounters()
    admission = Admission(BillingSync(database, clock, counters), LocalRateCounters(), clock)
    await admission.start()
    who = principal(tenant.id)

    await embedder.admit(admission, who, 1_000, "r1")
    await embedder.admit(admission, who, 1_000, "r2")  # the first reserved nothing
    with pytest.raises(InsufficientQuota) as refused:
        await embedder.admit(admission, who, 1_001, "r3")
    assert refused.value.status == 429 and refused.value.code == "insufficient_quota"
    await embedder.admit(None, who, 10**9, "r4")  # no admission configured: no check
    await embedder.admit(admission, principal(tenant.id, role=Role.PLATFORM_ADMIN), 10**9, "r5")
