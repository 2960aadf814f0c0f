import itertools
import random
from pathlib import Path

import pytest

from tokenmill.sim.workload import (
    DEFAULT_MIX,
    ModelMix,
    TraceRow,
    assign_models,
    build_models,
    gamma_arrivals,
    load_azure,
    load_mooncake,
    zipf_weights,
)


def test_azure_rows_are_seconds_from_the_first_request(tmp_path: Path) -> None:
    path = tmp_path / "azure.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:50.9951690,396,109\n"
        "2023-11-16 18:16:51.2224670,879,0\n"
    )
    rows = load_azure(path)
    assert [r.prompt_tokens for r in rows] == [374, 396, 879]
    assert rows[0].arrival_seconds == 0.0
    assert rows[1].arrival_seconds == pytest.approx(4.314579)
    assert rows[2].arrival_seconds == pytest.approx(64.541877)
    assert rows[2].output_tokens == 1  # a request makes at least one token


def test_mooncake_rows_keep_their_prefix_blocks(tmp_path: Path) -> None:
    path = tmp_path / "mooncake.jsonl"
    path.write_text(
        '{"timestamp": 1500, "input_length": 1000, "output_length": 5, "hash_ids": [0, 3]}\n'
        '{"timestamp": 0, "input_length": 600, "output_length": 7, "hash_ids": [0, 1]}\n'
    )
    rows = load_mooncake(path)
    assert rows[0] == TraceRow(0.0, 600, 7, (0, 1))
    assert rows[1] == TraceRow(1.5, 1000, 5, (0, 3))


def test_zipf_popularity_is_skewed_and_sums_to_one() -> None:
    weights = zipf_weights(40, 1.5)
    assert sum(weights) == pytest.approx(1.0)
    assert weights[0] > 0.35
    assert weights[-1] < 0.003


def test_gamma_arrivals_keep_the_rate_and_get_burstier() -> None:
    rng = random.Random(1)
    poisson = gamma_arrivals(20.0, 1.0, 500.0, rng)
    bursty = gamma_arrivals(20.0, 4.0, 500.0, rng)
    assert len(poisson) == pytest.approx(10000, rel=0.05)
    assert len(bursty) == pytest.approx(10000, rel=0.3)

    def cv(times: list[float]) -> float:
        gaps = [b - a for a, b in itertools.pairwise(times)]
        mean = sum(gaps) / len(gaps)
        return float((sum((g - mean) ** 2 for g in gaps) / len(gaps)) ** 0.5 / mean)

    assert cv(poisson) == pytest.approx(1.0, abs=0.1)
    assert cv(bursty) > 3.0


def test_models_follow_the_mix_and_requests_are_spread_salted_and_sped_up() -> None:
    models = build_models(40, DEFAULT_MIX, random.Random(0))
    assert len({m.model_id for m in models}) == 40
    assert sum(m.architecture == "llama3.1-8b" for m in models) == 20
    rows = [TraceRow(float(i), 100, 10) for i in range(2000)]
    requests = assign_models(
        rows, models, zipf_exponent=1.5, speedup=4.0, duration_seconds=250.0,
        rng=random.Random(0),
    )  # fmt: skip
    assert len(requests) == 1000  # arrivals at i/4 seconds, cut at 250 s
    assert requests[-1].arrival_seconds == pytest.approx(249.75)
    hottest = sum(r.model_id == models[0].model_id for r in requests)
    assert hottest > 300


def test_a_conversations_turns_share_a_model_and_blocks_are_salted_per_model() -> None:
    models = build_models(10, DEFAULT_MIX, random.Random(0))
    # conversation c: a shared system block 0, then its own block c, then per-turn blocks
    rows = [TraceRow(float(i), 1500, 10, (0, i % 50, 1000 + i)) for i in range(500)]
    requests = assign_models(
        rows, models, zipf_exponent=1.0, speedup=1.0, duration_seconds=None,
        rng=random.Random(0),
    )  # fmt: skip
    model_of: dict[int, set[str]] = {}
    for row, request in zip(rows, requests, strict=True):
        model_of.setdefault(row.block_ids[1], set()).add(request.model_id)
    assert all(len(ids) == 1 for ids in model_of.values())
    assert len({r.model_id for r in requests}) > 3
    system_blocks = {r.model_id: r.block_hashes[0] for r in requests}
    assert len(set(system_blocks.values())) == len(system_blocks)


def test_model_mix_parsing_rejects_unknown_architectures() -> None:
    assert ModelMix.parse("llama3.1-8b:3,qwen2.5-14b:1").shares == (
        ("llama3.1-8b", 3.0),
        ("qwen2.5-14b", 1.0),
    )
    with pytest.raises(ValueError, match="unknown architecture"):
        ModelMix.parse("gpt-9:1")
