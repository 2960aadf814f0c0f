"""The same behaviour from both budget counter implementations: in-process and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tokenmill.billing.budget import BudgetRequest, BudgetState
from tokenmill.billing.counters import BudgetCounters, BudgetSeed, LocalBudgetCounters
from tokenmill.billing.redis_counters import RedisBudgetCounters
from tokenmill.errors import ServiceUnavailable
from tokenmill.fleet.local import free_port
from tokenmill.gateway.limits.policy import RateRequest, ScopeLimits
from tokenmill.gateway.limits.redis_counters import RedisRateCounters

MONTH = "2026-11"


@pytest.fixture(params=["local", pytest.param("redis", marks=pytest.mark.redis)])
async def counters(request: pytest.FixtureRequest) -> AsyncIterator[BudgetCounters]:
    if request.param == "local":
        yield LocalBudgetCounters()
        return
    url = request.getfixturevalue("redis_server")
    shared = RedisBudgetCounters.from_url(url, request.getfixturevalue("redis_namespace"))
    try:
        yield shared
    finally:
        await shared.close()


def ask(amount: int, *, tenant_cap: int | None = None, key_cap: int | None = None) -> BudgetRequest:
    return BudgetRequest("ten_a", "key_a", MONTH, amount, tenant_cap, key_cap)


async def test_reserve_settle_and_release(counters: BudgetCounters) -> None:
    await counters.seed(BudgetSeed(MONTH, balances_micros={"ten_a": 100}))
    first, second = ask(60), ask(30)
    assert await counters.reserve(first) is None
    assert await counters.reserve(second) is None
    assert await counters.state("ten_a", "key_a", MONTH) == BudgetState(10, 90, 90)
    refused = await counters.reserve(ask(11))
    assert refused is not None and refused.reason == "credit"
    await counters.settle(first, 25)  # cost less than reserved: the rest comes back
    await counters.settle(second, 0)  # released
    assert await counters.state("ten_a", "key_a", MONTH) == BudgetState(75, 25, 25)


async def test_caps_per_tenant_and_per_key(counters: BudgetCounters) -> None:
    await counters.seed(
        BudgetSeed(MONTH, balances_micros={"ten_a": 1000}, tenant_spend_micros={"ten_a": 50})
    )
    refused = await counters.reserve(ask(51, tenant_cap=100))
    assert refused is not None and refused.reason == "tenant_cap"
    assert await counters.reserve(ask(50, tenant_cap=100, key_cap=50)) is None
    refused = await counters.reserve(ask(1, key_cap=50))
    assert refused is not None and refused.reason == "key_cap"
    assert await counters.reserve(ask(0, key_cap=0)) is None  # free requests always pass


async def test_credits_count_once_and_seed_only_once(counters: BudgetCounters) -> None:
    assert await counters.seed(BudgetSeed(MONTH, {"ten_a": 5}, credit_entry_ids=(7,)))
    assert not await counters.seed(BudgetSeed(MONTH, {"ten_a": 999}))
    assert not await counters.credit("ten_a", 7, 5)  # already in the seeded balance
    assert await counters.credit("ten_a", 8, 20)
    assert not await counters.credit("ten_a", 8, 20)
    assert (await counters.state("ten_a", "key_a", MONTH)).available_micros == 25


async def test_concurrent_reservations_never_overdraw(counters: BudgetCounters) -> None:
    """64 requests at once against credit for 10 of them: exactly 10 are admitted."""
    await counters.seed(BudgetSeed(MONTH, {"ten_a": 10 * 1000}))
    outcomes = await asyncio.gather(*(counters.reserve(ask(1000)) for _ in range(64)))
    assert sum(outcome is None for outcome in outcomes) == 10
    assert (await counters.state("ten_a", "key_a", MONTH)).available_micros == 0


async def test_an_unreachable_redis_is_a_503_to_retry_not_a_server_error() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    budgets = RedisBudgetCounters.from_url(url, "tm_test:down")
    with pytest.raises(ServiceUnavailable) as refused:
        await budgets.reserve(ask(10))
    assert refused.value.status == 503 and refused.value.headers == {"Retry-After": "2"}
    rates = RedisRateCounters.from_url(url, "tm_test:down")
    scope = ScopeLimits("key:key_a", 60, None, None)
    with pytest.raises(ServiceUnavailable):
        await rates.acquire(RateRequest("req-1", (scope,), 10, 0.0))
    await budgets.close()
    await rates.close()
