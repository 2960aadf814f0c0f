from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest

from tokenmill.billing.pricebook import PriceBook, PriceBookRepository, PriceVersion
from tokenmill.billing.pricing import FREE, Price
from tokenmill.clock import ManualClock
from tokenmill.errors import Conflict, InvalidRequest
from tokenmill.store.db import Database

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OLD = Price(1_000_000, 500_000, 2_000_000)
NEW = Price(3_000_000, 1_000_000, 6_000_000, request_micros=5)


def test_the_price_in_effect_at_a_moment() -> None:
    book = PriceBook([PriceVersion("m", T0 + timedelta(days=30), NEW), PriceVersion("m", T0, OLD)])
    assert book.price_at("m", T0 - timedelta(seconds=1)) == FREE
    assert book.price_at("m", T0) == OLD
    assert book.price_at("m", T0 + timedelta(days=29)) == OLD
    assert book.price_at("m", T0 + timedelta(days=30)) == NEW
    assert book.price_at("other", T0) == FREE


def test_versions_are_stored_and_old_usage_keeps_its_price(
    database: Database, clock: ManualClock
) -> None:
    repo = PriceBookRepository(database, clock)
    first = repo.add("m", OLD)
    assert first.effective_at == clock.utcnow()
    later = clock.utcnow() + timedelta(days=7)
    repo.add("m", NEW, effective_at=later)
    repo.add("n", NEW)
    assert [v.price for v in repo.list("m")] == [OLD, NEW]
    book = repo.load()
    assert book.price_at("m", later - timedelta(microseconds=1)) == OLD
    assert book.price_at("m", later) == NEW


def test_back_dated_and_duplicate_versions_are_refused(
    database: Database, clock: ManualClock
) -> None:
    repo = PriceBookRepository(database, clock)
    with pytest.raises(InvalidRequest, match="past"):
        repo.add("m", OLD, effective_at=clock.utcnow() - timedelta(seconds=1))
    when = clock.utcnow() + timedelta(hours=1)
    repo.add("m", OLD, effective_at=when)
    with pytest.raises(Conflict):
        repo.add("m", NEW, effective_at=when)


def test_a_tier_without_its_own_price_costs_the_default_times_its_factor() -> None:
    book = PriceBook([PriceVersion("m", T0, Price(1_000_001, 3, 2_000_000, request_micros=5))])
    assert book.price_at("m", T0, "flex") == Price(500_001, 2, 1_000_000, request_micros=3)
    assert book.price_at("m", T0, "priority") == Price(2_000_002, 6, 4_000_000, request_micros=10)
    assert book.price_at("m", T0, "default") == book.price_at("m", T0)
    assert book.price_at("other", T0, "priority") == FREE


def test_a_tiers_own_price_overrides_the_factor_from_its_time_on(
    database: Database, clock: ManualClock
) -> None:
    repo = PriceBookRepository(database, clock)
    repo.add("m", OLD)
    later = clock.utcnow() + timedelta(days=1)
    repo.add("m", NEW, effective_at=later, tier="priority")
    repo.add("m", NEW, effective_at=later)  # the same moment in another tier is no conflict
    with pytest.raises(Conflict, match="priority"):
        repo.add("m", OLD, effective_at=later, tier="priority")
    with pytest.raises(InvalidRequest, match="service_tier"):
        repo.add("m", OLD, tier="turbo")
    book = repo.load()
    assert book.price_at("m", clock.utcnow(), "priority") == OLD.scaled(Fraction(2))
    assert book.price_at("m", later, "priority") == NEW
    assert [(v.service_tier, v.price) for v in repo.list("m")] == [
        ("default", OLD),
        ("default", NEW),
        ("priority", NEW),
    ]
    assert repo.list("m")[2].as_json()["service_tier"] == "priority"
