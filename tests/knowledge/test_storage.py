"""Vector store storage over time: a span per indexed file, closed when its chunks leave, and
billed per GiB-day at the ``vector_stores`` price."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from tests.knowledge.conftest import DOCS_FOR_STORAGE, Upload, build_store
from tokenmill.billing.ledger import EntryKind, LedgerRepository
from tokenmill.billing.pricebook import PriceBookRepository
from tokenmill.billing.pricing import Price
from tokenmill.clock import ManualClock
from tokenmill.files.billing import (
    VECTOR_STORAGE_PRICE_MODEL,
    StorageBilling,
    Stored,
    storage_cost_micros,
)
from tokenmill.knowledge.repository import VectorStoreRepository
from tokenmill.knowledge.storage import stored_spans
from tokenmill.store.db import Database
from tokenmill.store.tables import VectorStore

HOUR = 3600


def test_indexed_bytes_are_held_until_they_leave_and_billed_per_day(
    database: Database, clock: ManualClock, tenants: tuple[str, str], upload: Upload
) -> None:
    alpha, beta = tenants
    day_start = clock.utcnow()
    prices, ledger = PriceBookRepository(database, clock), LedgerRepository(database, clock)
    prices.add(VECTOR_STORAGE_PRICE_MODEL, Price(storage_gib_day_micros=10**12))
    kept, ids = build_store(database, clock, upload, alpha, DOCS_FOR_STORAGE[:2])
    expiring, _ = build_store(database, clock, upload, beta, DOCS_FOR_STORAGE[2:])
    repo = VectorStoreRepository(database, clock)
    sizes = {f.id: f.usage_bytes for f in repo.list_files(alpha, kept).data}
    assert all(size > 0 for size in sizes.values())
    spans = stored_spans(database, day_start, day_start + timedelta(days=1))
    assert sorted(s.size_bytes for s in spans if s.tenant_id == alpha) == sorted(sizes.values())
    assert all(s.end is None for s in spans)

    clock.advance(HOUR)
    first, second = ids.values()
    repo.delete_file(alpha, kept, first)  # held about an hour
    with database.session() as session:  # beta's store expires two hours in
        session.execute(
            update(VectorStore)
            .where(VectorStore.id == expiring)
            .values(expires_at=day_start + timedelta(hours=2))
        )
    again = stored_spans(database, day_start, day_start + timedelta(days=1))
    by_tenant = {(s.tenant_id, s.size_bytes): s for s in again}
    assert by_tenant[(alpha, sizes[first])].end == clock.utcnow()
    assert by_tenant[(alpha, sizes[second])].end is None
    assert all(s.end == day_start + timedelta(hours=2) for s in again if s.tenant_id == beta)

    clock.advance(24 * HOUR)
    kind = Stored(
        lambda start, end: stored_spans(database, start, end),
        VECTOR_STORAGE_PRICE_MODEL,
        "vector-storage",
        "vector store chunks",
    )
    day_end = day_start + timedelta(days=1)
    expected = {
        tenant: storage_cost_micros(
            sum(
                s.size_bytes * int(((s.end or day_end) - s.start).total_seconds())
                for s in again
                if s.tenant_id == tenant
            ),
            10**12,
        )
        for tenant in (alpha, beta)
    }
    billing = StorageBilling(kind, prices, ledger)
    assert billing.charge_day(day_start.date()) == expected
    assert billing.charge_day(day_start.date()) == expected  # once per tenant and day
    entries = ledger.entries(kinds=[EntryKind.STORAGE])
    assert sorted(-e.amount_micros for e in entries) == sorted(expected.values())
    assert all(e.idempotency_key.startswith("vector-storage:") for e in entries)

    repo.delete_store(alpha, kept)  # the rest of alpha's bytes leave with the store
    assert all(s.end is not None for s in stored_spans(database, day_start, clock.utcnow()))
