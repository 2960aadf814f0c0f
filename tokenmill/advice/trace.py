"""A tenant's traffic as the advisor sees it: usage records turned into a trace and a bill.

Pure: usage events in, a trace and per-month sums out. The window and the months are those
of the ledger (a record's ``created_at``, when its request ended), so the serverless bill is
what the statements say. Every record of the model counts in
the serverless bill (it is what was charged: failed requests cost nothing); only records that
carried tokens to a replica become requests of the trace.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from tokenmill.sim.workload import TraceRow

SECONDS_PER_DAY = 86400.0


class UsageSample(Protocol):
    """What the advisor reads of a usage record (a ``UsageEvent`` or a database row)."""

    @property
    def model(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def duration_seconds(self) -> float: ...
    @property
    def prompt_tokens(self) -> int: ...
    @property
    def completion_tokens(self) -> int: ...
    @property
    def cost_micros(self) -> int: ...


def month_of(moment: datetime) -> str:
    """The UTC month, whatever zone ``moment`` is written in."""
    moment = moment.astimezone(UTC)
    return f"{moment.year:04d}-{moment.month:02d}"


@dataclass(slots=True)
class TenantTrace:
    """One model's traffic over ``[start, end)``; ``rows`` arrive in seconds since ``start``."""

    model: str
    start: datetime
    end: datetime
    rows: list[TraceRow] = field(default_factory=list)
    serverless_micros_by_month: dict[str, int] = field(default_factory=dict)
    requests_by_month: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.start, self.end = self.start.astimezone(UTC), self.end.astimezone(UTC)

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / SECONDS_PER_DAY

    @property
    def serverless_micros(self) -> int:
        return sum(self.serverless_micros_by_month.values())

    @property
    def requests_per_day(self) -> float:
        return len(self.rows) / self.days if self.days > 0 else 0.0

    @property
    def tokens_per_day(self) -> float:
        tokens = sum(r.prompt_tokens + r.output_tokens for r in self.rows)
        return tokens / self.days if self.days > 0 else 0.0

    def hourly_counts(self) -> list[int]:
        """Requests in each hour of the window, in order (the last hour may be partial)."""
        hours = max(1, int(-(-(self.end - self.start).total_seconds() // 3600)))
        counts = [0] * hours
        for row in self.rows:
            counts[min(hours - 1, int(row.arrival_seconds // 3600))] += 1
        return counts

    def peak_hour_ratio(self) -> float:
        """The busiest hour's requests over the mean hour's (1.0: perfectly flat)."""
        counts = self.hourly_counts()
        mean = sum(counts) / len(counts)
        return max(counts) / mean if mean > 0 else 0.0

    def hour_seconds(self) -> dict[str, float]:
        """Seconds of the window in each month (what an always-on fleet is paid for)."""
        seconds: dict[str, float] = {}
        moment = self.start
        while moment < self.end:
            following = _next_month(moment)
            month = month_of(moment)
            seconds[month] = (
                seconds.get(month, 0.0) + (min(following, self.end) - moment).total_seconds()
            )
            moment = following
        return seconds


def _next_month(moment: datetime) -> datetime:
    first = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first + timedelta(days=32)).replace(day=1)


def extract(
    events: Iterable[UsageSample], model: str, start: datetime, end: datetime
) -> TenantTrace:
    """The trace and bill of ``model`` from the events created in ``[start, end)``; months and
    hours are UTC's, whatever zone the window is written in."""
    if end <= start:
        raise ValueError("the window must end after it starts")
    trace = TenantTrace(model, start, end)
    money: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    for event in events:
        if event.model != model or not start <= event.created_at < end:
            continue
        month = month_of(event.created_at)
        money[month] += event.cost_micros
        if event.prompt_tokens <= 0:
            continue
        counts[month] += 1
        # a record is written when its request ends: it arrived ``duration_seconds`` earlier
        arrival = (event.created_at - start).total_seconds() - event.duration_seconds
        trace.rows.append(
            TraceRow(
                max(0.0, arrival),
                event.prompt_tokens,
                max(1, event.completion_tokens),
            )
        )
    trace.rows.sort(key=lambda row: row.arrival_seconds)
    trace.serverless_micros_by_month = dict(sorted(money.items()))
    trace.requests_by_month = dict(sorted(counts.items()))
    return trace
