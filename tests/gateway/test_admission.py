"""Admission against budgets: unit behaviour of tickets, and a live gateway under a burst."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import httpx
import pytest

from tests.billing.test_journal import Collect, on_a_full_disk
from tests.billing.test_usage import usage_event
from tests.gateway.live import MODEL, PROMPT_TOKENS, live_gateways, running
from tests.gateway.support import principal
from tokenmill.billing.budget import reservation_micros
from tokenmill.billing.counters import LocalBudgetCounters
from tokenmill.billing.journal import FALLBACK_GRACE_SECONDS, UsageJournal
from tokenmill.billing.ledger import EntryKind, LedgerRepository
from tokenmill.billing.pricebook import PriceBookRepository
from tokenmill.billing.pricing import Price, TokenUsage, cost_micros
from tokenmill.billing.sync import BillingSync, Limits, TenantTerms
from tokenmill.billing.usage import UsageRepository
from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import ManualClock, SystemClock
from tokenmill.control.keys import KeyRepository
from tokenmill.control.tenants import TenantRepository
from tokenmill.errors import InsufficientQuota, MeteringUnavailable
from tokenmill.gateway.admission import Admission, scopes_of
from tokenmill.gateway.directory import ModelEntry
from tokenmill.gateway.limits.local import LocalRateCounters
from tokenmill.gateway.limits.policy import ScopeLimits
from tokenmill.store.db import Database

PRICE = Price(1_000_000, 500_000, 2_000_000, request_micros=1_000)
MAX_TOKENS = 20


def entry(context_tokens: int = 4096) -> ModelEntry:
    return ModelEntry(MODEL, "chat", context_tokens, None, ManualClock().utcnow())


async def test_a_reservation_is_settled_once_and_refusals_say_why(
    database: Database, clock: ManualClock
) -> None:
    tenant = TenantRepository(database, clock).create("acme")
    PriceBookRepository(database, clock).add(MODEL, PRICE)
    bound = reservation_micros(100, MAX_TOKENS, 1, 4096, PRICE)
    LedgerRepository(database, clock).top_up(tenant.id, bound)
    counters = LocalBudgetCounters()
    admission = Admission(BillingSync(database, clock, counters), LocalRateCounters(), clock)
    await admission.start()
    who = principal(tenant.id)

    ticket = await admission.admit(who, entry(), MAX_TOKENS, 1, 100, "r1")
    with pytest.raises(InsufficientQuota) as refused:
        await admission.admit(who, entry(), MAX_TOKENS, 1, 100, "r2")
    assert refused.value.status == 429 and refused.value.code == "insufficient_quota"

    ticket.settle(1_234, 30)
    ticket.settle(0, 0)  # a second settle (a release on another path) changes nothing
    ticket.release()
    await admission.drain()
    state = await counters.state(tenant.id, who.key_id, "2026-01")
    assert state.available_micros == bound - 1_234
    assert state.key_month_micros == 1_234


async def test_free_models_reserve_nothing(database: Database, clock: ManualClock) -> None:
    counters = LocalBudgetCounters()
    admission = Admission(BillingSync(database, clock, counters), LocalRateCounters(), clock)
    await admission.start()
    ticket = await admission.admit(principal(), entry(), None, 1, 10_000, "r1")
    assert ticket.budget is None
    assert ticket.cost_micros(MODEL, TokenUsage(10, 0, 10), clock.utcnow()) == 0


async def test_new_work_waits_while_usage_would_be_safe_nowhere(
    database: Database, clock: ManualClock, tmp_path: Path
) -> None:
    """The journal's disk is full and the database has not taken what could not be written:
    new requests are refused with a 503 (and Retry-After) until it has."""
    journal = UsageJournal(tmp_path, Collect(), clock.utcnow, monotonic=clock.monotonic)
    on_a_full_disk(tmp_path, 1)
    journal.start()
    counters = LocalBudgetCounters()
    sync = BillingSync(database, clock, counters)
    admission = Admission(sync, LocalRateCounters(), clock, metering=journal)
    await admission.start()
    event = usage_event("req-0")
    await journal.record(event)  # the write failed; the event waits for the database
    await admission.admit(principal(), entry(), None, 1, 100, "r1")  # it has a moment
    clock.advance(FALLBACK_GRACE_SECONDS)
    with pytest.raises(MeteringUnavailable) as refused:
        await admission.admit(principal(), entry(), None, 1, 100, "r2")
    error = refused.value
    assert (error.status, error.code, error.headers) == (
        503,
        "metering_unavailable",
        {"Retry-After": "5"},
    )
    journal.ingested([event])  # the database has it now
    await admission.admit(principal(), entry(), None, 1, 100, "r3")
    await asyncio.to_thread(journal.close)


def test_the_reservation_bounds_what_a_request_can_use() -> None:
    # The prompt is bounded by the body's bytes (plus a template margin) and the context.
    assert reservation_micros(10, 5, 1, 4096, Price(output_micros_per_mtok=10**6)) == 5
    assert reservation_micros(10**6, None, 2, 100, Price(10**6, 0, 10**6)) == 100 + 200


def redis_env(request: pytest.FixtureRequest, shared: str) -> dict[str, str]:
    """Gateway settings for counters in-process (``local``) or in the test's Redis namespace."""
    if shared == "local":
        return {}
    return {
        "TOKENMILL_REDIS_URL": request.getfixturevalue("redis_server"),
        "TOKENMILL_REDIS_NAMESPACE": request.getfixturevalue("redis_namespace"),
    }


@pytest.mark.parametrize("counters", ["local", pytest.param("redis", marks=pytest.mark.redis)])
@pytest.mark.parametrize("stream", [False, True])
def test_64_concurrent_requests_against_credit_for_10(
    database: Database, tmp_path: Path, stream: bool, counters: str, request: pytest.FixtureRequest
) -> None:
    """No overdraft: settled spend stays within the credit, the ledger never goes below zero,
    and refused requests are refused with insufficient_quota before reaching the replica."""
    clock = SystemClock()
    tenants = TenantRepository(database, clock)
    tenant = tenants.create("acme")
    tenants.update_terms(tenant.id, {"share_weight": 3})  # passed on to the replica
    _, secret = KeyRepository(database, clock).create(tenant.id, "burst")
    ModelRepository(database, clock).register(MODEL, task="chat", artifact="-", context_tokens=4096)
    PriceBookRepository(database, clock).add(MODEL, PRICE)
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": MAX_TOKENS,
        "stream": stream,
    }
    size = len(httpx.Request("POST", "http://x", json=body).content)
    credit = 10 * reservation_micros(size, MAX_TOKENS, 1, 4096, PRICE)
    ledger = LedgerRepository(database, clock)
    ledger.top_up(tenant.id, credit)
    url = database.url.render_as_string(hide_password=False)

    with live_gateways(url, tmp_path, env=redis_env(request, counters)) as (replica, [gateway]):

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
                return await asyncio.gather(
                    *(
                        client.post(
                            "/v1/chat/completions",
                            json=body,
                            headers={"authorization": f"Bearer {secret}"},
                        )
                        for _ in range(64)
                    )
                )

        responses = asyncio.run(burst())
        stats = httpx.get(f"{replica.url}/stats").json()
        reached = stats["completions"]

    assert stats["tenants"] == {tenant.id: "3"}
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert len(ok) >= 10
    assert {r.status_code for r in refused} <= {429}
    assert all(r.json()["error"]["code"] == "insufficient_quota" for r in refused)
    assert reached == len(ok)

    usage = UsageRepository(database)
    one = cost_micros(TokenUsage(PROMPT_TOKENS, 0, MAX_TOKENS), PRICE)
    assert all(usage.get(r.headers["x-request-id"]).cost_micros == one for r in ok)  # type: ignore[union-attr]
    running = 0
    for item in ledger.entries(tenant.id):
        running += item.amount_micros
        assert running >= 0
    debits = ledger.entries(tenant.id, kinds=[EntryKind.USAGE])
    assert len(debits) == len(ok)
    assert -sum(d.amount_micros for d in debits) == one * len(ok) <= credit


def test_rpm_60_shared_by_two_gateways_over_redis(
    database: Database, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A burst of 200 spread over two gateway processes admits at most 60; the rest are 429
    rate_limit_exceeded with Retry-After, and answers carry the x-ratelimit-* headers."""
    clock = SystemClock()
    tenant = TenantRepository(database, clock).create("acme")
    _, secret = KeyRepository(database, clock).create(tenant.id, "limited", terms={"rpm_limit": 60})
    ModelRepository(database, clock).register(MODEL, task="chat", artifact="-", context_tokens=4096)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    url = database.url.render_as_string(hide_password=False)
    env = redis_env(request, "redis")

    with live_gateways(url, tmp_path, gateways=2, env=env) as (replica, gateways):

        async def burst() -> list[httpx.Response]:
            clients = [httpx.AsyncClient(base_url=g.url, timeout=30) for g in gateways]
            try:
                return await asyncio.gather(
                    *(
                        clients[i % 2].post(
                            "/v1/chat/completions",
                            json=body,
                            headers={"authorization": f"Bearer {secret}"},
                        )
                        for i in range(200)
                    )
                )
            finally:
                for client in clients:
                    await client.aclose()

        responses = asyncio.run(burst())
        reached = httpx.get(f"{replica.url}/stats").json()["completions"]

    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert 0 < len(ok) <= 60
    assert reached == len(ok)
    assert {r.status_code for r in refused} == {429}
    assert all(r.json()["error"]["code"] == "rate_limit_exceeded" for r in refused)
    assert all(int(r.headers["retry-after"]) >= 1 for r in refused)
    assert {r.headers["x-ratelimit-limit-requests"] for r in ok} == {"60"}
    remaining = sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in ok)
    assert remaining[0] == 60 - len(ok)


def test_kill_9_with_20_streams_in_flight_loses_and_doubles_nothing(
    database: Database, tmp_path: Path
) -> None:
    """Every request that produced tokens ends with exactly one usage record and one debit:
    the ones that finished from their journaled event, the ones cut off from their start."""
    clock = SystemClock()
    tenant = TenantRepository(database, clock).create("acme")
    _, secret = KeyRepository(database, clock).create(tenant.id, "streams")
    ModelRepository(database, clock).register(MODEL, task="chat", artifact="-", context_tokens=4096)
    PriceBookRepository(database, clock).add(MODEL, PRICE)
    LedgerRepository(database, clock).top_up(tenant.id, 10**12)
    url = database.url.render_as_string(hide_password=False)
    headers = {"authorization": f"Bearer {secret}"}

    def body(max_tokens: int) -> dict[str, object]:
        return {
            "model": MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": max_tokens,
            "stream": True,
        }

    async def streams(base_url: str, stop: asyncio.Event) -> list[str]:
        """5 short streams that finish, 15 long ones still streaming at the kill."""
        ids: list[str] = []
        started = asyncio.Event()
        finished: list[str] = []
        streaming: set[str] = set()

        async def one(client: httpx.AsyncClient, max_tokens: int) -> None:
            async with client.stream(
                "POST", "/v1/chat/completions", json=body(max_tokens), headers=headers
            ) as response:
                request_id = response.headers["x-request-id"]
                ids.append(request_id)
                chunks = 0
                try:
                    async for line in response.aiter_lines():
                        chunks += line.startswith("data: {")
                        if chunks == 10:
                            streaming.add(request_id)
                        if len(finished) == 5 and len(streaming) == 15:
                            started.set()
                except httpx.HTTPError:
                    return  # the gateway died under us
                finished.append(request_id)

        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            tasks = [asyncio.create_task(one(client, 3 if i < 5 else 400)) for i in range(20)]
            await asyncio.wait_for(started.wait(), 30)
            stop.set()
            await asyncio.wait(tasks, timeout=30)
        return ids

    with live_gateways(url, tmp_path, token_delay_seconds=0.02) as (replica, [gateway]):

        async def run() -> list[str]:
            stop = asyncio.Event()
            task = asyncio.create_task(streams(gateway.url, stop))
            await stop.wait()
            gateway.process.kill()  # SIGKILL: no shutdown, no flush
            gateway.process.wait()
            return await task

        ids = asyncio.run(run())
        assert len(ids) == 20
        # Restart on the same data directory: the journal is replayed before serving.
        with running(
            ["gateway", "--replica", replica.url, "--database", url],
            {"TOKENMILL_DATA_DIR": str(tmp_path), "TOKENMILL_CONFIG": str(tmp_path / "none")},
            tmp_path / "restart.log",
        ):
            pass

    usage = UsageRepository(database)
    debits = LedgerRepository(database, clock).entries(tenant.id, kinds=[EntryKind.USAGE])
    by_request = [d.idempotency_key.removeprefix("usage:") for d in debits]
    assert sorted(by_request) == sorted(ids)  # one debit each, none twice
    events = [usage.get(request_id) for request_id in ids]
    assert all(e is not None and e.cost_micros > 0 for e in events)
    finished = [e for e in events if e is not None and e.status == "ok"]
    cut_off = [e for e in events if e is not None and e.error_code == "gateway_restarted"]
    assert len(finished) >= 5
    assert len(finished) + len(cut_off) == 20
    assert all(e.completion_tokens >= 1 for e in cut_off)  # their streamed tokens, journaled


def test_limits_apply_per_key_per_tenant_and_per_tenant_model() -> None:
    who = dataclasses.replace(principal("ten_a"), rpm_limit=10)
    terms = TenantTerms(
        limits=Limits(tpm=1000), model_limits={MODEL: Limits(concurrency=2), "other": Limits(1)}
    )
    assert scopes_of(who, terms, MODEL) == (
        ScopeLimits(f"key:{who.key_id}", rpm=10),
        ScopeLimits("tenant:ten_a", tpm=1000),
        ScopeLimits(f"tenant-model:ten_a:{MODEL}", concurrency=2),
    )
    assert scopes_of(principal("ten_b"), TenantTerms(), MODEL) == ()  # nothing to count
