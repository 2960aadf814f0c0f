"""Helpers shared by the cost advisor's tests (and its routes' and command's): a tenant's
traffic as the gateway meters it, and small traces and windows that simulate in moments."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.billing.test_usage import usage_event
from tokenmill.billing.pricebook import PriceBookRepository
from tokenmill.billing.pricing import Price
from tokenmill.billing.usage import UsageEvent, UsageRepository
from tokenmill.clock import Clock
from tokenmill.sim.workload import TraceRow
from tokenmill.store.db import Database

MODEL = "smollm2-135m-instruct"  # the model whose cost model is known without asking ("cpu")
# Two hours around midnight from 31 January to 1 February: a window over two months
START = datetime(2026, 1, 31, 23, tzinfo=UTC)
END = START + timedelta(hours=2)
SECONDS_PER_DAY = 86400.0


def every(start: datetime, hours: float, per_hour: int) -> list[datetime]:
    """``per_hour`` evenly spaced moments in each hour from ``start``."""
    gap = 3600.0 / per_hour
    return [start + timedelta(seconds=(i + 0.5) * gap) for i in range(round(hours * per_hour))]


def requests(
    tenant_id: str,
    moments: Iterable[datetime],
    *,
    model: str = MODEL,
    cost_micros: int = 1000,
    name: str = "r",
    **changes: Any,
) -> list[UsageEvent]:
    """A metered request that ended at each of ``moments`` (ids ``name-tenant-i``)."""
    return [
        usage_event(
            f"{name}-{tenant_id}-{i}",
            tenant_id=tenant_id,
            model=model,
            created_at=moment,
            cost_micros=cost_micros,
            **changes,
        )
        for i, moment in enumerate(moments)
    ]


def write(db: Database, events: list[UsageEvent]) -> None:
    """As the gateway's recorder writes them: the records and their ledger debits."""
    assert UsageRepository(db).insert_many(events) == len(events)


def price_hours(db: Database, clock: Clock, model: str, micros: int) -> None:
    """An accelerator-hour price for ``model`` (or an ``accelerator:<kind>`` entry)."""
    PriceBookRepository(db, clock).add(model, Price(accelerator_hour_micros=micros))


def steady(count: int, gap_seconds: float, prompt_tokens: int = 200) -> list[TraceRow]:
    """``count`` requests ``gap_seconds`` apart, 50 output tokens each."""
    return [TraceRow(i * gap_seconds, prompt_tokens, 50) for i in range(count)]


def office_hours(days: int, per_hour: int) -> list[TraceRow]:
    """Requests from 09:00 to 17:00 of each of ``days`` days, none at night."""
    gap = 3600.0 / per_hour
    return [
        TraceRow(day * SECONDS_PER_DAY + hour * 3600.0 + i * gap, 100 + i, 20)
        for day in range(days)
        for hour in range(9, 17)
        for i in range(per_hour)
    ]
