"""``tokenmill advise TENANT``: serverless or dedicated, from the tenant's own traffic."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

import click
import orjson

from tokenmill.billing.pricing import format_micros

STEPS = 16  # sizing, each hour of the day, the grid and a bisection: about this many replays


@click.command("advise")
@click.argument("tenant")
@click.option("--model", help="One model (default: every model the tenant used).")
@click.option(
    "--cost-model",
    help="How a replica runs: 'cpu' (our engine, calibrated) or ARCHITECTURE@ACCELERATOR, "
    "e.g. llama3.1-8b@H100-80GB (default: the model's calibration).",
)
@click.option("--days", type=click.FloatRange(min=0.01, max=366), default=30.0, show_default=True)
@click.option("--since", type=click.DateTime(), help="Window start (UTC; default: DAYS ago).")
@click.option("--until", type=click.DateTime(), help="Window end (UTC; default: now).")
@click.option(
    "--scaling",
    type=click.Choice(["arrivals", "users"]),
    default="arrivals",
    show_default=True,
    help="How the traffic scales for the break-even: the same arrivals faster or slower, or "
    "more or fewer independent users (smoother when more).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the advice as JSON.")
def advise(
    tenant: str,
    model: str | None,
    cost_model: str | None,
    days: float,
    since: datetime | None,
    until: datetime | None,
    scaling: str,
    as_json: bool,
) -> None:
    """Replay TENANT's usage in the simulator: monthly bills per token and per accelerator-hour,
    the break-even volume, and a recommendation."""
    from datetime import UTC

    from tokenmill.advice.advisor import Advisor
    from tokenmill.billing.pricebook import PriceBookRepository
    from tokenmill.cli.admin import _open, _tenant
    from tokenmill.errors import InvalidRequest

    db, clock = _open()
    found = _tenant(db, clock, tenant)
    advisor = Advisor(db, PriceBookRepository(db, clock), clock)
    start, end = advisor.window(
        since.replace(tzinfo=UTC) if since else None,
        until.replace(tzinfo=UTC) if until else None,
        days,
    )
    models = [model] if model else advisor.models(found.id, start, end)
    if not models:
        raise click.ClickException(f"{tenant} used no model between {start} and {end}.")
    results = []
    for name in models:
        bar: Any = click.progressbar(length=STEPS, label=name, width=30, file=sys.stderr)
        with bar:

            def step(message: str, bar: Any = bar, name: str = name) -> None:
                bar.label = f"{name}: {message}"
                bar.update(1)

            try:
                advice = advisor.advise(
                    found.id, name, start, end, cost_model, progress=step, scaling=scaling
                )
            except InvalidRequest as exc:
                if model:
                    raise click.ClickException(exc.message) from None
                click.echo(f"{name}: skipped: {exc.message}", err=True)
                continue
            bar.update(STEPS)
        results.append(advice.as_json())
    if as_json:
        click.echo(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
        return
    for result in results:
        click.echo(describe(result))


def describe(advice: dict[str, Any]) -> str:
    from tokenmill.cli.main import format_table

    traffic = advice["traffic"]
    dedicated = advice["dedicated"]
    lines = [
        f"{advice['model']} for {advice['tenant_id']}, {advice['window']['days']} days from "
        f"{advice['window']['since'][:16]}: {traffic['requests']} requests "
        f"({traffic['requests_per_day']:,.0f}/day, peak hour {traffic['peak_hour_ratio']}x "
        f"the mean)",
        f"cost model {advice['cost_model']}, {format_micros(advice['accelerator_hour_micros'])} "
        f"per {advice['accelerator']} hour; always on: "
        f"{_or_dash(dedicated['always_on_accelerators'])}; by hour of day: "
        + " ".join(_or_dash(n) for n in dedicated["scheduled_accelerators_by_hour"]),
        "",
        format_table(
            ["month", "requests", "serverless", "always on", "scheduled"],
            [
                [
                    m["month"],
                    str(m["requests"]),
                    _money(m["serverless_micros"]),
                    _money(m["dedicated_always_on_micros"]),
                    _money(m["dedicated_scheduled_micros"]),
                ]
                for m in advice["months"]
            ],
        ),
        "",
        format_table(
            ["volume", "requests/day", "serverless/month", "dedicated/month", "accelerators"],
            [
                [
                    f"x{p['factor']:g}",
                    f"{p['requests_per_day']:,.0f}",
                    _money(p["serverless_monthly_micros"]),
                    _money(p["dedicated_monthly_micros"]),
                    _or_dash(p["accelerators"]),
                ]
                for p in advice["curve"]
            ],
        ),
        "",
        f"recommendation: {advice['recommendation']}",
        *(f"  {reason}" for reason in advice["reasons"]),
        "",
    ]
    return "\n".join(lines)


def _money(micros: int | None) -> str:
    return "-" if micros is None else format_micros(micros)


def _or_dash(value: Any) -> str:
    return "-" if value is None else str(value)
