"""The billing view's sync: budget counters seeded from the ledger, and seeded again when
shared counters lose what they held."""

from __future__ import annotations

import pytest
import redis

from tokenmill.billing.budget import month_of
from tokenmill.billing.ledger import LedgerRepository
from tokenmill.billing.redis_counters import RedisBudgetCounters
from tokenmill.billing.sync import BillingSync
from tokenmill.clock import ManualClock
from tokenmill.control.tenants import TenantRepository
from tokenmill.store.db import Database


@pytest.mark.redis
async def test_counters_a_restarted_redis_lost_are_seeded_again_from_the_ledger(
    database: Database, clock: ManualClock, redis_server: str, redis_namespace: str
) -> None:
    tenant = TenantRepository(database, clock).create("acme")
    ledger = LedgerRepository(database, clock)
    ledger.top_up(tenant.id, 1_000)
    clock.advance(60)  # older than the clock skew: in the seed
    counters = RedisBudgetCounters.from_url(redis_server, redis_namespace)
    sync = BillingSync(database, clock, counters)
    await sync.start()
    month = month_of(clock.utcnow())

    async def available() -> int:
        return (await counters.state(tenant.id, "key_a", month)).available_micros

    assert await available() == 1_000
    plain = redis.Redis.from_url(redis_server)  # Redis restarts without its data
    plain.delete(*plain.keys(f"{redis_namespace}:*"))
    assert not await counters.seeded() and await available() == 0  # everyone looks penniless
    ledger.top_up(tenant.id, 500)  # a top-up just then is counted once
    await sync.poll_once()
    assert await counters.seeded() and await available() == 1_500
    clock.advance(60)
    await sync.poll_once()
    assert await available() == 1_500
    plain.close()
    await counters.close()
