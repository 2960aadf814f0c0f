"""Price books: each model's prices as versions with an effective time.

The price of a usage event is the version in effect at the event's ``created_at``, so usage
keeps the price it was made under. Versions cannot be back-dated (``effective_at`` is now or
later), which is what lets gateways price requests from an in-memory copy: a version a
gateway has not loaded yet cannot apply to requests it already priced.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tokenmill.billing.pricing import FREE, Price, TokenUsage, cost_micros
from tokenmill.clock import Clock
from tokenmill.errors import Conflict, InvalidRequest
from tokenmill.store.db import Database
from tokenmill.store.tables import PriceBookEntry

PRICE_FIELDS = (
    "input_micros_per_mtok",
    "cached_input_micros_per_mtok",
    "output_micros_per_mtok",
    "request_micros",
    "accelerator_hour_micros",
    "storage_gib_day_micros",
)


@dataclass(frozen=True, slots=True)
class PriceVersion:
    model: str
    effective_at: datetime
    price: Price

    def as_json(self) -> dict[str, object]:
        return {
            "model": self.model,
            "effective_at": self.effective_at.isoformat(),
            **{name: getattr(self.price, name) for name in PRICE_FIELDS},
        }

    @classmethod
    def from_row(cls, row: PriceBookEntry) -> PriceVersion:
        return cls(
            row.model,
            row.effective_at,
            Price(**{name: getattr(row, name) for name in PRICE_FIELDS}),
        )


class PriceBook:
    """An immutable, in-memory view of every version; lookups are a binary search."""

    def __init__(self, versions: Iterable[PriceVersion] = ()) -> None:
        by_model: dict[str, list[PriceVersion]] = {}
        for version in versions:
            by_model.setdefault(version.model, []).append(version)
        self._times: dict[str, list[datetime]] = {}
        self._prices: dict[str, list[Price]] = {}
        for model, found in by_model.items():
            found.sort(key=lambda v: v.effective_at)
            self._times[model] = [v.effective_at for v in found]
            self._prices[model] = [v.price for v in found]

    def price_at(self, model: str, when: datetime) -> Price:
        """The price in effect at ``when``; a model with no version yet in effect is free."""
        times = self._times.get(model)
        if not times:
            return FREE
        index = bisect.bisect_right(times, when) - 1
        return self._prices[model][index] if index >= 0 else FREE

    def cost_micros(self, model: str, usage: TokenUsage, at: datetime) -> int:
        """What ``usage`` of ``model`` costs at the price in effect at ``at``."""
        return cost_micros(usage, self.price_at(model, at))


class PriceBookRepository:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def add(self, model: str, price: Price, effective_at: datetime | None = None) -> PriceVersion:
        """Adds a version. Raises ``InvalidRequest`` if back-dated, ``Conflict`` if taken."""
        now = self._clock.utcnow()
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
                    f"{model} already has a price from {when.isoformat()}.", param="effective_at"
                ) from None
            return PriceVersion.from_row(row)

    def list(self, model: str | None = None) -> list[PriceVersion]:
        query = select(PriceBookEntry).order_by(PriceBookEntry.model, PriceBookEntry.effective_at)
        if model is not None:
            query = query.where(PriceBookEntry.model == model)
        with self._db.session() as session:
            return [PriceVersion.from_row(row) for row in session.scalars(query)]

    def load(self) -> PriceBook:
        return PriceBook(self.list())
