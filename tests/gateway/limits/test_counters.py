"""The same behaviour from both rate-limit counter implementations: in-process and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tokenmill.gateway.limits.base import RateCounters
from tokenmill.gateway.limits.local import LocalRateCounters
from tokenmill.gateway.limits.policy import RateRequest, ScopeLimits
from tokenmill.gateway.limits.redis_counters import RedisRateCounters


@pytest.fixture(params=["local", pytest.param("redis", marks=pytest.mark.redis)])
async def counters(request: pytest.FixtureRequest) -> AsyncIterator[RateCounters]:
    if request.param == "local":
        yield LocalRateCounters()
        return
    url = request.getfixturevalue("redis_server")
    shared = RedisRateCounters.from_url(url, request.getfixturevalue("redis_namespace"))
    try:
        yield shared
    finally:
        await shared.close()


def ask(n: int, now: float, *scopes: ScopeLimits, tokens: int = 0) -> RateRequest:
    return RateRequest(f"req-{n}", scopes, tokens, now)


async def test_a_burst_gets_exactly_the_rpm_and_the_window_slides(counters: RateCounters) -> None:
    key = ScopeLimits("key:a", rpm=60)
    decisions = await asyncio.gather(*(counters.acquire(ask(i, 1000.0, key)) for i in range(200)))
    assert sum(d.admitted for d in decisions) == 60
    refused = next(d for d in decisions if not d.admitted)
    assert refused.retry_after_seconds == 60.0
    assert not (await counters.acquire(ask(300, 1059.9, key))).admitted
    assert (await counters.acquire(ask(301, 1060.0, key))).admitted


async def test_every_scope_must_admit_and_a_refusal_counts_nowhere(
    counters: RateCounters,
) -> None:
    key = ScopeLimits("key:a", rpm=10)
    tenant = ScopeLimits("tenant:t", rpm=1)
    first = await counters.acquire(ask(1, 0.0, key, tenant))
    assert first.admitted and first.requests is not None and first.requests.remaining == 0
    assert not (await counters.acquire(ask(2, 1.0, key, tenant))).admitted
    other_key = await counters.acquire(ask(3, 1.0, key))
    assert other_key.admitted and other_key.requests is not None
    assert other_key.requests.remaining == 8  # the refused request did not count


async def test_tokens_are_reserved_then_corrected(counters: RateCounters) -> None:
    scope = ScopeLimits("key:a", tpm=100)
    big = ask(1, 0.0, scope, tokens=80)
    assert (await counters.acquire(big)).admitted
    assert not (await counters.acquire(ask(2, 1.0, scope, tokens=30))).admitted
    await counters.finish(big, 10)  # it used far less than reserved
    decision = await counters.acquire(ask(3, 2.0, scope, tokens=30))
    assert decision.admitted and decision.tokens is not None and decision.tokens.remaining == 60


async def test_concurrency_slots_come_back_and_refused_requests_are_taken_back(
    counters: RateCounters,
) -> None:
    scope = ScopeLimits("key:a", rpm=2, concurrency=1)
    first = ask(1, 0.0, scope)
    assert (await counters.acquire(first)).admitted
    assert not (await counters.acquire(ask(2, 0.0, scope))).admitted
    await counters.finish(first, None)  # refused later (by the budget): as if never asked
    await counters.finish(first, None)  # twice is harmless
    assert (await counters.acquire(ask(3, 0.0, scope))).admitted
    await counters.finish(ask(3, 0.0, scope), 0)
    assert (await counters.acquire(ask(4, 0.0, scope))).admitted


async def test_thousands_of_entries_leave_the_window_at_once(counters: RateCounters) -> None:
    scope = ScopeLimits("key:a", rpm=10_000, tpm=10**9)
    for start in range(0, 2500, 250):
        await asyncio.gather(
            *(counters.acquire(ask(i, 0.0, scope, tokens=2)) for i in range(start, start + 250))
        )
    later = await counters.acquire(ask(9999, 61.0, scope, tokens=3))
    assert later.admitted and later.requests is not None and later.tokens is not None
    assert later.requests.remaining == 10_000 - 1
    assert later.tokens.remaining == 10**9 - 3
