"""Keeps the gateway's in-memory billing view current, so the hot path reads no database.

At start: the price book, every tenant's terms (caps, limits), and the ledger's balances
and this month's spend seed the budget counters. Then, every ``interval_seconds``: the price
book and terms are reloaded whole (small tables) and new top-ups and adjustments are added
to the counters, once each (by ledger entry id). Counters that lost what they held (a Redis
restarted without its data: every tenant would look penniless) are seeded again.

Entries made in the last ``CLOCK_SKEW`` before start are left out of the seed and picked up
by the first poll instead, so one committed a little late is neither missed nor doubled. The
seed also names the credits of the ``SEEN_CREDITS`` before that, as counted: another gateway
whose polls started earlier may still add one of them, and must find it counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from tokenmill.billing.budget import month_of
from tokenmill.billing.counters import BudgetCounters, BudgetSeed
from tokenmill.billing.ledger import EntryKind, LedgerRecord, LedgerRepository
from tokenmill.billing.pricebook import PriceBook, PriceBookRepository
from tokenmill.clock import Clock
from tokenmill.store.db import Database
from tokenmill.store.tables import LedgerEntry, Tenant

log = logging.getLogger(__name__)

CLOCK_SKEW = timedelta(seconds=5)
SEEN_CREDITS = timedelta(minutes=2)
EXPIRE_INTERVAL_SECONDS = 60.0  # how often reservations past their lease are looked for
CREDIT_KINDS = (
    EntryKind.TOPUP,
    EntryKind.ADJUSTMENT,
    EntryKind.ACCELERATOR,
    EntryKind.STORAGE,
    EntryKind.TRAINING,
)


@dataclass(frozen=True, slots=True)
class Limits:
    """Rate limits; ``None`` is unlimited."""

    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None

    @classmethod
    def from_json(cls, value: Any) -> Limits:
        if not isinstance(value, dict):
            return cls()
        return cls(value.get("rpm"), value.get("tpm"), value.get("concurrency"))


@dataclass(frozen=True, slots=True)
class TenantTerms:
    monthly_budget_micros: int | None = None
    limits: Limits = Limits()
    model_limits: dict[str, Limits] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Tenant) -> TenantTerms:
        return cls(
            row.monthly_budget_micros,
            Limits(row.rpm_limit, row.tpm_limit, row.concurrency_limit),
            {model: Limits.from_json(v) for model, v in (row.model_limits or {}).items()},
        )


NO_TERMS = TenantTerms()


@dataclass(frozen=True, slots=True)
class BillingView:
    prices: PriceBook = field(default_factory=PriceBook)
    terms: dict[str, TenantTerms] = field(default_factory=dict)

    def terms_of(self, tenant_id: str) -> TenantTerms:
        return self.terms.get(tenant_id, NO_TERMS)


def month_start(moment: datetime) -> datetime:
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


class BillingSync:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        counters: BudgetCounters,
        interval_seconds: float = 1.0,
        *,
        reclaim: Sequence[tuple[str, int]] = (),
        expire_interval_seconds: float = EXPIRE_INTERVAL_SECONDS,
    ) -> None:
        """``reclaim``: (request id, cost) of the events the journal replayed at start."""
        self._db = db
        self._clock = clock
        self.counters = counters
        self._interval_seconds = interval_seconds
        self._prices = PriceBookRepository(db, clock)
        self._ledger = LedgerRepository(db, clock)
        self.view = BillingView()
        self._since = clock.utcnow() - CLOCK_SKEW
        self._reclaim = list(reclaim)
        self._expire_interval_seconds = expire_interval_seconds
        self._expired_at = clock.monotonic()

    def load_view(self) -> BillingView:
        with self._db.session() as session:
            terms = {row.id: TenantTerms.from_row(row) for row in session.scalars(select(Tenant))}
        return BillingView(self._prices.load(), terms)

    def load_seed(self) -> BudgetSeed:
        now = self._clock.utcnow()
        self._since = now - CLOCK_SKEW
        query = (
            select(LedgerEntry.tenant_id, func.sum(LedgerEntry.amount_micros))
            .where(
                (LedgerEntry.created_at < self._since)
                | LedgerEntry.kind.not_in([k.value for k in CREDIT_KINDS])
            )
            .group_by(LedgerEntry.tenant_id)
        )
        counted = select(LedgerEntry.id).where(
            LedgerEntry.created_at < self._since,
            LedgerEntry.created_at >= self._since - SEEN_CREDITS,
            LedgerEntry.kind.in_([k.value for k in CREDIT_KINDS]),
        )
        with self._db.session() as session:
            balances = {tenant: int(total) for tenant, total in session.execute(query)}
            credit_ids = tuple(int(entry_id) for entry_id in session.scalars(counted))
        per_tenant, per_key = self._ledger.usage_spend_since(month_start(now))
        return BudgetSeed(month_of(now), balances, per_tenant, per_key, credit_ids)

    def new_credits(self) -> list[LedgerRecord]:
        started = self._clock.utcnow()
        found = self._ledger.entries(since=self._since, kinds=CREDIT_KINDS)
        self._since = started - CLOCK_SKEW
        return found

    async def start(self) -> None:
        self.view = await asyncio.to_thread(self.load_view)
        seed = await asyncio.to_thread(self.load_seed)
        await self.counters.seed(seed)
        reclaimed = await self.counters.reclaim(self._reclaim)
        if reclaimed:
            log.info("reclaimed %d budget reservations held before a restart", reclaimed)
        await self.poll_once()

    async def poll_once(self) -> None:
        if not await self.counters.seeded():
            seed = await asyncio.to_thread(self.load_seed)
            if await self.counters.seed(seed):
                log.warning("the budget counters were empty (Redis restarted without its "
                            "data?); seeded them again from the ledger")  # fmt: skip
        self.view = await asyncio.to_thread(self.load_view)
        for entry in await asyncio.to_thread(self.new_credits):
            await self.counters.credit(entry.tenant_id, entry.id, entry.amount_micros)
        if self._clock.monotonic() - self._expired_at >= self._expire_interval_seconds:
            self._expired_at = self._clock.monotonic()
            expired = await self.counters.expire()
            if expired:
                log.warning("gave back %d budget reservations past their lease", expired)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_seconds)
            try:
                await self.poll_once()
            except Exception:
                log.exception("refreshing prices, terms and credits failed; retrying")
