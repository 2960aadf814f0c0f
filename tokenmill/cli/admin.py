"""``tokenmill tenants|prices|credits|usage``: the admin API's actions, against the database.

Amounts are given and shown in units of the platform currency (``12.50``), converted to
micros exactly; tenants are named by name.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import click
import orjson

from tokenmill.billing.pricing import format_micros, parse_micros
from tokenmill.protocol.tiers import TIER_NAMES

if TYPE_CHECKING:
    from tokenmill.clock import SystemClock
    from tokenmill.control.tenants import TenantInfo
    from tokenmill.store.db import Database


def _open() -> tuple[Database, SystemClock]:
    from tokenmill.cli.main import _open_db

    return _open_db()


def _amount(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_micros(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def _tenant(db: Database, clock: SystemClock, name: str) -> TenantInfo:
    from tokenmill.control.tenants import TenantRepository

    found = TenantRepository(db, clock).get_by_name(name)
    if found is None:
        raise click.ClickException(f"No tenant named {name!r}.")
    return found


def _table(headers: list[str], rows: list[list[Any]]) -> None:
    from tokenmill.cli.main import format_table

    click.echo(format_table(headers, [[str(c) if c is not None else "-" for c in r] for r in rows]))


def limit_options(command: Any) -> Any:
    """--monthly-budget, --rpm, --tpm, --concurrency, --service-tier(s): a tenant's or a
    key's own terms."""
    tiers = click.Choice(TIER_NAMES)
    for option in reversed(
        [
            click.option("--monthly-budget", help="Monthly spending cap, e.g. 100.00."),
            click.option("--rpm", type=click.IntRange(min=0), help="Requests per minute."),
            click.option("--tpm", type=click.IntRange(min=0), help="Tokens per minute."),
            click.option("--concurrency", type=click.IntRange(min=0), help="In flight at once."),
            click.option("--service-tier", type=tiers, help="Default tier (service_tier auto)."),
            click.option(
                "--service-tiers", help="Tiers it may use, e.g. default,flex ('all': every one)."
            ),
        ]
    ):
        command = option(command)
    return command


def terms_from(
    monthly_budget: str | None,
    rpm: int | None,
    tpm: int | None,
    concurrency: int | None,
    service_tier: str | None = None,
    service_tiers: str | None = None,
) -> dict[str, Any]:
    given: dict[str, Any] = {
        "monthly_budget_micros": _amount(monthly_budget),
        "rpm_limit": rpm,
        "tpm_limit": tpm,
        "concurrency_limit": concurrency,
        "service_tier": service_tier,
    }
    terms = {k: v for k, v in given.items() if v is not None}
    if service_tiers is not None:
        names = [n.strip() for n in service_tiers.split(",") if n.strip()]
        terms["service_tiers"] = None if names == ["all"] else names
    return terms


@click.group()
def tenants() -> None:
    """Create, list and configure tenants."""


_share_weight = click.option(
    "--share-weight",
    type=click.IntRange(1, 1000),
    help="Weight in fair share between tenants on shared replicas (default 1).",
)


@tenants.command("create")
@click.argument("name")
@limit_options
@_share_weight
def tenants_create(name: str, share_weight: int | None, **limits: Any) -> None:
    from tokenmill.control.tenants import TenantRepository

    db, clock = _open()
    repo = TenantRepository(db, clock)
    created = repo.create(name)
    terms: dict[str, Any] = terms_from(**limits)
    if share_weight is not None:
        terms["share_weight"] = share_weight
    if terms:
        repo.update_terms(created.id, terms)
    click.echo(f"Created tenant {created.name} ({created.id}).")


@tenants.command("list")
def tenants_list() -> None:
    from tokenmill.control.tenants import TenantRepository

    db, clock = _open()
    rows = [
        [
            t.id,
            t.name,
            format_micros(t.monthly_budget_micros) if t.monthly_budget_micros is not None else None,
            t.rpm_limit,
            t.tpm_limit,
            t.concurrency_limit,
            t.share_weight or 1,
            t.service_tier or "default",
            ",".join(t.service_tiers) if t.service_tiers else "all",
        ]
        for t in TenantRepository(db, clock).list()
    ]
    headers = ["ID", "NAME", "MONTHLY BUDGET", "RPM", "TPM", "CONCURRENCY", "SHARE", "TIER"]
    _table([*headers, "TIERS"], rows)


@tenants.command("set")
@click.argument("name")
@limit_options
@_share_weight
@click.option("--model-limits", help='JSON, e.g. \'{"m": {"rpm": 10}}\'; "null" clears.')
def tenants_set(
    name: str, model_limits: str | None, share_weight: int | None, **limits: Any
) -> None:
    """Change a tenant's cap, limits and share (those not given are kept)."""
    from tokenmill.control.tenants import TenantRepository

    db, clock = _open()
    terms: dict[str, Any] = terms_from(**limits)
    if share_weight is not None:
        terms["share_weight"] = share_weight
    if model_limits is not None:
        terms["model_limits"] = orjson.loads(model_limits)
    TenantRepository(db, clock).update_terms(_tenant(db, clock, name).id, terms)
    click.echo(f"Updated tenant {name}.")


@click.group()
def prices() -> None:
    """Versioned prices per model (per million tokens, per request, per accelerator-hour)."""


@prices.command("set")
@click.argument("model")
@click.option("--input", "input_", default="0", help="Per million input tokens, e.g. 0.50.")
@click.option("--cached-input", default="0", help="Per million cached input tokens.")
@click.option("--output", default="0", help="Per million output tokens.")
@click.option("--per-request", default="0", help="Per request.")
@click.option("--accelerator-hour", default="0", help="Per accelerator-hour (dedicated).")
@click.option("--storage-gib-day", default="0", help="Per GiB of files held a day (model 'files').")
@click.option("--training", default="0", help="Per million trained tokens (fine-tuning).")
@click.option("--effective-at", help="ISO 8601 time with zone (default: now).")
@click.option(
    "--tier",
    type=click.Choice(TIER_NAMES),
    default="default",
    help="The service tier priced (without one, flex is half and priority twice default).",
)
def prices_set(
    model: str,
    tier: str,
    input_: str,
    cached_input: str,
    output: str,
    per_request: str,
    accelerator_hour: str,
    storage_gib_day: str,
    training: str,
    effective_at: str | None,
) -> None:
    """Add a price version; usage made before it keeps its old price."""
    from tokenmill.billing.pricebook import PriceBookRepository
    from tokenmill.billing.pricing import Price

    db, clock = _open()
    try:
        price = Price(
            input_micros_per_mtok=parse_micros(input_),
            cached_input_micros_per_mtok=parse_micros(cached_input),
            output_micros_per_mtok=parse_micros(output),
            request_micros=parse_micros(per_request),
            accelerator_hour_micros=parse_micros(accelerator_hour),
            storage_gib_day_micros=parse_micros(storage_gib_day),
            training_micros_per_mtok=parse_micros(training),
        )
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    when = datetime.fromisoformat(effective_at) if effective_at else None
    version = PriceBookRepository(db, clock).add(model, price, when, tier)
    click.echo(f"Price of {model} ({tier}) from {version.effective_at.isoformat()} set.")


@prices.command("list")
@click.option("--model")
def prices_list(model: str | None) -> None:
    from tokenmill.billing.pricebook import PriceBookRepository

    db, clock = _open()
    rows = [
        [
            v.model,
            v.service_tier,
            v.effective_at.isoformat(),
            format_micros(v.price.input_micros_per_mtok),
            format_micros(v.price.cached_input_micros_per_mtok),
            format_micros(v.price.output_micros_per_mtok),
            format_micros(v.price.request_micros),
            format_micros(v.price.accelerator_hour_micros),
        ]
        for v in PriceBookRepository(db, clock).list(model)
    ]
    _table(
        ["MODEL", "TIER", "FROM", "INPUT/M", "CACHED/M", "OUTPUT/M", "REQUEST", "ACCEL-HOUR"], rows
    )


@click.group()
def credits() -> None:
    """Prepaid credit: top-ups, adjustments, balances."""


@credits.command("add")
@click.argument("tenant")
@click.argument("amount")
@click.option("--note")
@click.option("--idempotency-key", help="Repeat-safe: the same key adds the credit once.")
@click.option("--adjustment", is_flag=True, help="A signed correction (needs --note).")
def credits_add(
    tenant: str, amount: str, note: str | None, idempotency_key: str | None, adjustment: bool
) -> None:
    from tokenmill.billing.ledger import LedgerRepository

    db, clock = _open()
    ledger = LedgerRepository(db, clock)
    found = _tenant(db, clock, tenant)
    micros = _amount(amount) or 0
    if adjustment:
        ledger.adjust(found.id, micros, note=note or "", idempotency_key=idempotency_key)
    else:
        ledger.top_up(found.id, micros, idempotency_key=idempotency_key, note=note)
    click.echo(f"Balance of {tenant}: {format_micros(ledger.balance(found.id))}")


@credits.command("show")
@click.argument("tenant")
def credits_show(tenant: str) -> None:
    from tokenmill.billing.ledger import EntryKind, LedgerRepository

    db, clock = _open()
    ledger = LedgerRepository(db, clock)
    found = _tenant(db, clock, tenant)
    kinds = [EntryKind.TOPUP, EntryKind.ADJUSTMENT]
    rows = [
        [e.created_at.isoformat(), e.kind.value, format_micros(e.amount_micros), e.note]
        for e in ledger.entries(found.id, kinds=kinds)
    ]
    _table(["WHEN", "KIND", "AMOUNT", "NOTE"], rows)
    click.echo(f"Balance: {format_micros(ledger.balance(found.id))}")


@click.group()
def usage() -> None:
    """Usage reports and monthly statements."""


@usage.command("show")
@click.argument("tenant")
@click.option(
    "--group-by", type=click.Choice(["model", "key", "day", "service_tier"]), default="model"
)
@click.option("--since", help="ISO 8601 time with zone.")
@click.option("--until", help="ISO 8601 time with zone.")
def usage_show(tenant: str, group_by: str, since: str | None, until: str | None) -> None:
    from tokenmill.billing.statements import Reports

    db, clock = _open()
    rows = Reports(db).usage(
        _tenant(db, clock, tenant).id,
        group_by,
        datetime.fromisoformat(since) if since else None,
        datetime.fromisoformat(until) if until else None,
    )
    _table(
        [group_by.upper(), "REQUESTS", "PROMPT", "CACHED", "COMPLETION", "COST"],
        [
            [
                r.group,
                r.requests,
                r.prompt_tokens,
                r.cached_tokens,
                r.completion_tokens,
                format_micros(r.cost_micros),
            ]
            for r in rows
        ],
    )


@usage.command("levels")
@click.argument("tenant", required=False)
@click.option("--hours", type=click.FloatRange(min=0, min_open=True), default=24.0)
def usage_levels(tenant: str | None, hours: float) -> None:
    """Service levels per model and tier over the last --hours (a tenant's, or everyone's)."""
    from datetime import UTC, timedelta

    from tokenmill.billing.statements import Reports
    from tokenmill.settings import Settings

    db, clock = _open()
    targets = Settings().ttft_targets
    since = datetime.now(UTC) - timedelta(hours=hours)
    tenant_id = _tenant(db, clock, tenant).id if tenant else None
    rows = Reports(db).service_levels(targets, tenant_id, since)

    def seconds(value: float | None) -> str | None:
        return f"{value:.2f}" if value is not None else None

    headers = ["MODEL", "TIER", "REQUESTS", "OK", "TTFT P50", "P99", "TPOT P50", "P99", "MET"]
    _table(
        [*headers, "AVAILABLE", "REFUSED/FAILED"],
        [
            [
                r.model,
                r.service_tier,
                r.requests,
                r.answered,
                seconds(r.ttft_p50),
                seconds(r.ttft_p99),
                seconds(r.tpot_p50),
                seconds(r.tpot_p99),
                f"{r.attainment:.1%}" if r.attainment is not None else None,
                f"{r.availability:.2%}",
                ", ".join(f"{code} {n}" for code, n in sorted(r.errors.items())) or None,
            ]
            for r in rows
        ],
    )


@usage.command("statement")
@click.argument("tenant")
@click.argument("month")
@click.option("--csv", "as_csv", is_flag=True)
def usage_statement(tenant: str, month: str, as_csv: bool) -> None:
    """A tenant's statement for MONTH (YYYY-MM): JSON, or CSV with --csv."""
    from tokenmill.billing.statements import Reports

    db, clock = _open()
    statement = Reports(db).statement(_tenant(db, clock, tenant).id, month)
    if as_csv:
        click.echo(statement.as_csv(), nl=False)
    else:
        click.echo(orjson.dumps(statement.as_json(), option=orjson.OPT_INDENT_2).decode())


COMMANDS = (tenants, prices, credits, usage)
