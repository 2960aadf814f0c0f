"""A gateway killed mid-request, sharing budget counters through Redis, gets the request's
reservation back when it starts again in the same journal slot: settled to the cost its
journal replays, so the shared credit matches the ledger again."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.billing.test_journal import Running
from tests.gateway.support import principal
from tests.gateway.test_admission import MAX_TOKENS, PRICE, entry
from tokenmill.billing.budget import month_of
from tokenmill.billing.ledger import LedgerRepository
from tokenmill.billing.pricebook import PriceBookRepository
from tokenmill.billing.usage import UsageRepository
from tokenmill.clock import SystemClock
from tokenmill.control.tenants import TenantRepository
from tokenmill.gateway.compose import build_gateway
from tokenmill.gateway.routing import Router
from tokenmill.settings import Settings
from tokenmill.store.db import Database

pytestmark = pytest.mark.redis
CREDIT = 10_000_000


async def test_a_restarted_gateway_settles_what_it_held_when_it_was_killed(
    database: Database, tmp_path: Path, redis_server: str, redis_namespace: str
) -> None:
    clock = SystemClock()
    tenant = TenantRepository(database, clock).create("acme")
    PriceBookRepository(database, clock).add(entry().id, PRICE)
    LedgerRepository(database, clock).top_up(tenant.id, CREDIT)
    settings = Settings(data_dir=tmp_path, redis_url=redis_server, redis_namespace=redis_namespace)
    who = principal(tenant.id)
    month = month_of(clock.utcnow())

    first = build_gateway(settings, database, clock, Router())
    admission, journal = first.services.admission, first.services.journal
    assert admission is not None and journal is not None
    await admission.start()
    ticket = await admission.admit(who, entry(), MAX_TOKENS, 1, 100, "req-cut-off")
    assert ticket.budget is not None
    counters = admission.sync.counters
    held = await counters.state(tenant.id, who.key_id, month)
    assert held.available_micros == CREDIT - ticket.budget.amount_micros
    running = Running("req-cut-off", tenant.id, who.key_id, entry().id, content_events=3)
    journal.begin(running)
    deadline = time.monotonic() + 10
    while b"req-cut-off" not in b"".join(p.read_bytes() for p in tmp_path.rglob("segment-*")):
        assert time.monotonic() < deadline, "the journal never wrote the request's start"
        time.sleep(0.05)
    # killed: nothing settled; the process's journal and connections just go away
    journal.close()
    await counters.close()
    first.recorder.close()

    again = build_gateway(settings, database, clock, Router())
    try:
        assert again.services.admission is not None
        await again.services.admission.start()
        replayed = UsageRepository(database).get("req-cut-off")
        assert replayed is not None and replayed.error_code == "gateway_restarted"
        shared = await again.services.admission.sync.counters.state(tenant.id, who.key_id, month)
        assert shared.available_micros == CREDIT - replayed.cost_micros
        assert shared.key_month_micros == replayed.cost_micros
    finally:
        await again.services.admission.close()
        again.close()
