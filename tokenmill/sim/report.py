"""The report of a comparison: a terminal table, a JSON file and PNG plots over time."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenmill.sim.metrics import Summary, Timeline
from tokenmill.sim.perf import DECODE_BANDWIDTH_EFFICIENCY, PREFILL_FLOPS_EFFICIENCY
from tokenmill.sim.search import SearchResult

SOURCES = (
    "Accelerator datasheets: tokenmill.fleet.inventory.KNOWN_ACCELERATOR_KINDS (NVIDIA).",
    f"Decode at {DECODE_BANDWIDTH_EFFICIENCY:.0%} of HBM bandwidth: Llama-3.1-8B BF16 on vLLM, "
    "A100 at ~77% of its roofline (J. Musgrave, vLLM throughput-latency sweep on A100) and "
    "6.48 ms/token on H100-80GB (InferenceBench concurrency-sweep recipe, vLLM 0.21).",
    f"Prefill at {PREFILL_FLOPS_EFFICIENCY:.0%} of dense BF16 FLOPS: 38-43% MFU on H100 "
    "(The Llama 3 Herd of Models, Meta 2024, table 4).",
    "Scheduler limits: vLLM max_num_seqs 256, gpu_memory_utilization 0.9 (defaults), "
    "max_num_batched_tokens 2048 (vLLM optimization guide, for inter-token latency).",
    "Load bandwidth: PCIe 5.0 x16 64 GB/s (host), NVMe 7.45 GB/s (Samsung 990 PRO), "
    "100 Gb/s network.",
    "Goal reference: Alibaba Aegaeon (SOSP 2025) pools a model market at about 0.18 of the "
    "GPUs a dedicated fleet needs.",
)


@dataclass(slots=True)
class PolicyReport:
    summary: Summary  # at the smallest fleet meeting the SLO, or at the given size
    timeline: Timeline
    search: SearchResult | None = None


@dataclass(slots=True)
class Report:
    scenario: dict[str, Any]
    workload_note: str
    policies: list[PolicyReport] = field(default_factory=list)

    def baseline(self) -> PolicyReport | None:
        return next((p for p in self.policies if p.summary.policy == "dedicated"), None)

    def fleet_needed(self, report: PolicyReport) -> float:
        if report.search is not None and report.search.smallest_accelerators is not None:
            return float(report.search.smallest_accelerators)
        return report.summary.accelerators_provisioned

    def to_dict(self) -> dict[str, Any]:
        base = self.baseline()
        rows = []
        for p in self.policies:
            row: dict[str, Any] = {"summary": p.summary.to_dict(), "timeline": p.timeline.to_dict()}
            if p.search is not None:
                row["search"] = {
                    "smallest_accelerators": p.search.smallest_accelerators,
                    "attainment_by_size": p.search.attainment_by_size,
                    "monotone": p.search.monotone,
                }
            if base is not None:
                row["fraction_of_dedicated"] = self.fleet_needed(p) / self.fleet_needed(base)
            rows.append(row)
        return {
            "scenario": self.scenario,
            "workload": self.workload_note,
            "sources": list(SOURCES),
            "policies": rows,
        }


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(report: Report) -> str:
    base = report.baseline()
    headers = [
        "policy", "fleet", "vs dedicated", "provisioned", "SLO %", "busy %", "goodput/acc",
        "ttft p99", "tpot p99", "cold", "cold ttft p99", "prefix hit",
    ]  # fmt: skip
    rows: list[list[str]] = []
    for p in report.policies:
        s = p.summary
        needed = report.fleet_needed(p)
        fraction = needed / report.fleet_needed(base) if base is not None else None
        found = p.search.smallest_accelerators if p.search is not None else None
        fleet = (
            str(found)
            if found is not None
            else f"{s.accelerators}{'' if p.search is None else '!'}"
        )
        rows.append(
            [
                s.policy,
                fleet,
                _fmt(fraction),
                _fmt(s.accelerators_provisioned, 1),
                _fmt(100 * s.slo_attainment, 2),
                _fmt(100 * s.busy_utilisation, 1),
                _fmt(s.goodput_requests_per_second_per_accelerator, 3),
                _fmt(s.ttft_p99_seconds) + "s",
                _fmt(None if s.tpot_p99_seconds is None else 1000 * s.tpot_p99_seconds, 1) + "ms",
                str(s.cold_starts),
                _fmt(s.cold_start_ttft_p99_seconds) + "s",
                _fmt(None if s.prefix_hit_rate is None else 100 * s.prefix_hit_rate, 1),
            ]
        )
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    lines = [
        "  ".join(
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [headers, *rows]
    ]
    notes = [
        "fleet: smallest accelerator count with >= 99% of requests within SLO (search); "
        "'!' = not found, size shown was the largest tried",
        "provisioned: accelerators holding a replica, time-weighted; busy: share of that time "
        "computing; goodput/acc: requests within SLO per second per provisioned accelerator",
    ]
    return "\n".join([*lines, "", *notes])


def write_json(report: Report, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_dict(), indent=2, default=str))


def plot(report: Report, out_dir: Path) -> list[Path]:
    """One PNG per quantity over time (load, replicas, latency), a line per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    panels: Sequence[tuple[str, str, str]] = (
        ("load", "arrivals_per_second", "requests / s"),
        ("accelerators", "accelerators_in_use", "accelerators holding a replica"),
        ("replicas", "replicas_ready", "ready replicas"),
        ("busy", "busy_fraction", "busy fraction of provisioned"),
        ("ttft_p99", "ttft_p99_seconds", "TTFT p99 (s)"),
    )
    for name, key, label in panels:
        figure, axes = plt.subplots(figsize=(9, 3.2))
        for p in report.policies:
            data = p.timeline.to_dict()
            times = [t / 60 for t in data["times_seconds"]]
            values = [float("nan") if v is None else v for v in data[key]]
            axes.plot(times, values, label=p.summary.policy, linewidth=1.2)
            if name == "load":
                break  # the same arrivals for every policy
        axes.set_xlabel("minutes")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        if name != "load":
            axes.legend(loc="upper right", fontsize=8)
        figure.tight_layout()
        path = out_dir / f"{name}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written
