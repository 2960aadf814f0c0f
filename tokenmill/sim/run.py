"""One simulation: a scenario (workload, fleet size, hardware) under one policy."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tokenmill.fleet.inventory import GIB, Accelerator, AcceleratorKind, Inventory, Node
from tokenmill.protocol.tiers import ServiceTier
from tokenmill.sim.events import EventLoop
from tokenmill.sim.fleet import ProfileFor, SimFleet
from tokenmill.sim.metrics import (
    FleetWindow,
    Summary,
    Timeline,
    summarize,
    tier_summary,
    ttft_slo_seconds,
)
from tokenmill.sim.perf import (
    CPU_NODE,
    LOAD_BANDWIDTH_BYTES_PER_SECOND,
    EngineProfile,
    ModelSpec,
    accelerator_kind,
    cpu_profile,
    gpu_profile,
    model_spec,
)
from tokenmill.sim.policies import build_sim_policy, model_demands
from tokenmill.sim.replica import Device, ReplicaState, RequestRecord, SimReplica
from tokenmill.sim.workload import (
    AZURE_CONV,
    DEFAULT_MIX,
    MOONCAKE_BLOCK_TOKENS,
    MOONCAKE_CONV,
    ModelMix,
    SimRequest,
    TraceRow,
    assign_models,
    build_models,
    gamma_arrivals,
    load_azure,
    load_mooncake,
    overlay,
    poisson_arrivals,
    synthetic_rows,
    trace_dir,
)

TRACES = ("azure", "mooncake", "poisson", "gamma")


@dataclass(frozen=True, slots=True)
class Scenario:
    trace: str = "azure"
    models: int = 40
    zipf_exponent: float = 1.5
    mix: ModelMix = DEFAULT_MIX
    speedup: float = 1.0
    trace_copies: int = 1  # overlay this many rotated copies of a recorded trace
    duration_seconds: float | None = None
    accelerator: str = "H100-80GB"
    # a CPU calibration (``tokenmill/sim/calibration``): replicas run as our engine measured
    # on a CPU, one per node, instead of the accelerator's datasheet model
    calibration: str | None = None
    accelerators_per_node: int = 8
    load_from: str = "host"
    engine_start_seconds: float = 0.0
    rate_per_second: float = 5.0  # synthetic traces
    burstiness_cv: float = 4.0  # gamma trace
    lengths: str = "azure"  # synthetic traces: token lengths resampled from this trace
    seed: int = 0
    # Service tiers: this share of requests asks for priority (the rest default); with
    # ``tiers`` the fleet serves them as tokenmill does, else first come, first served.
    priority_share: float = 0.0
    tiers: bool = False
    tick_seconds: float = 2.0
    sample_seconds: float = 30.0
    drain_seconds: float = 600.0
    data_dir: Path = field(default_factory=trace_dir)


@dataclass(slots=True)
class Workload:
    models: list[ModelSpec]
    requests: list[SimRequest]
    prefix_block_tokens: int
    note: str


def build_workload(scenario: Scenario) -> Workload:
    rng = random.Random(scenario.seed)
    models = build_models(scenario.models, scenario.mix, rng)
    rows: list[TraceRow]
    block_tokens = MOONCAKE_BLOCK_TOKENS
    if scenario.trace == "azure":
        rows = load_azure(scenario.data_dir / AZURE_CONV)
        note = f"Azure LLM 2023 conversation trace ({AZURE_CONV}), token counts as recorded"
    elif scenario.trace == "mooncake":
        rows = load_mooncake(scenario.data_dir / MOONCAKE_CONV)
        note = f"Mooncake conversation trace ({MOONCAKE_CONV}), 512-token prefix blocks"
    elif scenario.trace in ("poisson", "gamma"):
        duration = scenario.duration_seconds or 3600.0
        lengths = length_source(scenario)
        if scenario.trace == "poisson":
            times = poisson_arrivals(scenario.rate_per_second, duration, rng)
        else:
            times = gamma_arrivals(scenario.rate_per_second, scenario.burstiness_cv, duration, rng)
        rows = synthetic_rows(times, lengths, rng)
        note = (
            f"{scenario.trace} arrivals at {scenario.rate_per_second}/s, "
            f"{scenario.lengths} token lengths"
        )
    else:
        raise ValueError(f"unknown trace {scenario.trace!r}; known: {', '.join(TRACES)}")
    if scenario.trace_copies > 1:
        rows = overlay(rows, scenario.trace_copies, rng)
        note += f", {scenario.trace_copies} rotated copies overlaid"
    requests = assign_models(
        rows,
        models,
        zipf_exponent=scenario.zipf_exponent,
        speedup=scenario.speedup if scenario.trace in ("azure", "mooncake") else 1.0,
        duration_seconds=scenario.duration_seconds,
        rng=rng,
    )
    return Workload(models, requests, block_tokens, note)


def length_source(scenario: Scenario) -> list[TraceRow]:
    if scenario.lengths == "azure":
        return load_azure(scenario.data_dir / AZURE_CONV)
    if scenario.lengths == "mooncake":
        return [
            TraceRow(0.0, row.prompt_tokens, row.output_tokens)
            for row in load_mooncake(scenario.data_dir / MOONCAKE_CONV)
        ]
    raise ValueError(f"unknown length source {scenario.lengths!r}; known: azure, mooncake")


def hardware(scenario: Scenario) -> tuple[AcceleratorKind, ProfileFor]:
    """The accelerator kind and how a replica of a model runs on it."""
    if scenario.calibration is not None:
        profile = cpu_profile(scenario.calibration)
        return CPU_NODE, lambda model, memory_bytes: profile
    kind = accelerator_kind(scenario.accelerator)
    return kind, lambda model, memory_bytes: gpu_profile(model, kind, memory_bytes)


def build_inventory(kind: AcceleratorKind, accelerators: int, per_node: int) -> Inventory:
    nodes: list[Node] = []
    left = accelerators
    while left > 0:
        count = min(per_node, left)
        node_id = f"n{len(nodes):04d}"
        devices = tuple(
            Accelerator(f"{node_id}/{index}", kind.name, kind.memory_bytes)
            for index in range(count)
        )
        nodes.append(Node(node_id, "sim", devices, 64, 512 * GIB))
        left -= count
    return Inventory(tuple(nodes))


@dataclass(slots=True)
class SimResult:
    summary: Summary
    timeline: Timeline
    records: list[RequestRecord] = field(repr=False)


def simulate(
    scenario: Scenario, workload: Workload, policy_name: str, accelerators: int
) -> SimResult:
    started = time.perf_counter()
    kind, profile_for = hardware(scenario)
    policy = build_sim_policy(policy_name)
    policy.size_for(accelerators, len(workload.models))
    # the SLO's unloaded baseline: a replica alone on a whole accelerator
    profiles = {m.model_id: profile_for(m, kind.memory_bytes) for m in workload.models}
    demand = model_demands(workload.requests, profiles)
    loop = EventLoop()
    timeline = Timeline(scenario.sample_seconds)
    records: list[RequestRecord] = []
    fleet = SimFleet(
        loop,
        build_inventory(kind, accelerators, scenario.accelerators_per_node),
        kind,
        workload.models,
        demand,
        policy,
        profile_for,
        load_bandwidth_bytes_per_second=LOAD_BANDWIDTH_BYTES_PER_SECOND[scenario.load_from],
        engine_start_seconds=scenario.engine_start_seconds,
        prefix_block_tokens=workload.prefix_block_tokens,
        on_finished=timeline.finished,
        tiers=scenario.tiers,
    )
    tier_of = random.Random(scenario.seed + 1)
    end_seconds = workload.requests[-1].arrival_seconds if workload.requests else 0.0
    stop_seconds = end_seconds + scenario.drain_seconds

    def arrive(request: SimRequest) -> None:
        profile = profiles[request.model_id]
        record = RequestRecord(
            request, ttft_slo_seconds(profile.unloaded_ttft_seconds(request.prompt_tokens))
        )
        if tier_of.random() < scenario.priority_share:
            record.asked = record.tier = ServiceTier.PRIORITY
        records.append(record)
        timeline.arrived()
        fleet.submit(record)

    for request in workload.requests:
        loop.at(request.arrival_seconds, lambda r=request: arrive(r))  # type: ignore[misc]

    def tick() -> None:
        fleet.tick()
        if not policy.fixed and loop.now_seconds + scenario.tick_seconds <= stop_seconds:
            loop.after(scenario.tick_seconds, tick)

    last_busy = [0.0]

    def sample() -> None:
        states = fleet.replica_states()
        in_use = fleet.accelerators_in_use()
        busy = fleet.busy_seconds()
        window = scenario.sample_seconds * max(in_use, 1)
        timeline.sample(
            loop.now_seconds,
            states[ReplicaState.READY] + states[ReplicaState.DRAINING],
            states[ReplicaState.LOADING],
            in_use,
            (busy - last_busy[0]) / window,
        )
        last_busy[0] = busy
        if loop.now_seconds + scenario.sample_seconds <= end_seconds:
            loop.after(scenario.sample_seconds, sample)

    window: list[FleetWindow] = []

    def close_window() -> None:
        fleet.finish()
        counters = fleet.counters
        window.append(
            FleetWindow(
                window_seconds=loop.now_seconds,
                accelerator_seconds=counters.accelerator_seconds,
                busy_seconds=fleet.busy_seconds(),
                replica_seconds=counters.replica_seconds,
                placements=counters.placements,
                placement_failures=counters.placement_failures,
            )
        )

    loop.at(0.0, tick)
    loop.at(scenario.sample_seconds, sample)
    loop.at(end_seconds, close_window)
    loop.run(until_seconds=stop_seconds)
    summary = summarize(policy_name, accelerators, records, window[0])
    summary.events = loop.events_run
    summary.extra["minimum_accelerators"] = fleet.minimum_accelerators()
    if scenario.priority_share > 0:
        summary.extra["tiers"] = tier_summary(records, window[0].window_seconds)
    summary.wall_seconds = time.perf_counter() - started
    return SimResult(summary, timeline, records)


def simulate_replica(
    profile: EngineProfile,
    requests: Sequence[SimRequest],
    model: ModelSpec | None = None,
) -> list[RequestRecord]:
    """One ready replica serving ``requests`` at their arrival times (no fleet around it)."""
    loop = EventLoop()
    records = [RequestRecord(r, float("inf")) for r in requests]
    replica = SimReplica(
        "replica",
        model or model_spec("smollm2", "smollm2-135m"),
        profile,
        Device("local"),
        loop,
        on_finished=lambda replica, record: None,
    )
    replica.mark_ready()
    for record in records:
        loop.at(record.request.arrival_seconds, lambda r=record: replica.submit(r))  # type: ignore[misc]
    loop.run()
    return records
