"""The cost advisor's figures (issue 21): its bill against the ledger, its fleet and break-even
against direct simulator searches, and where the break-even lands for the Azure trace's shape.

    .venv/bin/python bench/advisor.py [--quick] [--out bench/results/advisor.json]

1. Ledger: a tenant's synthetic usage (with records before and after the window, and another
   tenant's) written through ``UsageRepository.insert_many``, the gateway's own path, which
   debits the ledger in the same transaction; the advisor's serverless figure, month by month,
   must equal the ledger's usage debits for the same window exactly.
2. Agreement: synthetic tenants (Poisson and bursty Gamma arrivals, 1k, 10k and 100k requests
   a day, Azure-conversation and Mooncake token lengths, one day, Llama-3.1-8B on H100) are
   written as usage records and advised on. Baselines in the same run: the smallest always-on
   fleet from ``tokenmill sim --policies always_on --search`` on the same traffic (a separate
   process), and the volume where the bills cross, found by generating fresh traffic at each
   candidate rate (not by scaling the tenant's trace, as the advisor does) and replaying it on
   the fleet whose bill meets the per-token one there. Goals: the same fleet; break-even
   within 10%. The advisor scales the trace as the same arrivals faster or slower (its
   default); the break-even with more or fewer independent users instead (``--scaling
   users``) is shown beside it.
3. The Azure conversation trace's shape (its real arrivals and lengths) on Llama-3.1-8B and an
   H100 at the price book's price: where dedicated starts to pay, at the platform's default
   token prices and at others, against the 10,000 requests/day rule of thumb.

Prints tables and writes JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tokenmill.advice.advisor import Advisor, advise_trace
from tokenmill.advice.replay import CostModel, FleetSizer, replay
from tokenmill.advice.trace import TenantTrace
from tokenmill.billing.ledger import EntryKind, LedgerRepository
from tokenmill.billing.pricebook import PriceBook, PriceBookRepository
from tokenmill.billing.pricing import Price, TokenUsage, format_micros
from tokenmill.billing.usage import UsageEvent, UsageRepository
from tokenmill.catalog.install import ACCELERATOR_HOUR_MICROS, install_accelerator_prices
from tokenmill.clock import ManualClock
from tokenmill.control.tenants import TenantRepository
from tokenmill.sim.run import Scenario, build_workload
from tokenmill.sim.search import SLO_TARGET
from tokenmill.sim.workload import AZURE_CONV, ModelMix, TraceRow, load_azure, trace_dir

LLAMA = "llama3.1-8b"
COST_MODEL = f"{LLAMA}@H100-80GB"
START = datetime(2026, 10, 1, tzinfo=UTC)
DURATION = 0.25  # seconds each synthetic request took (a record is written when it ends)
VOLUMES = (1_000, 10_000, 100_000)  # requests/day of the synthetic tenants, by default
# Each tenant's seed, as the full run numbers them (so a run of some of them sees the same
# traffic): 3, 4, 5, 6 for the first volume's four, then 4 more for each volume after.
SEEDS = {("poisson", "azure"): 3, ("poisson", "mooncake"): 4,
         ("gamma", "azure"): 5, ("gamma", "mooncake"): 6}  # fmt: skip
DAY = 86400.0
# the bundled chat model's default prices (tokenmill/catalog/families/smollm2.toml)
DEFAULT_PRICE = Price(20_000, 5_000, 40_000, 0, 100_000)
# token prices for the agreement check, high enough for most crossings to fall in x0.1-x10
BENCH_PRICE = Price(1_000_000, 250_000, 2_000_000)


def open_db(directory: Path) -> Any:
    from tokenmill.store.db import Database

    directory.mkdir(parents=True, exist_ok=True)
    db = Database(f"sqlite:///{directory}/advisor.db")
    db.migrate()
    return db


def write_usage(
    db: Any, book: PriceBook, tenant_id: str, model: str, rows: list[TraceRow], start: datetime
) -> None:
    events = []
    for index, row in enumerate(rows):
        created = start + timedelta(seconds=row.arrival_seconds + DURATION)
        usage = TokenUsage(row.prompt_tokens, 0, row.output_tokens)
        events.append(
            UsageEvent(
                f"{tenant_id}-{model}-{index}", tenant_id, "key", model, "chat.completions",
                True, row.prompt_tokens, 0, row.output_tokens, 0.1, DURATION, "ok", 200, None,
                created, book.cost_micros(model, usage, created),
            )
        )  # fmt: skip
    repository = UsageRepository(db)
    for chunk in range(0, len(events), 5000):
        repository.insert_many(events[chunk : chunk + 5000])


def synthetic(
    arrivals: str, per_day: float, lengths: str, seed: int, days: float = 1.0
) -> list[TraceRow]:
    scenario = Scenario(
        trace="poisson" if arrivals == "poisson" else "gamma",
        models=1,
        mix=ModelMix.parse(f"{LLAMA}:1"),
        rate_per_second=per_day / DAY,
        burstiness_cv=4.0,
        duration_seconds=days * DAY,
        lengths=lengths,
        seed=seed,
    )
    return [
        TraceRow(r.arrival_seconds, r.prompt_tokens, r.output_tokens)
        for r in build_workload(scenario).requests
    ]


# 1. ledger ---------------------------------------------------------------------------------


def ledger_check(directory: Path, per_day: float) -> dict[str, Any]:
    db = open_db(directory / "ledger")
    clock = ManualClock(wall=START - timedelta(days=1))
    prices = PriceBookRepository(db, clock)
    prices.add("chat", DEFAULT_PRICE)
    tenants = TenantRepository(db, clock)
    acme, other = tenants.create("acme"), tenants.create("other")
    book = prices.load()
    # twelve days from 2026-10-25, across a month's end; the window is the middle ten
    spread = synthetic("gamma", per_day, "azure", seed=1, days=12)
    begin = datetime(2026, 10, 25, tzinfo=UTC)
    write_usage(db, book, acme.id, "chat", spread, begin)
    write_usage(db, book, other.id, "chat", spread[:2000], begin)
    clock.advance(40 * DAY)
    since, until = begin + timedelta(days=1), begin + timedelta(days=11)
    trace = Advisor(db, prices, clock).trace(acme.id, "chat", since, until)
    ledger = LedgerRepository(db, clock)
    by_month: dict[str, int] = {}
    for entry in ledger.entries(acme.id, since=since, until=until, kinds=[EntryKind.USAGE]):
        month = entry.created_at.strftime("%Y-%m")
        by_month[month] = by_month.get(month, 0) - entry.amount_micros
    return {
        "records": len(spread),
        "window": [since.isoformat(), until.isoformat()],
        "advisor_micros_by_month": trace.serverless_micros_by_month,
        "ledger_micros_by_month": by_month,
        "equal": trace.serverless_micros_by_month == by_month,
    }


# 2. agreement ------------------------------------------------------------------------------


def sim_cli_fleet(arrivals: str, per_day: float, lengths: str, seed: int, out: Path) -> int | None:
    """``tokenmill sim``'s own search on the same traffic, in a separate process."""
    command = [
        str(Path(sys.executable).parent / "tokenmill"), "sim",
        "--trace", "poisson" if arrivals == "poisson" else "gamma",
        "--rate", repr(per_day / DAY), "--cv", "4", "--duration", repr(DAY),
        "--lengths", lengths, "--models", "1", "--mix", f"{LLAMA}:1", "--seed", str(seed),
        "--policies", "always_on", "--accelerators", "64", "--no-plots", "--out", str(out),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True)
    report = json.loads((out / "report.json").read_text())
    found: int | None = report["policies"][0]["search"]["smallest_accelerators"]
    return found


def direct_crossing(
    arrivals: str, per_day: float, lengths: str, seed: int, hour_micros: int
) -> float | None:
    """The least volume factor (from a tenant's tenth to ten times) where a fleet for freshly
    generated traffic at that rate costs no more than the same traffic per token (None: not
    up to ten times).

    The per-token bill is a line in the volume and the fleet's a step function, so they can
    only meet at a step: where ``n`` accelerators cost as much as the traffic per token. Each
    ``n`` from one up is tried on its own fresh traffic at that volume, with as many requests
    as the tenant's trace holds (below the tenant's rate, over more than a day), so a fleet on
    the 99% line is judged on as much traffic as the advisor has."""
    cost_model = CostModel.parse(COST_MODEL)
    fresh = seed + 7919
    # the per-token bill of a day at the tenant's rate, in expectation (from 100k requests)
    sample = synthetic(arrivals, per_day, lengths, fresh, max(1.0, 100_000 / per_day))
    per_factor = per_day * sum(_cost(BENCH_PRICE, row) for row in sample) / len(sample)
    for accelerators in itertools.count(1):
        factor = max(0.1, accelerators * hour_micros * 24 / per_factor)
        if factor > 10.0:
            return None
        days = max(1.0, 1.0 / factor)
        rows = synthetic(arrivals, per_day * factor, lengths, fresh, days)
        if replay(rows, cost_model, accelerators).slo_attainment >= SLO_TARGET:
            return factor
    return None


def _cost(price: Price, row: TraceRow) -> int:
    from tokenmill.billing.pricing import cost_micros

    return cost_micros(TokenUsage(row.prompt_tokens, 0, row.output_tokens), price)


def agreement(
    directory: Path, volumes: list[int], arrivals_kinds: tuple[str, ...] = ("poisson", "gamma")
) -> list[dict[str, Any]]:
    hour_micros = ACCELERATOR_HOUR_MICROS["H100-80GB"]
    results: list[dict[str, Any]] = []
    for per_day in volumes:
        for arrivals in arrivals_kinds:
            for lengths in ("azure", "mooncake"):
                order = VOLUMES.index(per_day) if per_day in VOLUMES else volumes.index(per_day)
                seed = SEEDS[arrivals, lengths] + 4 * order
                name = f"{arrivals}-{per_day}-{lengths}"
                started = time.perf_counter()
                db = open_db(directory / name)
                clock = ManualClock(wall=START - timedelta(days=1))
                prices = PriceBookRepository(db, clock)
                prices.add("llama", BENCH_PRICE)
                install_accelerator_prices(prices)
                tenant = TenantRepository(db, clock).create(name)
                rows = synthetic(arrivals, per_day, lengths, seed)
                write_usage(db, prices.load(), tenant.id, "llama", rows, START)
                clock.advance(3 * DAY)
                advisor = Advisor(db, prices, clock)
                advice, users = (
                    advisor.advise(tenant.id, "llama", START, START + timedelta(days=1),
                                   COST_MODEL, scaling=scaling)
                    for scaling in ("arrivals", "users")
                )  # fmt: skip
                direct = sim_cli_fleet(arrivals, per_day, lengths, seed, directory / name / "sim")
                crossing = direct_crossing(arrivals, per_day, lengths, seed, hour_micros)
                factor = advice.curve.factor
                results.append({
                    "tenant": name,
                    "requests": len(rows),
                    "advisor_fleet": advice.always_on,
                    "sim_fleet": direct,
                    "same_fleet": advice.always_on == direct,
                    "advisor_break_even_per_day": None if factor is None else factor * per_day,
                    "direct_break_even_per_day": None if crossing is None else crossing * per_day,
                    "break_even_error": _error(factor, crossing),
                    "users_break_even_per_day": None if users.curve.factor is None
                    else users.curve.factor * per_day,
                    "users_break_even_error": _error(users.curve.factor, crossing),
                    "advisor_beyond": advice.curve.beyond,
                    "recommendation": advice.recommendation,
                    "seconds": round(time.perf_counter() - started, 1),
                })  # fmt: skip
                print(_agreement_line(results[-1]), flush=True)
    return results


def _error(found: float | None, truth: float | None) -> float | None:
    return None if found is None or truth is None else abs(found - truth) / truth


def _agreement_line(r: dict[str, Any]) -> str:
    def per_day(value: float | None) -> str:
        return "-" if value is None else f"{value:,.0f}"

    error = "-" if r["break_even_error"] is None else f"{100 * r['break_even_error']:.1f}%"
    return (
        f"{r['tenant']:<24} {r['requests']:>7} {r['advisor_fleet']!s:>4} "
        f"{r['sim_fleet']!s:>4} {per_day(r['advisor_break_even_per_day']):>11} "
        f"{per_day(r['direct_break_even_per_day']):>11} {error:>6} "
        f"{per_day(r['users_break_even_per_day']):>11} {r['recommendation']:<10}"
        f" {r['seconds']:>6.1f}s"
    )


# 3. the Azure trace's shape ----------------------------------------------------------------


def azure_shape(quick: bool) -> dict[str, Any]:
    rows = load_azure(trace_dir() / AZURE_CONV)
    span = rows[-1].arrival_seconds + 1.0
    end = START + timedelta(seconds=span)
    hour_micros = ACCELERATOR_HOUR_MICROS["H100-80GB"]
    cost_model = CostModel.parse(COST_MODEL)
    sizer = FleetSizer(cost_model)
    grid = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
    out: dict[str, Any] = {"requests": len(rows), "span_seconds": span, "points": []}
    multiples = (1, 10, 30, 100) if quick else (1, 10, 30, 100, 300)
    for multiple in multiples:
        price = DEFAULT_PRICE.scaled(Fraction(multiple))
        trace = TenantTrace("azure", START, end, rows)
        trace.serverless_micros_by_month = {"2026-10": sum(_cost(price, r) for r in rows)}
        trace.requests_by_month = {"2026-10": len(rows)}
        advice = advise_trace("azure", trace, cost_model, hour_micros, lambda m: None, grid, sizer)
        factor = advice.curve.factor
        out["points"].append({
            "token_price_multiple": multiple,
            "input_per_mtok": format_micros(price.input_micros_per_mtok),
            "output_per_mtok": format_micros(price.output_micros_per_mtok),
            "break_even_per_day": None if factor is None else factor * trace.requests_per_day,
            "beyond": advice.curve.beyond,
        })  # fmt: skip
    # what price puts the break-even at 10,000 requests a day: one day's fleet for that
    # volume, over one day's tokens at that volume
    per_day = len(rows) * DAY / span
    factor = 10_000 / per_day
    fleet = sizer.smallest(scaled(rows, factor, span), factor)
    tokens = sum(r.prompt_tokens + r.output_tokens for r in rows) * factor * DAY / span
    out["requests_per_day"] = per_day
    out["fleet_at_10k"] = fleet
    out["blended_price_per_mtok_for_10k"] = (
        None if fleet is None else fleet * hour_micros * 24 / tokens * 1_000_000
    )
    return out


def scaled(rows: list[TraceRow], factor: float, span: float) -> list[TraceRow]:
    from tokenmill.advice.breakeven import scaled_rows

    return scaled_rows(rows, factor, span)


def print_azure(azure: dict[str, Any]) -> None:
    print(f"Azure conversation shape: {azure['requests']} requests in "
          f"{azure['span_seconds']:.0f} s ({azure['requests_per_day']:,.0f}/day), "
          f"{COST_MODEL} at {format_micros(ACCELERATOR_HOUR_MICROS['H100-80GB'])}/h")  # fmt: skip
    for point in azure["points"]:
        where = (
            f"{point['break_even_per_day']:,.0f} requests/day"
            if point["break_even_per_day"] is not None
            else f"none ({point['beyond']} the range)"
        )
        print(f"  tokens at {point['input_per_mtok']}/{point['output_per_mtok']} per Mtok "
              f"(default x{point['token_price_multiple']}): break-even {where}")  # fmt: skip
    blended = azure["blended_price_per_mtok_for_10k"]
    print(f"  break-even at 10,000/day needs {azure['fleet_at_10k']} H100 and a blended "
          f"{'-' if blended is None else format_micros(round(blended))} per Mtok")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k requests/day only")
    parser.add_argument(
        "--volumes", type=int, nargs="*", help="requests/day of the synthetic tenants"
    )
    parser.add_argument("--no-azure", action="store_true", help="skip the Azure trace's shape")
    parser.add_argument(
        "--arrivals", nargs="*", default=["poisson", "gamma"], help="arrival processes to run"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/advisor.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        ledger = ledger_check(directory, 2_000)
        print(f"ledger: {ledger['advisor_micros_by_month']} == {ledger['ledger_micros_by_month']}:"
              f" {ledger['equal']}")  # fmt: skip
        print(f"{'tenant':<24} {'req':>7} {'adv':>4} {'sim':>4} {'adv b-e/day':>11} "
              f"{'sim b-e/day':>11} {'error':>6} {'users b-e':>11} {'advice':<10} "
              f"{'time':>7}")  # fmt: skip
        volumes = args.volumes or list(VOLUMES[:2] if args.quick else VOLUMES)
        agreed = agreement(directory, volumes, tuple(args.arrivals))
        azure = None if args.no_azure else azure_shape(args.quick)
    if azure is not None:
        print_azure(azure)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"ledger": ledger, "agreement": agreed, "azure": azure},
                                   indent=2, default=str))  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
