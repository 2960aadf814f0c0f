"""Storage billing: what a tenant's stored bytes cost per day, charged to the ledger once a day.

Two things are stored and billed alike, each at its own price: uploaded files (the price book's
``files`` entry) and vector stores' indexed chunks with their vectors (``vector_stores``). The
price is the entry's ``storage_gib_day_micros`` (micros per GiB held for a day) in effect at
the day's start. A day's charge is the tenant's byte-seconds that day times that price, rounded
up once to a whole micro; the ledger entry's idempotency key (``storage:<tenant>:<day>`` for
files, ``vector-storage:<tenant>:<day>`` for vector stores) makes charging a day again a no-op.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from tokenmill.billing.ledger import LedgerRepository
from tokenmill.billing.pricebook import PriceBookRepository
from tokenmill.billing.pricing import ceil_div
from tokenmill.clock import Clock
from tokenmill.files.objects import StoredSpan

log = logging.getLogger(__name__)

STORAGE_PRICE_MODEL = "files"  # the price book entry that carries the storage price
VECTOR_STORAGE_PRICE_MODEL = "vector_stores"
BYTES_PER_GIB = 1024**3
SECONDS_PER_DAY = 86_400
ONE_SECOND = timedelta(seconds=1)
DAYS_BACK = 3  # completed days the loop (re)charges each round: a missed day is caught up


def byte_seconds_by_tenant(
    spans: Iterable[StoredSpan], start: datetime, end: datetime
) -> dict[str, int]:
    """Bytes times whole seconds held within ``[start, end)``, per tenant."""
    totals: dict[str, int] = {}
    for span in spans:
        held_from = max(span.start, start)
        held_until = min(span.end, end) if span.end is not None else end
        if held_until > held_from:
            seconds = (held_until - held_from) // ONE_SECOND
            totals[span.tenant_id] = totals.get(span.tenant_id, 0) + span.size_bytes * seconds
    return totals


def storage_cost_micros(byte_seconds: int, gib_day_micros: int) -> int:
    """``byte_seconds`` at ``gib_day_micros``, rounded up once."""
    return ceil_div(byte_seconds * gib_day_micros, BYTES_PER_GIB * SECONDS_PER_DAY)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), UTC)
    return start, start + timedelta(days=1)


def storage_key(tenant_id: str, day: date, prefix: str = "storage") -> str:
    return f"{prefix}:{tenant_id}:{day.isoformat()}"


@dataclass(frozen=True, slots=True)
class Stored:
    """One kind of stored bytes: where its spans come from, its price entry, its ledger key."""

    spans: Callable[[datetime, datetime], list[StoredSpan]]
    price_model: str = STORAGE_PRICE_MODEL
    key_prefix: str = "storage"
    what: str = "files"


class StorageBilling:
    def __init__(
        self,
        stored: Stored,
        prices: PriceBookRepository,
        ledger: LedgerRepository,
    ) -> None:
        self._stored = stored
        self._prices = prices
        self._ledger = ledger

    def charge_day(self, day: date) -> dict[str, int]:
        """Charges each tenant for what it stored on ``day`` (a completed UTC day); returns
        micros per tenant."""
        stored = self._stored
        start, end = day_bounds(day)
        price = self._prices.load().price_at(stored.price_model, start).storage_gib_day_micros
        if price == 0:
            return {}
        charged: dict[str, int] = {}
        spans = stored.spans(start, end)
        for tenant_id, byte_seconds in sorted(byte_seconds_by_tenant(spans, start, end).items()):
            amount = storage_cost_micros(byte_seconds, price)
            if amount == 0:
                continue
            self._ledger.charge_storage(
                tenant_id,
                amount,
                idempotency_key=storage_key(tenant_id, day, stored.key_prefix),
                note=f"{stored.what} stored on {day.isoformat()}: {byte_seconds} byte-seconds "
                f"at {price} micros per GiB-day",
            )
            charged[tenant_id] = amount
        return charged


class StorageBillingLoop:
    """Charges the last few completed days, every ``interval_seconds``; safe in every gateway."""

    def __init__(self, billing: StorageBilling, clock: Clock, interval_seconds: float) -> None:
        self._billing = billing
        self._clock = clock
        self._interval_seconds = interval_seconds

    def charge_completed_days(self) -> None:
        today = self._clock.utcnow().date()
        for back in range(DAYS_BACK, 0, -1):
            self._billing.charge_day(today - timedelta(days=back))

    async def run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.charge_completed_days)
            except Exception:
                log.exception("charging file storage failed; retrying")
            await asyncio.sleep(self._interval_seconds)
