"""The advice for one tenant and model: bills month by month, break-even, recommendation.

Reads the tenant's usage records and the price book; sizes dedicated fleets with
``advice.replay``; finds the break-even with ``advice.breakeven``. Monthly figures on the
curve are per 30 days, so volumes compare however long the window is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from tokenmill.advice.breakeven import (
    GRID,
    SCALINGS,
    BreakEven,
    curve,
    first_crossing,
    rows_at,
    sped_rows,
)
from tokenmill.advice.replay import (
    REPLAY_BUDGET,
    CostModel,
    FleetSizer,
    busiest_days,
    scheduled_fleet,
)
from tokenmill.advice.trace import TenantTrace, extract
from tokenmill.advice.words import recommend
from tokenmill.billing.pricebook import PriceBookRepository
from tokenmill.catalog.install import accelerator_price_model
from tokenmill.clock import Clock
from tokenmill.errors import InvalidRequest
from tokenmill.fleet.replicas import accelerator_charge_micros
from tokenmill.sim.workload import TraceRow
from tokenmill.store.db import Database
from tokenmill.store.tables import UsageRecord

DEFAULT_WINDOW_DAYS = 30
# the models whose cost model is known without asking: our engine's calibrated model on a CPU
DEFAULT_COST_MODELS = {"smollm2-135m-instruct": "cpu", "chat-small": "cpu"}
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class MonthBill:
    month: str
    requests: int
    serverless_micros: int
    always_on_micros: int | None
    scheduled_micros: int | None

    def as_json(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "requests": self.requests,
            "serverless_micros": self.serverless_micros,
            "dedicated_always_on_micros": self.always_on_micros,
            "dedicated_scheduled_micros": self.scheduled_micros,
        }


@dataclass(slots=True)
class Advice:
    tenant_id: str
    trace: TenantTrace
    cost_model: CostModel
    accelerator_hour_micros: int
    always_on: int | None  # accelerators; None: not even the largest fleet tried meets the SLO
    scheduled: list[int | None]  # by hour of the day (UTC)
    months: list[MonthBill]
    curve: BreakEven
    curve_sizes: dict[float, int | None] = field(default_factory=dict)
    utilisation: float | None = None  # busy share of the always-on fleet's accelerators
    recommendation: str = "serverless"
    reasons: list[str] = field(default_factory=list)
    scaling: str = "arrivals"  # how the curve's volumes were made (``breakeven.SCALINGS``)

    def monthly(self, micros_in_window: float) -> float:
        """A figure over the window, per 30 days."""
        return micros_in_window * 30.0 / self.trace.days

    def at_volume(self) -> tuple[float, float, float]:
        """Per 30 days at the tenant's volume: serverless, always-on and scheduled bills, the
        fleets as the months bill them (the window's own hours); inf where no fleet holds it."""

        def fleet(bills: list[int | None]) -> float:
            return math.inf if None in bills else self.monthly(sum(b or 0 for b in bills))

        return (
            self.monthly(self.trace.serverless_micros),
            fleet([m.always_on_micros for m in self.months]),
            fleet([m.scheduled_micros for m in self.months]),
        )

    def as_json(self) -> dict[str, Any]:
        trace = self.trace
        per_day = trace.requests_per_day
        tokens_per_day = trace.tokens_per_day
        factor = self.curve.factor
        return {
            "object": "advice",
            "tenant_id": self.tenant_id,
            "model": trace.model,
            "window": {"since": trace.start.isoformat(), "until": trace.end.isoformat(),
                       "days": round(trace.days, 3)},
            "cost_model": self.cost_model.name,
            "accelerator": self.cost_model.accelerator_name,
            "accelerator_hour_micros": self.accelerator_hour_micros,
            "traffic": {
                "requests": len(trace.rows),
                "requests_per_day": round(per_day, 2),
                "tokens_per_day": round(tokens_per_day, 1),
                "peak_hour_ratio": round(trace.peak_hour_ratio(), 2),
            },
            "serverless_micros": trace.serverless_micros,
            "monthly_at_volume": {
                name: _whole(value)
                for name, value in zip(
                    ("serverless_micros", "always_on_micros", "scheduled_micros"),
                    self.at_volume(),
                    strict=True,
                )
            },
            "dedicated": {
                "always_on_accelerators": self.always_on,
                "scheduled_accelerators_by_hour": self.scheduled,
                "always_on_utilisation": _rounded(self.utilisation),
            },
            "months": [m.as_json() for m in self.months],
            "break_even": {
                "scaling": self.scaling,
                "factor": factor,
                "beyond": self.curve.beyond,
                "requests_per_day": None if factor is None else round(factor * per_day, 1),
                "tokens_per_day": None if factor is None else round(factor * tokens_per_day),
            },
            "curve": [
                {
                    "factor": p.factor,
                    "requests_per_day": round(p.factor * per_day, 2),
                    "serverless_monthly_micros": _whole(self.monthly(p.serverless_micros)),
                    "dedicated_monthly_micros": _whole(self.monthly(p.dedicated_micros)),
                    "accelerators": _at_least_one(self.curve_sizes.get(p.factor)),
                }
                for p in self.curve.points
            ],
            "recommendation": self.recommendation,
            "reasons": self.reasons,
        }  # fmt: skip


class Advisor:
    def __init__(self, db: Database, prices: PriceBookRepository, clock: Clock) -> None:
        self._db = db
        self._prices = prices
        self._clock = clock

    def models(self, tenant_id: str, since: datetime, until: datetime) -> list[str]:
        """The models the tenant used in the window (platform tools' usage aside)."""
        query = (
            select(UsageRecord.model)
            .where(UsageRecord.tenant_id == tenant_id)
            .where(UsageRecord.created_at >= since, UsageRecord.created_at < until)
            .distinct()
        )
        with self._db.session() as session:
            return sorted(m for m in session.scalars(query) if ":" not in m)

    def window(
        self, since: datetime | None, until: datetime | None, days: float | None
    ) -> tuple[datetime, datetime]:
        end = (until or self._clock.utcnow()).astimezone(UTC)
        start = (since or end - timedelta(days=days or DEFAULT_WINDOW_DAYS)).astimezone(UTC)
        if end <= start:
            raise InvalidRequest("The window must end after it starts.", param="since")
        return start, end

    def trace(self, tenant_id: str, model: str, start: datetime, end: datetime) -> TenantTrace:
        query = (
            select(
                UsageRecord.model,
                UsageRecord.created_at,
                UsageRecord.duration_seconds,
                UsageRecord.prompt_tokens,
                UsageRecord.completion_tokens,
                UsageRecord.cost_micros,
            )
            .where(UsageRecord.tenant_id == tenant_id, UsageRecord.model == model)
            .where(UsageRecord.created_at >= start, UsageRecord.created_at < end)
        )
        with self._db.session() as session:
            return extract(session.execute(query), model, start, end)

    def cost_model(self, model: str, asked: str | None) -> CostModel:
        name = asked or DEFAULT_COST_MODELS.get(model)
        if name is None:
            raise InvalidRequest(
                f"No calibrated cost model for {model!r}: pass cost_model=ARCHITECTURE@ACCELERATOR "
                "(e.g. llama3.1-8b@H100-80GB) or 'cpu'.",
                param="cost_model",
            )
        try:
            return CostModel.parse(name)
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="cost_model") from None

    def accelerator_price(self, model: str, cost_model: CostModel) -> int:
        """The price book's ``accelerator:<kind>`` entry, else the model's own hourly price."""
        book = self._prices.load()
        now = self._clock.utcnow()
        entry = accelerator_price_model(cost_model.accelerator_name)
        micros = book.price_at(entry, now).accelerator_hour_micros
        micros = micros or book.price_at(model, now).accelerator_hour_micros
        if not micros:
            raise InvalidRequest(
                f"No accelerator-hour price for {model!r} on {cost_model.accelerator_name}: set "
                f"one in the price book (model {entry!r} or {model!r}, accelerator_hour_micros).",
                param="cost_model",
            )
        return micros

    def advise(
        self,
        tenant_id: str,
        model: str,
        start: datetime,
        end: datetime,
        cost_model: str | None = None,
        progress: Progress | None = None,
        scaling: str = "arrivals",
    ) -> Advice:
        """``scaling``: how the traffic grows or shrinks for the break-even (``SCALINGS``)."""
        if scaling not in SCALINGS:
            raise InvalidRequest(
                f"scaling is one of {', '.join(SCALINGS)}, not {scaling!r}.", param="scaling"
            )
        say = progress or (lambda message: None)
        chosen = self.cost_model(model, cost_model)
        hourly = self.accelerator_price(model, chosen)
        trace = self.trace(tenant_id, model, start, end)
        if not trace.rows:
            raise InvalidRequest(
                f"{tenant_id} has no requests to {model!r} between {start.isoformat()} and "
                f"{end.isoformat()}.",
                param="model",
            )
        return advise_trace(tenant_id, trace, chosen, hourly, say, scaling=scaling)


def advise_trace(
    tenant_id: str,
    trace: TenantTrace,
    cost_model: CostModel,
    accelerator_hour_micros: int,
    say: Progress,
    grid: Sequence[float] = GRID,
    sizer: FleetSizer | None = None,
    scaling: str = "arrivals",
) -> Advice:
    """The advice on a trace already extracted (pure apart from the simulations). A ``sizer``
    passed in keeps its replays for another call on the same trace (other prices)."""
    span = (trace.end - trace.start).total_seconds()
    sizer = sizer or FleetSizer(cost_model)

    def replayed(factor: float) -> list[TraceRow]:
        if factor < 1.0 and scaling == "arrivals":
            # all of the trace (as much as a replay holds) slowed down, over a longer span
            # than the window: its first part alone would be a smaller, noisier sample
            rows, covered = busiest_days(trace.rows, span, REPLAY_BUDGET)
            return sped_rows(rows, factor, covered / factor)
        rows, covered = busiest_days(trace.rows, span, REPLAY_BUDGET / factor)
        return rows if factor == 1.0 else rows_at(rows, factor, covered, scaling)

    say(f"sizing an always-on fleet for {len(trace.rows)} requests")
    always_on = sizer.smallest(replayed(1.0))
    say("sizing a fleet for each hour of the day")
    midnight = trace.start.replace(hour=0, minute=0, second=0, microsecond=0)
    scheduled = scheduled_fleet(trace.rows, cost_model, (trace.start - midnight).total_seconds())
    months = bills(trace, always_on, scheduled, accelerator_hour_micros)

    window_micros = accelerator_hour_micros * span / 3600.0  # one accelerator all along

    def dedicated(factor: float) -> float:
        say(f"replaying {factor:.3g}x the traffic")
        size = sizer.smallest(replayed(factor), factor)
        return math.inf if size is None else max(1, size) * window_micros

    def serverless(factor: float) -> float:
        return factor * trace.serverless_micros

    points = curve(serverless, dedicated, grid)
    first = sizer.sizes.get(grid[0])
    if trace.serverless_micros <= 0 or first is None:
        found: tuple[float | None, str | None] = (None, "above")
    else:

        def serves(accelerators: int, factor: float) -> bool:
            say(f"{accelerators} accelerators for {factor:.3g}x the traffic")
            return sizer.serves(replayed(factor), factor, accelerators)

        found = first_crossing(
            trace.serverless_micros, window_micros, serves,
            first_fleet=max(1, first), low=grid[0], high=grid[-1],
        )  # fmt: skip
    curve_found = BreakEven(found[0], found[1], points)
    advice = Advice(
        tenant_id, trace, cost_model, accelerator_hour_micros, always_on, scheduled, months,
        curve_found, dict(sizer.sizes), sizer.utilisation(), scaling=scaling,
    )  # fmt: skip
    advice.recommendation, advice.reasons = recommend(advice)
    return advice


def bills(
    trace: TenantTrace,
    always_on: int | None,
    scheduled: list[int | None],
    hour_micros: int,
) -> list[MonthBill]:
    """Each month's three bills: what was charged, and the two dedicated fleets' hours."""
    seconds = trace.hour_seconds()
    by_month: dict[str, float] = {}
    moment = trace.start
    while moment < trace.end:  # the scheduled fleet, hour by hour of the window
        following = min(moment.replace(minute=0, second=0, microsecond=0)
                        + timedelta(hours=1), trace.end)  # fmt: skip
        size = scheduled[moment.hour]
        month = f"{moment.year:04d}-{moment.month:02d}"
        by_month[month] = by_month.get(month, 0.0) + (
            float("inf") if size is None else size * (following - moment).total_seconds()
        )
        moment = following
    months = []
    for month in sorted(seconds):
        scheduled_seconds = by_month.get(month, 0.0)
        months.append(
            MonthBill(
                month,
                trace.requests_by_month.get(month, 0),
                trace.serverless_micros_by_month.get(month, 0),
                None if always_on is None else _hours_cost(always_on * seconds[month], hour_micros),
                None if scheduled_seconds == float("inf")
                else _hours_cost(scheduled_seconds, hour_micros),
            )
        )  # fmt: skip
    return months


def _whole(micros: float) -> int | None:
    """Micros for JSON; None where no fleet holds the traffic (an infinite bill)."""
    return None if math.isinf(micros) else round(micros)


def _at_least_one(size: int | None) -> int | None:
    """A dedicated fleet has an accelerator even where a thinned trace has no request."""
    return None if size is None else max(1, size)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _hours_cost(accelerator_seconds: float, hour_micros: int) -> int:
    """As the ledger charges a dedicated replica's time (``fleet.replicas``)."""
    return accelerator_charge_micros(accelerator_seconds, 1, hour_micros)
