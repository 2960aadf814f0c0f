import pytest

from tokenmill.fleet.autoscale import AUTOSCALERS
from tokenmill.fleet.balancer import BALANCING_POLICIES
from tokenmill.fleet.inventory import KNOWN_ACCELERATOR_KINDS
from tokenmill.sim.perf import model_spec
from tokenmill.sim.policies import (
    SIM_POLICIES,
    ModelDemand,
    build_sim_policy,
    peak_concurrency,
)
from tokenmill.sim.workload import SimRequest

H100 = KNOWN_ACCELERATOR_KINDS["H100-80GB"]
MODEL = model_spec("m", "llama3.1-8b")


def test_registry_builds_each_policy_and_names_only_real_fleet_policies() -> None:
    assert set(SIM_POLICIES) == {"dedicated", "reactive", "tokenmill", "always_on"}
    for name in SIM_POLICIES:
        policy = build_sim_policy(name)
        assert policy.name == name
        assert policy.autoscaler in AUTOSCALERS
        assert policy.balancer in BALANCING_POLICIES
    with pytest.raises(ValueError, match="unknown simulation policy"):
        build_sim_policy("magic")


def test_dedicated_keeps_replicas_for_its_peak_alone_on_accelerators() -> None:
    policy = build_sim_policy("dedicated")
    quiet = policy.scaling_config(MODEL, ModelDemand(0), 0.3)
    busy = policy.scaling_config(MODEL, ModelDemand(130), 0.3)
    assert quiet.min_replicas == quiet.max_replicas == 1
    assert busy.min_replicas == busy.max_replicas == 3
    assert policy.isolated
    assert policy.replica_memory_bytes(MODEL, H100, ModelDemand(1)) == H100.memory_bytes
    assert policy.minimum_accelerators([quiet, busy]) == 4


def test_reactive_scales_to_zero_and_tokenmill_also_packs_and_predicts() -> None:
    reactive = build_sim_policy("reactive")
    tokenmill = build_sim_policy("tokenmill")
    assert reactive.scaling_config(MODEL, ModelDemand(5), 0.3).min_replicas == 0
    assert tokenmill.autoscaler == "predictive"
    assert tokenmill.balancer == "prefix_affinity"
    assert 3 * tokenmill.replica_memory_bytes(MODEL, H100, ModelDemand(1, 2000)) < H100.memory_bytes
    long = tokenmill.replica_memory_bytes(MODEL, H100, ModelDemand(1, 100_000))
    assert long >= MODEL.weight_bytes + 100_000 * MODEL.kv_bytes_per_token
    slow = tokenmill.scaling_config(MODEL, ModelDemand(5), 2.0)
    fast = tokenmill.scaling_config(MODEL, ModelDemand(5), 0.25)
    assert slow.idle_seconds_before_zero > fast.idle_seconds_before_zero


def test_peak_concurrency_counts_overlaps_per_model() -> None:
    requests = [
        SimRequest(0, 0.0, "a", 10, 10),
        SimRequest(1, 0.5, "a", 10, 10),
        SimRequest(2, 0.7, "a", 10, 10),
        SimRequest(3, 5.0, "a", 10, 10),
        SimRequest(4, 0.1, "b", 10, 10),
    ]
    assert peak_concurrency(requests, lambda r: 1.0) == {"a": 3, "b": 1}


def test_demands_size_dedicated_for_compute_and_tokenmill_for_prompt_length() -> None:
    from tokenmill.sim.perf import gpu_profile
    from tokenmill.sim.policies import model_demands

    profile = gpu_profile(MODEL, H100, H100.memory_bytes)
    # 600 requests of 8,000 prompt tokens in one minute: prefill alone keeps ~3 H100s busy
    heavy = [SimRequest(i, i * 0.1, "m", 8000, 100) for i in range(600)]
    demand = model_demands(heavy, {"m": profile})["m"]
    assert demand.longest_request_tokens == 8100
    assert demand.mean_prompt_tokens == 8000
    assert 2.5 < demand.peak_busy_replicas < 4.0
    dedicated = build_sim_policy("dedicated").scaling_config(MODEL, demand, 0.3)
    assert dedicated.min_replicas >= 4
    tokenmill = build_sim_policy("tokenmill").scaling_config(MODEL, demand, 0.3)
    assert tokenmill.target_load_per_replica == pytest.approx(2.048)


def test_always_on_shares_the_fleet_equally_and_never_scales() -> None:
    policy = build_sim_policy("always_on")
    policy.size_for(7, 2)

    busy = policy.scaling_config(MODEL, ModelDemand(130), 0.3)
    quiet = policy.scaling_config(MODEL, ModelDemand(0), 0.3)

    assert busy == quiet
    assert busy.min_replicas == busy.max_replicas == 3
    assert policy.isolated
    assert policy.replica_memory_bytes(MODEL, H100, ModelDemand(1)) == H100.memory_bytes
    policy.size_for(1, 4)  # fewer accelerators than models: still a replica each
    assert policy.scaling_config(MODEL, ModelDemand(1), 0.3).min_replicas == 1
