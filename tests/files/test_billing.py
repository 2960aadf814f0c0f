"""Storage billing: byte-seconds per day, integer cost rounded up once, one charge per day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from tests.files.test_repository import info, nothing
from tokenmill.billing.ledger import EntryKind, LedgerRepository
from tokenmill.billing.pricebook import PriceBookRepository
from tokenmill.billing.pricing import Price
from tokenmill.clock import ManualClock
from tokenmill.control.tenants import TenantRepository
from tokenmill.files.billing import (
    BYTES_PER_GIB,
    STORAGE_PRICE_MODEL,
    StorageBilling,
    StorageBillingLoop,
    Stored,
    byte_seconds_by_tenant,
    storage_cost_micros,
)
from tokenmill.files.objects import StoredSpan
from tokenmill.files.repository import FileRepository
from tokenmill.store.db import Database

DAY = date(2026, 1, 1)
START = datetime(2026, 1, 1, tzinfo=UTC)
END = START + timedelta(days=1)


def test_byte_seconds_count_only_the_part_of_the_day_a_file_was_held() -> None:
    spans = [
        StoredSpan("a", 100, START - timedelta(days=3), None),  # all day
        StoredSpan("a", 10, START + timedelta(hours=12), START + timedelta(hours=13)),  # an hour
        StoredSpan("b", 7, START - timedelta(days=1), START + timedelta(seconds=90)),
        StoredSpan("b", 5, END, None),  # the next day
        StoredSpan("b", 5, START - timedelta(days=2), START),  # gone before
    ]
    assert byte_seconds_by_tenant(spans, START, END) == {"a": 100 * 86_400 + 10 * 3600, "b": 630}


def test_cost_is_integer_micros_rounded_up_once() -> None:
    assert storage_cost_micros(BYTES_PER_GIB * 86_400, 5_000) == 5_000  # a GiB for a day
    assert storage_cost_micros(BYTES_PER_GIB * 43_200, 5_000) == 2_500
    assert storage_cost_micros(1, 5_000) == 1  # any storage at all costs at least a micro
    assert storage_cost_micros(0, 5_000) == 0
    assert storage_cost_micros(10**20, 0) == 0


def test_a_negative_storage_price_is_refused() -> None:
    with pytest.raises(ValueError):
        Price(storage_gib_day_micros=-1)


def test_a_day_is_charged_once_per_tenant_at_the_day_start_price(
    database: Database, clock: ManualClock
) -> None:
    tenants = TenantRepository(database, clock)
    alpha, beta, idle = (tenants.create(n).id for n in ("alpha", "beta", "idle"))
    prices, ledger = PriceBookRepository(database, clock), LedgerRepository(database, clock)
    files = FileRepository(database, clock)
    prices.add(STORAGE_PRICE_MODEL, Price(storage_gib_day_micros=86_400_000))
    gib = BYTES_PER_GIB
    files.add(info(clock, alpha, size=gib), 10 * gib, nothing)  # all day (the clock: 00:00)
    clock.advance(6 * 3600)
    files.add(info(clock, beta, size=gib // 2), 10 * gib, nothing)  # 18 hours
    gone = files.add(info(clock, alpha, size=gib), 10 * gib, nothing)
    clock.advance(3600)
    files.mark_deleted(alpha, gone.id)  # one hour
    clock.advance(17 * 3600 + 60)  # the next day

    billing = StorageBilling(Stored(files.stored_spans), prices, ledger)
    expected = {alpha: 86_400_000 + 3_600_000, beta: 32_400_000}
    assert billing.charge_day(DAY) == expected
    assert billing.charge_day(DAY) == expected  # again: the same entries, nothing new
    entries = ledger.entries(kinds=[EntryKind.STORAGE])
    assert sorted((e.tenant_id, -e.amount_micros) for e in entries) == sorted(expected.items())
    assert all(e.idempotency_key.endswith(":2026-01-01") for e in entries)
    assert ledger.balance(idle) == 0 and ledger.balance(alpha) == -expected[alpha]
    assert billing.charge_day(DAY - timedelta(days=1)) == {}  # nothing stored yet then


def test_the_loop_charges_completed_days_only(database: Database, clock: ManualClock) -> None:
    alpha = TenantRepository(database, clock).create("alpha").id
    prices, ledger = PriceBookRepository(database, clock), LedgerRepository(database, clock)
    files = FileRepository(database, clock)
    prices.add(STORAGE_PRICE_MODEL, Price(storage_gib_day_micros=1_000))
    files.add(info(clock, alpha, size=BYTES_PER_GIB), 2 * BYTES_PER_GIB, nothing)
    loop = StorageBillingLoop(
        StorageBilling(Stored(files.stored_spans), prices, ledger), clock, 3600
    )
    loop.charge_completed_days()
    assert ledger.entries(kinds=[EntryKind.STORAGE]) == []  # today is not over
    clock.advance(2 * 86_400 + 5)
    loop.charge_completed_days()
    loop.charge_completed_days()
    assert [-e.amount_micros for e in ledger.entries(kinds=[EntryKind.STORAGE])] == [1_000, 1_000]
