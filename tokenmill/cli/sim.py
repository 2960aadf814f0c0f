"""``tokenmill sim``: replay a trace over a simulated fleet under several policies."""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from tokenmill.sim.policies import SIM_POLICIES
from tokenmill.sim.run import TRACES


@click.command("sim")
@click.option("--trace", type=click.Choice(TRACES), default="azure", show_default=True)
@click.option("--models", type=click.IntRange(min=1), default=40, show_default=True)
@click.option(
    "--policies",
    default="dedicated,reactive,tokenmill",
    show_default=True,
    help=f"Comma-separated, from: {', '.join(SIM_POLICIES)}.",
)
@click.option(
    "--speedup",
    type=float,
    default=1.0,
    show_default=True,
    help="Divide the trace's arrival times by this.",
)
@click.option(
    "--copies",
    "trace_copies",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Overlay this many rotated copies of the trace (its rate times that).",
)
@click.option(
    "--duration",
    "duration_seconds",
    type=float,
    default=None,
    help="Simulated seconds of traffic (default: the whole trace, or 1 h synthetic).",
)
@click.option("--accelerator", default="H100-80GB", show_default=True)
@click.option(
    "--accelerators",
    type=click.IntRange(min=1),
    default=None,
    help="Fleet size (default: twice the models; with --search, the largest tried).",
)
@click.option(
    "--search/--no-search",
    default=True,
    show_default=True,
    help="Find each policy's smallest fleet with >= 99% of requests within SLO.",
)
@click.option(
    "--zipf",
    "zipf_exponent",
    type=float,
    default=1.5,
    show_default=True,
    help="Model popularity exponent: rank r gets weight r^-s.",
)
@click.option("--mix", default=None, help="Model mix, e.g. 'llama3.1-8b:0.5,qwen2.5-14b:0.5'.")
@click.option(
    "--load-from",
    type=click.Choice(["host", "disk", "network"]),
    default="host",
    show_default=True,
    help="Where a starting replica reads its weights from.",
)
@click.option(
    "--engine-start-seconds",
    type=float,
    default=0.0,
    show_default=True,
    help="Added to every replica load (0: an engine process is already running).",
)
@click.option(
    "--rate",
    "rate_per_second",
    type=float,
    default=5.0,
    show_default=True,
    help="Arrivals per second for the poisson and gamma traces.",
)
@click.option(
    "--cv",
    "burstiness_cv",
    type=float,
    default=4.0,
    show_default=True,
    help="Coefficient of variation of gamma inter-arrivals.",
)
@click.option(
    "--lengths",
    type=click.Choice(["azure", "mooncake"]),
    default="azure",
    show_default=True,
    help="Which trace the poisson and gamma traces resample token lengths from.",
)
@click.option(
    "--calibration",
    default=None,
    help="Run replicas as our engine measured on a CPU (e.g. cpu_smollm2.json), one per "
    "node, instead of --accelerator's datasheet model.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--priority-share",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of requests asking for the priority service tier (the rest: default).",
)
@click.option(
    "--tiers/--no-tiers",
    default=False,
    show_default=True,
    help="Serve tiers as tokenmill does (queue classes, admission by predicted TTFT); "
    "without: first come, first served.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("sim-out"),
    show_default=True,
    help="Directory for report.json and the plots.",
)
@click.option("--plots/--no-plots", default=True, show_default=True)
def sim(
    trace: str,
    models: int,
    policies: str,
    speedup: float,
    trace_copies: int,
    duration_seconds: float | None,
    accelerator: str,
    accelerators: int | None,
    search: bool,
    zipf_exponent: float,
    mix: str | None,
    load_from: str,
    engine_start_seconds: float,
    rate_per_second: float,
    burstiness_cv: float,
    lengths: str,
    calibration: str | None,
    seed: int,
    priority_share: float,
    tiers: bool,
    out_dir: Path,
    plots: bool,
) -> None:
    """Simulate a fleet serving a trace; compare policies by the accelerators they need."""
    from tokenmill.sim.metrics import Summary
    from tokenmill.sim.report import PolicyReport, Report, plot, table, write_json
    from tokenmill.sim.run import Scenario, SimResult, build_workload, simulate
    from tokenmill.sim.search import smallest_fleet
    from tokenmill.sim.workload import DEFAULT_MIX, ModelMix

    names = [p.strip() for p in policies.split(",") if p.strip()]
    unknown = [n for n in names if n not in SIM_POLICIES]
    if unknown:
        raise click.BadParameter(f"unknown policies {unknown}", param_hint="--policies")
    try:
        scenario = Scenario(
            trace=trace,
            models=models,
            zipf_exponent=zipf_exponent,
            mix=ModelMix.parse(mix) if mix else DEFAULT_MIX,
            speedup=speedup,
            trace_copies=trace_copies,
            duration_seconds=duration_seconds,
            accelerator=accelerator,
            load_from=load_from,
            engine_start_seconds=engine_start_seconds,
            rate_per_second=rate_per_second,
            burstiness_cv=burstiness_cv,
            lengths=lengths,
            calibration=calibration,
            accelerators_per_node=1 if calibration else 8,
            seed=seed,
            priority_share=priority_share,
            tiers=tiers,
        )
        workload = build_workload(scenario)
    except FileNotFoundError as exc:
        raise click.ClickException(
            f"{exc.filename} is missing: point TOKENMILL_TRACE_DIR at the traces' directory."
        ) from exc
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    largest = accelerators or max(16, 2 * models)
    click.echo(f"{len(workload.requests)} requests over {models} models: {workload.note}", err=True)
    scenario_dict = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(scenario).items()}
    report = Report(scenario_dict, workload.note)
    for name in names:
        results: dict[int, SimResult] = {}

        def run(size: int, name: str = name, results: dict[int, SimResult] = results) -> Summary:
            if size not in results:
                results[size] = simulate(scenario, workload, name, size)
                s = results[size].summary
                click.echo(
                    f"  {name:<10} {size:>5} accelerators: SLO {100 * s.slo_attainment:6.2f}%  "
                    f"provisioned {s.accelerators_provisioned:7.1f}  "
                    f"({s.events} events, {s.wall_seconds:.1f}s)" + _tiers_line(s),
                    err=True,
                )
            return results[size].summary

        first = run(largest)
        found = None
        if search:
            low = max(1, int(first.extra["minimum_accelerators"]))
            start = max(low, min(largest, math.ceil(first.accelerators_provisioned)))
            found = smallest_fleet(
                lambda n: run(n).slo_attainment, start=start, low=low, most=max(largest, start)
            )
        size = found.smallest_accelerators if found and found.smallest_accelerators else largest
        chosen = results[size]
        report.policies.append(PolicyReport(chosen.summary, chosen.timeline, found))
    click.echo(table(report))
    write_json(report, out_dir / "report.json")
    written = plot(report, out_dir) if plots else []
    click.echo(
        f"wrote {out_dir / 'report.json'}" + (f" and {len(written)} plots" if written else "")
    )


def _tiers_line(summary: Any) -> str:
    tiers = summary.extra.get("tiers")
    if not tiers:
        return ""
    parts = [
        f"{name} {100 * tiers[name]['slo_attainment']:.1f}% within SLO "
        f"({tiers[name]['refused']} refused)"
        for name in ("priority", "default")
        if name in tiers
    ]
    return f"\n      goodput {tiers['goodput_requests_per_second']:.2f} req/s; " + "; ".join(parts)
