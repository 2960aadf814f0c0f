"""Usage reports and monthly statements, read from usage records and the ledger.

A statement's total is the sum of the month's usage debits in the ledger (the money), and
its lines break the same usage records down by model (requests and tokens); both come from
the same events, written in one transaction, so they agree.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from tokenmill.billing.ledger import EntryKind
from tokenmill.billing.levels import LevelRow, service_levels
from tokenmill.billing.pricing import format_micros
from tokenmill.errors import InvalidRequest
from tokenmill.store.db import Database
from tokenmill.store.tables import LedgerEntry, UsageRecord

GROUPS = ("model", "key", "day", "service_tier", "app")


@dataclass(frozen=True, slots=True)
class UsageRow:
    group: str
    requests: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    cost_micros: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Statement:
    tenant_id: str
    month: str
    lines: list[UsageRow]  # grouped by model
    usage_micros: int  # = minus the month's usage debits in the ledger
    credits_micros: int  # top-ups and adjustments in the month
    closing_balance_micros: int  # at the end of the month
    apps: list[UsageRow] = field(default_factory=list)  # the part that ran through Apps

    def as_json(self) -> dict[str, Any]:
        return {
            "object": "statement",
            "tenant_id": self.tenant_id,
            "month": self.month,
            "currency": "USD",
            "lines": [line.as_json() for line in self.lines],
            "total_micros": self.usage_micros,
            "total": format_micros(self.usage_micros),
            "credits_micros": self.credits_micros,
            "closing_balance_micros": self.closing_balance_micros,
            "apps": [line.as_json() for line in self.apps],
        }

    def as_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(
            ["model", "requests", "prompt_tokens", "cached_tokens", "completion_tokens", "amount"]
        )
        for line in self.lines:
            writer.writerow(
                [
                    line.group,
                    line.requests,
                    line.prompt_tokens,
                    line.cached_tokens,
                    line.completion_tokens,
                    format_micros(line.cost_micros),
                ]
            )
        writer.writerow(["total", "", "", "", "", format_micros(self.usage_micros)])
        return out.getvalue()


def _day(moment: Any) -> str:
    return str(moment.strftime("%Y-%m-%d"))


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """``"2026-11"`` → [Nov 1, Dec 1) in UTC."""
    try:
        year, number = (int(part) for part in month.split("-"))
        start = datetime(year, number, 1, tzinfo=UTC)
    except ValueError:
        raise InvalidRequest(f"{month!r} is not a month (YYYY-MM).", param="month") from None
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
    return start, end


class Reports:
    def __init__(self, db: Database) -> None:
        self._db = db

    def usage(
        self,
        tenant_id: str,
        group_by: str,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[UsageRow]:
        """Usage of one tenant grouped by ``model``, ``key``, ``day`` (UTC), ``service_tier``
        or ``app`` (``none``: not through an App), in [since, until)."""
        if group_by not in GROUPS:
            raise InvalidRequest(f"group_by is one of {', '.join(GROUPS)}.", param="group_by")
        r = UsageRecord
        column = {
            "model": r.model,
            "key": r.key_id,
            "day": r.created_at,
            "service_tier": r.service_tier,
            "app": r.app_id,
        }[group_by]
        query = select(
            column,
            func.count(),
            func.sum(r.prompt_tokens),
            func.sum(r.cached_tokens),
            func.sum(r.completion_tokens),
            func.sum(r.cost_micros),
        ).where(r.tenant_id == tenant_id)
        if since is not None:
            query = query.where(r.created_at >= since)
        if until is not None:
            query = query.where(r.created_at < until)
        totals: dict[str, list[int]] = {}
        with self._db.session() as session:
            for key, *numbers in session.execute(query.group_by(column)):
                # Days are grouped here, not in SQL: the same on SQLite and PostgreSQL.
                name = _day(key) if group_by == "day" else str(key or "none")
                sums = totals.setdefault(name, [0] * 5)
                for index, value in enumerate(numbers):
                    sums[index] += int(value or 0)
        return [UsageRow(name, *sums) for name, sums in sorted(totals.items())]

    def service_levels(
        self,
        targets: Mapping[str, float],
        tenant_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[LevelRow]:
        """Per model and tier, of one tenant or (None) all: see ``tokenmill.billing.levels``."""
        return service_levels(self._db, targets, tenant_id=tenant_id, since=since, until=until)

    def statement(self, tenant_id: str, month: str) -> Statement:
        start, end = month_bounds(month)
        lines = self.usage(tenant_id, "model", start, end)
        entry = LedgerEntry
        in_month = (entry.tenant_id == tenant_id, entry.created_at >= start, entry.created_at < end)
        with self._db.session() as session:
            debits = session.execute(
                select(func.coalesce(func.sum(entry.amount_micros), 0)).where(
                    *in_month, entry.kind == EntryKind.USAGE.value
                )
            ).scalar_one()
            credits = session.execute(
                select(func.coalesce(func.sum(entry.amount_micros), 0)).where(
                    *in_month, entry.kind != EntryKind.USAGE.value
                )
            ).scalar_one()
            closing = session.execute(
                select(func.coalesce(func.sum(entry.amount_micros), 0)).where(
                    entry.tenant_id == tenant_id, entry.created_at < end
                )
            ).scalar_one()
        apps = [row for row in self.usage(tenant_id, "app", start, end) if row.group != "none"]
        return Statement(tenant_id, month, lines, -int(debits), int(credits), int(closing), apps)
