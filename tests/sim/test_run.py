"""A small end-to-end run of each policy over the real placement, autoscaler and balancer."""

from dataclasses import replace

import pytest

from tokenmill.sim.perf import CPU_CALIBRATION, CPU_NODE, cpu_profile
from tokenmill.sim.report import PolicyReport, Report, plot, table, write_json
from tokenmill.sim.run import Scenario, build_inventory, build_workload, hardware, simulate
from tokenmill.sim.workload import MOONCAKE_CONV, load_mooncake


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return Scenario(trace="gamma", models=10, rate_per_second=4.0, duration_seconds=600.0)


def test_policies_serve_the_same_trace_with_very_different_fleets(scenario: Scenario) -> None:
    workload = build_workload(scenario)
    results = {
        p: simulate(scenario, workload, p, 24) for p in ("dedicated", "reactive", "tokenmill")
    }
    for result in results.values():
        assert result.summary.requests == len(workload.requests) > 1000
        assert result.summary.completed == result.summary.requests
        assert result.summary.slo_attainment > 0.95
    dedicated = results["dedicated"].summary
    tokenmill = results["tokenmill"].summary
    assert dedicated.accelerators_provisioned == pytest.approx(10.0)  # one per model, all along
    assert dedicated.cold_starts < 0.01 * dedicated.requests  # only before the first loads
    assert tokenmill.accelerators_provisioned < 0.5 * dedicated.accelerators_provisioned
    assert tokenmill.busy_utilisation > 2 * dedicated.busy_utilisation
    assert tokenmill.cold_starts > 0


def test_a_fleet_too_small_for_dedicated_misses_the_slo(scenario: Scenario) -> None:
    workload = build_workload(scenario)
    result = simulate(scenario, workload, "dedicated", 5)
    assert result.summary.placement_failures > 0
    assert result.summary.slo_attainment < 0.99
    assert result.summary.extra["minimum_accelerators"] == 10


def test_mooncake_prefixes_hit_the_cache_under_prefix_affinity() -> None:
    scenario = Scenario(trace="mooncake", models=4, duration_seconds=300.0)
    workload = build_workload(scenario)
    summary = simulate(scenario, workload, "tokenmill", 16).summary
    # a replica's KV cache holds a few hundred 512-token blocks: far from every prefix seen
    assert summary.prefix_hit_rate is not None and 0.01 < summary.prefix_hit_rate < 0.4
    assert summary.rejected == 0


def test_report_writes_table_json_and_plots(scenario: Scenario, tmp_path) -> None:  # type: ignore[no-untyped-def]
    workload = build_workload(scenario)
    report = Report({"trace": "gamma"}, workload.note)
    for policy in ("dedicated", "tokenmill"):
        result = simulate(scenario, workload, policy, 12)
        report.policies.append(PolicyReport(result.summary, result.timeline))
    text = table(report)
    assert "dedicated" in text and "tokenmill" in text
    write_json(report, tmp_path / "report.json")
    assert (tmp_path / "report.json").stat().st_size > 1000
    assert {p.name for p in plot(report, tmp_path)} >= {"load.png", "replicas.png", "ttft_p99.png"}


def test_under_overload_tiers_keep_priority_within_slo_and_raise_goodput() -> None:
    overloaded = Scenario(
        trace="poisson", models=1, rate_per_second=20.0, duration_seconds=300.0, priority_share=0.25
    )
    workload = build_workload(overloaded)
    fcfs = simulate(overloaded, workload, "dedicated", 1).summary.extra["tiers"]
    tiered = simulate(replace(overloaded, tiers=True), workload, "dedicated", 1).summary
    tiers = tiered.extra["tiers"]
    assert fcfs["priority"]["slo_attainment"] < 0.1  # the queue grows without end
    assert fcfs["default"]["refused"] == fcfs["priority"]["refused"] == 0
    assert tiers["priority"]["slo_attainment"] > 0.99
    assert tiers["default"]["refused"] > 0.5 * tiers["default"]["requests"]
    assert tiers["goodput_requests_per_second"] > 5 * fcfs["goodput_requests_per_second"]
    assert tiered.completed + sum(t["refused"] for t in (tiers["priority"], tiers["default"])) == (
        tiered.requests
    )


def test_without_a_priority_share_there_is_no_tier_report(scenario: Scenario) -> None:
    workload = build_workload(replace(scenario, duration_seconds=60.0))
    assert "tiers" not in simulate(scenario, workload, "tokenmill", 24).summary.extra


def test_synthetic_arrivals_can_take_mooncake_s_token_lengths() -> None:
    azure = Scenario(trace="poisson", models=1, rate_per_second=0.5, duration_seconds=600.0)
    mooncake = replace(azure, lengths="mooncake")

    resampled = build_workload(mooncake)

    recorded = load_mooncake(mooncake.data_dir / MOONCAKE_CONV)
    lengths = {(r.prompt_tokens, r.output_tokens) for r in recorded}
    assert {(r.prompt_tokens, r.output_tokens) for r in resampled.requests} <= lengths
    assert "mooncake token lengths" in resampled.note
    same_arrivals = build_workload(azure).requests
    assert [r.arrival_seconds for r in resampled.requests] == [
        r.arrival_seconds for r in same_arrivals
    ]
    with pytest.raises(ValueError, match="unknown length source 'sharegpt'"):
        build_workload(replace(azure, lengths="sharegpt"))


def test_a_cpu_calibration_runs_our_engine_one_replica_a_node() -> None:
    gpu = Scenario(trace="poisson", models=1, rate_per_second=0.5, duration_seconds=300.0)
    cpu = replace(gpu, calibration=CPU_CALIBRATION, accelerators_per_node=1)
    workload = build_workload(cpu)

    kind, profile_for = hardware(cpu)

    assert kind == CPU_NODE
    assert profile_for(workload.models[0], kind.memory_bytes) == cpu_profile(CPU_CALIBRATION)
    nodes = build_inventory(kind, 3, cpu.accelerators_per_node).nodes
    assert [[a.kind for a in node.accelerators] for node in nodes] == [["cpu"]] * 3
    on_cpu = simulate(cpu, workload, "always_on", 3).summary
    assert on_cpu.completed == on_cpu.requests == len(workload.requests)
    assert on_cpu.accelerators_provisioned == on_cpu.replicas_provisioned == 3.0
    on_gpu = simulate(gpu, workload, "always_on", 3).summary
    assert on_gpu.ttft_p50_seconds is not None and on_cpu.ttft_p50_seconds is not None
    assert on_cpu.ttft_p50_seconds > 10 * on_gpu.ttft_p50_seconds
