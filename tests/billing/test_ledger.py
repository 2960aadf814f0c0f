from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.billing.test_usage import usage_event
from tokenmill.billing.ledger import EntryKind, LedgerRepository
from tokenmill.billing.usage import UsageRepository
from tokenmill.clock import ManualClock
from tokenmill.control.tenants import TenantRepository
from tokenmill.errors import Conflict, InvalidRequest, NotFound
from tokenmill.store.db import Database


@pytest.fixture
def ledger(database: Database, clock: ManualClock) -> LedgerRepository:
    return LedgerRepository(database, clock)


def test_top_ups_and_adjustments_make_the_balance(
    database: Database, clock: ManualClock, ledger: LedgerRepository
) -> None:
    tenant = TenantRepository(database, clock).create("acme")
    ledger.top_up(tenant.id, 10_000_000, note="prepaid")
    ledger.adjust(tenant.id, -250_000, note="goodwill reversed")
    assert ledger.balance(tenant.id) == 9_750_000
    assert ledger.balances() == {tenant.id: 9_750_000}
    assert [e.kind for e in ledger.entries(tenant.id)] == [EntryKind.TOPUP, EntryKind.ADJUSTMENT]


def test_writes_are_idempotent_by_key(
    database: Database, clock: ManualClock, ledger: LedgerRepository
) -> None:
    tenant = TenantRepository(database, clock).create("acme")
    first = ledger.top_up(tenant.id, 5, idempotency_key="wire-1")
    again = ledger.top_up(tenant.id, 5, idempotency_key="wire-1")
    assert again == first
    assert ledger.balance(tenant.id) == 5
    with pytest.raises(Conflict):
        ledger.top_up(tenant.id, 6, idempotency_key="wire-1")


def test_invalid_entries_are_refused(
    database: Database, clock: ManualClock, ledger: LedgerRepository
) -> None:
    tenant = TenantRepository(database, clock).create("acme")
    with pytest.raises(InvalidRequest):
        ledger.top_up(tenant.id, 0)
    with pytest.raises(InvalidRequest):
        ledger.adjust(tenant.id, 5, note=" ")
    with pytest.raises(NotFound):
        ledger.top_up("ten_missing", 5)


def test_usage_is_recorded_with_its_debit_once(
    database: Database, clock: ManualClock, ledger: LedgerRepository
) -> None:
    tenant = TenantRepository(database, clock).create("acme")
    ledger.top_up(tenant.id, 1_000)
    usage = UsageRepository(database)
    events = [
        usage_event(f"req-{i}", tenant_id=tenant.id, cost_micros=i, created_at=clock.utcnow())
        for i in range(5)
    ]
    assert usage.insert_many(events) == 5
    assert usage.insert_many(events + events) == 0
    assert ledger.balance(tenant.id) == 1_000 - sum(range(5))
    debits = ledger.entries(tenant.id, kinds=[EntryKind.USAGE])
    assert sorted(e.idempotency_key for e in debits) == [f"usage:req-{i}" for i in range(1, 5)]
    spent_by_tenant, spent_by_key = ledger.usage_spend_since(clock.utcnow() - timedelta(days=1))
    assert spent_by_tenant == {tenant.id: 10}
    assert spent_by_key == {"key_1": 10}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    costs=st.lists(st.integers(0, 10**9), min_size=1, max_size=20),
    batches=st.lists(st.lists(st.integers(0, 19), max_size=10), min_size=1, max_size=6),
)
def test_any_replay_of_usage_counts_each_request_once(
    database: Database, costs: list[int], batches: list[list[int]]
) -> None:
    """However often and in whatever groups events are ingested, balance = -sum(costs seen)."""
    clock = ManualClock()
    tenants = TenantRepository(database, clock)
    tenant = tenants.get_by_name("prop") or tenants.create("prop")
    ledger = LedgerRepository(database, clock)
    start = ledger.balance(tenant.id)
    prefix = f"p{uuid.uuid4().hex[:8]}-"
    events = [
        usage_event(f"{prefix}{i}", tenant_id=tenant.id, cost_micros=c) for i, c in enumerate(costs)
    ]
    usage = UsageRepository(database)
    seen: set[int] = set()
    for batch in batches:
        chosen = [i for i in batch if i < len(events)]
        usage.insert_many([events[i] for i in chosen])
        seen.update(chosen)
    usage.insert_many(events)  # a full replay at the end
    seen.update(range(len(events)))
    assert ledger.balance(tenant.id) - start == -sum(costs[i] for i in seen)
