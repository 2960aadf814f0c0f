"""What a run measured: SLO attainment, accelerators provisioned, busy time, cold starts.

The SLO (issue 8): time to first token at most ``max(1 s, 5 x unloaded)``, where unloaded is
the prompt's prefill alone on an idle replica, and time per output token at most 100 ms
(averaged over the request's output). A request that never finished misses it.

Fleet figures are integrated over the measuring window, from time 0 to the last arrival:
accelerators holding at least one replica (loading or serving) count as provisioned, and an
accelerator is busy while any of its replicas is computing a step.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tokenmill.sim.replica import RequestRecord

TPOT_SLO_SECONDS = 0.1
TTFT_SLO_FLOOR_SECONDS = 1.0
TTFT_SLO_FACTOR = 5.0


def ttft_slo_seconds(unloaded_ttft_seconds: float) -> float:
    return max(TTFT_SLO_FLOOR_SECONDS, TTFT_SLO_FACTOR * unloaded_ttft_seconds)


def meets_slo(record: RequestRecord) -> bool:
    ttft, tpot = record.ttft_seconds, record.tpot_seconds
    if ttft is None or tpot is None:
        return False
    return ttft <= record.slo_ttft_seconds and tpot <= TPOT_SLO_SECONDS


def percentile(values: Sequence[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


@dataclass(frozen=True, slots=True)
class FleetWindow:
    """Fleet integrals over the measuring window (seconds)."""

    window_seconds: float
    accelerator_seconds: float
    busy_seconds: float
    replica_seconds: float
    placements: int
    placement_failures: int


@dataclass(slots=True)
class Summary:
    policy: str
    accelerators: int
    requests: int
    completed: int
    slo_attainment: float
    ttft_p50_seconds: float | None
    ttft_p99_seconds: float | None
    tpot_p50_seconds: float | None
    tpot_p99_seconds: float | None
    accelerators_provisioned: float
    replicas_provisioned: float
    busy_utilisation: float
    goodput_requests_per_second_per_accelerator: float
    goodput_tokens_per_second_per_accelerator: float
    throughput_tokens_per_second: float
    rejected: int
    cold_starts: int
    cold_start_ttft_p99_seconds: float | None
    prefix_hit_rate: float | None
    placements: int
    placement_failures: int
    events: int = 0
    wall_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(
    policy: str, accelerators: int, records: Iterable[RequestRecord], window: FleetWindow
) -> Summary:
    records = list(records)
    done = [r for r in records if r.finish_seconds is not None]
    good = [r for r in records if meets_slo(r)]
    ttfts = [t for r in records if (t := r.ttft_seconds) is not None]
    tpots = [t for r in done if (t := r.tpot_seconds) is not None and r.request.output_tokens > 1]
    cold = [r for r in records if r.cold_start]
    cold_ttfts = [t for r in cold if (t := r.ttft_seconds) is not None]
    with_blocks = [r for r in records if r.request.block_hashes and r.replica_id is not None]
    prompt_tokens = sum(r.request.prompt_tokens for r in with_blocks)
    seconds = max(window.window_seconds, 1e-9)
    provisioned = window.accelerator_seconds / seconds
    per_accelerator = max(provisioned, 1e-9)
    good_tokens = sum(r.request.output_tokens for r in good)
    done_tokens = sum(r.request.output_tokens for r in done)
    return Summary(
        policy=policy,
        accelerators=accelerators,
        requests=len(records),
        completed=len(done),
        slo_attainment=len(good) / len(records) if records else 1.0,
        ttft_p50_seconds=percentile(ttfts, 0.5),
        ttft_p99_seconds=percentile(ttfts, 0.99),
        tpot_p50_seconds=percentile(tpots, 0.5),
        tpot_p99_seconds=percentile(tpots, 0.99),
        accelerators_provisioned=provisioned,
        replicas_provisioned=window.replica_seconds / seconds,
        busy_utilisation=window.busy_seconds / max(window.accelerator_seconds, 1e-9),
        goodput_requests_per_second_per_accelerator=len(good) / seconds / per_accelerator,
        goodput_tokens_per_second_per_accelerator=good_tokens / seconds / per_accelerator,
        throughput_tokens_per_second=done_tokens / seconds,
        rejected=sum(r.rejected for r in records),
        cold_starts=len(cold),
        cold_start_ttft_p99_seconds=percentile(cold_ttfts, 0.99),
        prefix_hit_rate=(
            sum(r.cached_tokens for r in with_blocks) / prompt_tokens if prompt_tokens else None
        ),
        placements=window.placements,
        placement_failures=window.placement_failures,
    )


@dataclass(slots=True)
class Timeline:
    """Samples over time for the plots: load, replicas, accelerators, latency."""

    sample_seconds: float
    times_seconds: list[float] = field(default_factory=list)
    arrivals_per_second: list[float] = field(default_factory=list)
    replicas_ready: list[int] = field(default_factory=list)
    replicas_loading: list[int] = field(default_factory=list)
    accelerators_in_use: list[int] = field(default_factory=list)
    busy_fraction: list[float] = field(default_factory=list)
    ttft_p50_seconds: list[float | None] = field(default_factory=list)
    ttft_p99_seconds: list[float | None] = field(default_factory=list)
    _ttfts: list[float] = field(default_factory=list)
    _arrivals: int = 0

    def arrived(self) -> None:
        self._arrivals += 1

    def finished(self, record: RequestRecord) -> None:
        if record.ttft_seconds is not None:
            self._ttfts.append(record.ttft_seconds)

    def sample(
        self, now_seconds: float, ready: int, loading: int, accelerators: int, busy: float
    ) -> None:
        self.times_seconds.append(now_seconds)
        self.arrivals_per_second.append(self._arrivals / self.sample_seconds)
        self.replicas_ready.append(ready)
        self.replicas_loading.append(loading)
        self.accelerators_in_use.append(accelerators)
        self.busy_fraction.append(busy)
        self.ttft_p50_seconds.append(percentile(self._ttfts, 0.5))
        self.ttft_p99_seconds.append(percentile(self._ttfts, 0.99))
        self._ttfts = []
        self._arrivals = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "sample_seconds": self.sample_seconds,
            "times_seconds": self.times_seconds,
            "arrivals_per_second": self.arrivals_per_second,
            "replicas_ready": self.replicas_ready,
            "replicas_loading": self.replicas_loading,
            "accelerators_in_use": self.accelerators_in_use,
            "busy_fraction": self.busy_fraction,
            "ttft_p50_seconds": self.ttft_p50_seconds,
            "ttft_p99_seconds": self.ttft_p99_seconds,
        }


def tier_summary(records: Sequence[RequestRecord], window_seconds: float) -> dict[str, Any]:
    """Per tier asked for: requests, refused, served in a lower tier, share within SLO; and
    goodput (requests within SLO per second) in all. A refused request is not within SLO."""
    out: dict[str, Any] = {}
    asked: dict[str, list[RequestRecord]] = {}
    for record in records:
        asked.setdefault(str(record.asked), []).append(record)
    for tier, group in sorted(asked.items()):
        out[tier] = {
            "requests": len(group),
            "refused": sum(r.refused for r in group),
            "demoted": sum(r.tier != tier for r in group),
            "slo_attainment": sum(meets_slo(r) for r in group) / len(group),
        }
    good = sum(meets_slo(r) for r in records)
    out["goodput_requests_per_second"] = good / max(window_seconds, 1e-9)
    return out
