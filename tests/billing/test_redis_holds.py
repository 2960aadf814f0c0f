"""Budget reservations held in Redis by the gateway that made them: a gateway that dies
mid-request gets them back (settled to what its journal replayed, the rest given back) when
it starts again in the same slot, or loses them to the lease when it never comes back; a
settle arriving after either counts once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from tokenmill.billing.budget import BudgetRequest, BudgetState
from tokenmill.billing.counters import BudgetSeed
from tokenmill.billing.redis_counters import RESERVATION_LEASE_SECONDS, RedisBudgetCounters
from tokenmill.store.redisclient import connect

pytestmark = pytest.mark.redis

MONTH = "2026-12"


class Now:
    def __init__(self) -> None:
        self.seconds = 1_800_000_000.0

    def __call__(self) -> float:
        return self.seconds


Opener = Callable[[str, Now], AbstractAsyncContextManager[RedisBudgetCounters]]


@pytest.fixture
def gateway(redis_server: str, redis_namespace: str) -> Opener:
    """Budget counters as one gateway holds them, under ``holder``, at ``now``."""

    @asynccontextmanager
    async def opened(holder: str, now: Now) -> AsyncIterator[RedisBudgetCounters]:
        counters = RedisBudgetCounters(connect(redis_server), redis_namespace, holder, now)
        try:
            yield counters
        finally:
            await counters.close()

    return opened


def ask(request_id: str, amount: int) -> BudgetRequest:
    return BudgetRequest("ten_a", "key_a", MONTH, amount, request_id=request_id)


async def state(counters: RedisBudgetCounters) -> BudgetState:
    return await counters.state("ten_a", "key_a", MONTH)


async def test_a_gateway_that_comes_back_settles_what_it_held_to_its_replayed_costs(
    gateway: Opener,
) -> None:
    now = Now()
    async with gateway("host:slot-1", now) as first:
        await first.seed(BudgetSeed(MONTH, balances_micros={"ten_a": 1000}))
        for request_id, amount in (("req-1", 300), ("req-2", 200), ("req-3", 100)):
            assert await first.reserve(ask(request_id, amount)) is None
        await first.settle(ask("req-3", 100), 40)  # finished, settled, not yet ingested
        assert await state(first) == BudgetState(460, 540, 540)
    # killed: req-1 was cut off after 120 micros of work (replayed), req-2 never began;
    # req-3's event is replayed too, already settled
    async with gateway("host:slot-1", now) as again:
        reclaimed = await again.reclaim([("req-1", 120), ("req-3", 40)])
        assert reclaimed == 2
        assert await state(again) == BudgetState(840, 160, 160)
        assert await again.reclaim([("req-1", 120)]) == 0  # nothing counts twice


async def test_a_holder_that_never_returns_loses_its_reservations_to_the_lease(
    gateway: Opener,
) -> None:
    now = Now()
    async with (
        gateway("host:slot-dead", now) as dead,
        gateway("host:slot-alive", now) as alive,
    ):
        await alive.seed(BudgetSeed(MONTH, balances_micros={"ten_a": 1000}))
        assert await dead.reserve(ask("req-9", 300)) is None
        assert await alive.reserve(ask("req-10", 100)) is None
        now.seconds += RESERVATION_LEASE_SECONDS - 1
        assert await alive.expire() == 0  # still within its lease
        now.seconds += 2
        assert await alive.expire() == 2  # both past it: the live one's too
        assert await state(alive) == BudgetState(1000, 0, 0)
        # the live gateway's request ends after its reservation went back: charged in full
        await alive.settle(ask("req-10", 100), 70)
        await alive.settle(ask("req-10", 100), 70)  # and once only
        assert await state(alive) == BudgetState(930, 70, 70)


async def test_a_reservation_given_back_by_the_lease_is_charged_when_its_event_replays(
    gateway: Opener,
) -> None:
    now = Now()
    async with gateway("host:slot-2", now) as first:
        await first.seed(BudgetSeed(MONTH, balances_micros={"ten_a": 1000}))
        assert await first.reserve(ask("req-7", 300)) is None
    now.seconds += RESERVATION_LEASE_SECONDS + 1
    async with gateway("host:slot-3", now) as other:
        assert await other.expire() == 1
        assert await state(other) == BudgetState(1000, 0, 0)
    async with gateway("host:slot-2", now) as again:
        assert await again.reclaim([("req-7", 200)]) == 0
        assert await state(again) == BudgetState(800, 200, 200)


async def test_many_reservations_at_once_are_held_and_settled_to_nothing_left(
    gateway: Opener,
) -> None:
    now = Now()
    async with gateway("host:slot-4", now) as counters:
        await counters.seed(BudgetSeed(MONTH, balances_micros={"ten_a": 10 * 1000}))
        requests = [ask(f"req-{n}", 1000) for n in range(64)]
        outcomes = await asyncio.gather(*(counters.reserve(r) for r in requests))
        admitted = [r for r, outcome in zip(requests, outcomes, strict=True) if outcome is None]
        assert len(admitted) == 10
        await asyncio.gather(*(counters.settle(r, 500) for r in admitted))
        assert await state(counters) == BudgetState(5000, 5000, 5000)
        now.seconds += 10 * RESERVATION_LEASE_SECONDS
        assert await counters.expire() == 0  # nothing left held
        assert await counters.reclaim([]) == 0
