import pytest

from tokenmill.fleet.inventory import KNOWN_ACCELERATOR_KINDS
from tokenmill.sim.perf import (
    EngineProfile,
    StepCost,
    cpu_profile,
    gpu_profile,
    gpu_step_cost,
    model_spec,
)
from tokenmill.sim.run import simulate_replica
from tokenmill.sim.workload import SimRequest

COST = StepCost(0.01, 0.0002, 0.000003)
CPU_LIKE = StepCost(0.006, 0.002, 0.00001, 0.00000005)


@pytest.mark.parametrize("cost", [COST, CPU_LIKE])
def test_a_run_costs_the_sum_of_its_steps_as_the_context_grows(cost: StepCost) -> None:
    batched, kv = 7, 300
    steps = [cost.step_seconds(batched, kv + i * batched) for i in range(25)]
    assert cost.run_seconds(25, batched, kv) == pytest.approx(sum(steps))
    assert cost.step_seconds(2, 100) == pytest.approx(
        cost.fixed_seconds
        + 2 * cost.per_batched_token_seconds
        + 100 * cost.per_kv_token_seconds
        + 200 * cost.per_batched_kv_token_seconds
    )


@pytest.mark.parametrize("cost", [COST, CPU_LIKE, StepCost(0.02, 0.001, 0.0)])
def test_steps_within_inverts_run_seconds(cost: StepCost) -> None:
    for steps in (0, 1, 2, 17, 400):
        elapsed = cost.run_seconds(steps, 9, 1000)
        assert cost.steps_within(elapsed + 1e-12, 9, 1000) == steps
        if steps:
            assert cost.steps_within(elapsed - 1e-9, 9, 1000) == steps - 1


def test_h100_decode_of_an_8b_model_matches_the_published_figure() -> None:
    """6.48 ms per output token for Llama-3.1-8B on one H100 with vLLM (cited in perf.py)."""
    cost = gpu_step_cost(model_spec("m", "llama3.1-8b"), KNOWN_ACCELERATOR_KINDS["H100-80GB"])
    assert cost.step_seconds(1, 300) == pytest.approx(0.00648, rel=0.05)


def test_packed_replicas_get_the_kv_cache_their_memory_leaves() -> None:
    model = model_spec("m", "llama3.1-8b")
    kind = KNOWN_ACCELERATOR_KINDS["H100-80GB"]
    small = gpu_profile(model, kind, model.weight_bytes + 1000 * model.kv_bytes_per_token)
    whole = gpu_profile(model, kind, kind.memory_bytes)
    assert small.kv_capacity_tokens == 1000
    assert whole.kv_capacity_tokens == int(
        (kind.memory_bytes * 0.9 - model.weight_bytes) // model.kv_bytes_per_token
    )
    with pytest.raises(ValueError):
        gpu_profile(model_spec("m", "qwen2.5-32b"), KNOWN_ACCELERATOR_KINDS["L4"], 24 << 30)


def test_prefill_budget_follows_our_engines_scheduler() -> None:
    profile = EngineProfile(COST, max_running=32, max_step_tokens=512, kv_capacity_tokens=8192)
    assert profile.prefill_budget_tokens(0) == 512
    assert profile.prefill_budget_tokens(3) == 8  # at least 8 while streams decode
    assert profile.prefill_budget_tokens(20) == 20  # one per decoding stream
    assert profile.unloaded_ttft_seconds(1000) == pytest.approx(
        COST.step_seconds(512, 512) + COST.step_seconds(488, 1000)
    )


def test_a_lone_token_costs_what_the_engine_computes_beside_it() -> None:
    scratch = StepCost(0.01, 0.002, 0.00001, min_batched_tokens=2)
    assert scratch.step_seconds(1, 100, sampled=1) == scratch.step_seconds(2, 100, sampled=1)
    assert scratch.step_seconds(3, 100) > scratch.step_seconds(2, 100)
    assert COST.step_seconds(1, 100) < COST.step_seconds(2, 100)


def test_cpu_calibration_is_committed_and_plausible() -> None:
    """Bursts as the calibration measured them (64-token prompts, 64 tokens out): llama.cpp
    alone decodes one stream at ~100 tokens/s here (ARCHITECTURE.md), and batching must
    still pay off through our engine's per-step overhead."""
    profile = cpu_profile()

    def tokens_per_second(streams: int) -> float:
        requests = [SimRequest(i, 0.0, "smollm2", 64, 64) for i in range(streams)]
        records = simulate_replica(profile, requests)
        return 64 * streams / max(r.finish_seconds or 0.0 for r in records)

    single = tokens_per_second(1)
    assert 30 < single < 200
    assert tokens_per_second(16) > 1.2 * single
