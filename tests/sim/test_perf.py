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


def test_cpu_calibration_is_committed_and_plausible() -> None:
    profile = cpu_profile()
    # llama.cpp alone decodes one stream at ~100 tokens/s here (ARCHITECTURE.md); batching
    # must still pay off through our engine's per-step overhead
    single = 1 / profile.cost.step_seconds(1, 150, sampled=1)
    batch = 32 / profile.cost.step_seconds(32, 32 * 150, sampled=32)
    assert 50 < single < 200
    assert batch > 1.2 * single
