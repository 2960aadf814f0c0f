"""Price books: each model's prices as versions with an effective time.

The price of a usage event is the version in effect at the event's ``created_at``, so usage
keeps the price it was made under. Versions cannot be back-dated (``effective_at`` is now or
later), which is what lets gateways price requests from an in-memory copy: a version a
gateway has not loaded yet cannot apply to requests it already priced.

Each service tier may have its own versions. A tier without a version in effect costs the
``default`` tier's price times ``TIER_PRICE_FACTORS`` (flex half, priority double, as OpenAI
prices them); an operator who sets a tier's price overrides that.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tokenmill.billing.pricing import FREE, PRICE_PARTS, Price, TokenUsage, cost_micros
from tokenmill.clock import Clock
from tokenmill.errors import Conflict, InvalidRequest
from tokenmill.protocol.tiers import ServiceTier, validate_tier
from tokenmill.store.db import Database
from tokenmill.store.tables import PriceBookEntry

PRICE_FIELDS = PRICE_PARTS
TIER_PRICE_FACTORS = {
    ServiceTier.PRIORITY: Fraction(2),
    ServiceTier.DEFAULT: Fraction(1),
    ServiceTier.FLEX: Fraction(1, 2),
}


@dataclass(frozen=True, slots=True)
class PriceVersion:
    model: str
    effective_at: datetime
    price: Price
    service_tier: str = ServiceTier.DEFAULT

    def as_json(self) -> dict[str, object]:
        return {
            "model": self.model,
            "service_tier": self.service_tier,
            "effective_at": self.effective_at.isoformat(),
            **{name: getattr(self.price, name) for name in PRICE_FIELDS},
        }

    @classmethod
    def from_row(cls, row: PriceBookEntry) -> PriceVersion:
        return cls(
            row.model,
            row.effective_at,
            Price(**{name: getattr(row, name) for name in PRICE_FIELDS}),
            row.service_tier,
        )


class PriceBook:
    """An immutable, in-memory view of every version; lookups are a binary search."""

    def __init__(self, versions: Iterable[PriceVersion] = ()) -> None:
        by_key: dict[tuple[str, str], list[PriceVersion]] = {}
        for version in versions:
            by_key.setdefault((version.model, version.service_tier), []).append(version)
        self._times: dict[tuple[str, str], list[datetime]] = {}
        self._prices: dict[tuple[str, str], list[Price]] = {}
        for key, found in by_key.items():
            found.sort(key=lambda v: v.effective_at)
            self._times[key] = [v.effective_at for v in found]
            self._prices[key] = [v.price for v in found]

    def price_at(self, model: str, when: datetime, tier: str = ServiceTier.DEFAULT) -> Price:
        """The price in effect at ``when``; a model with no version yet in effect is free."""
        own = self._version_at((model, tier), when)
        if own is not None:
            return own
        default = self._version_at((model, ServiceTier.DEFAULT), when) or FREE
        factor = TIER_PRICE_FACTORS.get(ServiceTier(tier), Fraction(1))
        return default if factor == 1 else default.scaled(factor)

    def _version_at(self, key: tuple[str, str], when: datetime) -> Price | None:
        times = self._times.get(key)
        if not times:
            return None
        index = bisect.bisect_right(times, when) - 1
        return self._prices[key][index] if index >= 0 else None

    def cost_micros(
        self, model: str, usage: TokenUsage, at: datetime, tier: str = ServiceTier.DEFAULT
    ) -> int:
        """What ``usage`` of ``model`` in ``tier`` costs at the price in effect at ``at``."""
        return cost_micros(usage, self.price_at(model, at, tier))


class PriceBookRepository:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def add(
        self,
        model: str,
        price: Price,
        effective_at: datetime | None = None,
        tier: str = ServiceTier.DEFAULT,
    ) -> PriceVersion:
        """Adds a version. Raises ``InvalidRequest`` if back-dated, ``Conflict`` if taken."""
        now = self._clock.utcnow()
        tier = validate_tier(tier, "service_tier") or ServiceTier.DEFAULT
        if not model or len(model) > 200:
            raise InvalidRequest("A model id has 1 to 200 characters.", param="model")
        when = effective_at or now
        if when.tzinfo is None:
            raise InvalidRequest("effective_at must carry a time zone.", param="effective_at")
        if when < now:
            raise InvalidRequest(
                "effective_at must not be in the past: usage keeps the price it was made under.",
                param="effective_at",
            )
        row = PriceBookEntry(
            model=model,
            service_tier=tier,
            effective_at=when,
            created_at=now,
            **{name: getattr(price, name) for name in PRICE_FIELDS},
        )
        with self._db.session() as session:
            session.add(row)
            try:
                session.flush()
            except IntegrityError:
                raise Conflict(
                    f"{model} already has a {tier} price from {when.isoformat()}.",
                    param="effective_at",
                ) from None
            return PriceVersion.from_row(row)

    def list(self, model: str | None = None) -> list[PriceVersion]:
        query = select(PriceBookEntry).order_by(
            PriceBookEntry.model, PriceBookEntry.service_tier, PriceBookEntry.effective_at
        )
        if model is not None:
            query = query.where(PriceBookEntry.model == model)
        with self._db.session() as session:
            return [PriceVersion.from_row(row) for row in session.scalars(query)]

    def load(self) -> PriceBook:
        return PriceBook(self.list())
