from __future__ import annotations

import json
from pathlib import Path

import pytest

from tokenmill.fleet.engines.base import LaunchSettings
from tokenmill.fleet.engines.vllm import VllmAdapter


def test_the_command_line_uses_vllm_serve_flags() -> None:
    settings = LaunchSettings(
        model_path=Path("/models/llama"), served_name="llama-8b", host="0.0.0.0", port=9000,
        context_tokens=8192, max_running=64, accelerators=2, gpu_memory_fraction=0.85,
        speculative_tokens=3, threads=4, kv_cache_tokens=100_000, extra_args=("--enforce-eager",),
    )  # fmt: skip
    command = VllmAdapter().command(settings)
    assert command[:3] == ["vllm", "serve", "/models/llama"]
    assert command[-1] == "--enforce-eager"
    pairs = dict(zip(command[3:-1:2], command[4:-1:2], strict=True))
    speculative = json.loads(pairs.pop("--speculative-config"))
    assert pairs == {
        "--host": "0.0.0.0", "--port": "9000", "--served-model-name": "llama-8b",
        "--max-model-len": "8192", "--max-num-seqs": "64", "--tensor-parallel-size": "2",
        "--gpu-memory-utilization": "0.85",
    }  # fmt: skip
    assert speculative == {"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_max": 4}


def test_unset_settings_are_left_out() -> None:
    settings = LaunchSettings(model_path=Path("/m"), served_name="m", port=9000)
    command = VllmAdapter().command(settings)
    for flag in ("--max-num-seqs", "--tensor-parallel-size", "--gpu-memory-utilization"):
        assert flag not in command
    assert "--speculative-config" not in command
    assert VllmAdapter().env(settings) == {"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}


# vLLM before 0.9 (the v0 engine): the old KV and prefix-cache gauges, time per output token,
# and here two data-parallel engines, each with its own label set.
V0_PAGE = """\
# HELP vllm:num_requests_running Number of requests currently running on GPU.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
vllm:num_requests_running{engine="1",model_name="m"} 2.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 1.0
vllm:num_requests_waiting{engine="1",model_name="m"} 0.0
# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{engine="0",model_name="m"} 0.5
vllm:gpu_cache_usage_perc{engine="1",model_name="m"} 0.25
# HELP vllm:gpu_prefix_cache_hit_rate GPU prefix cache block hit rate.
# TYPE vllm:gpu_prefix_cache_hit_rate gauge
vllm:gpu_prefix_cache_hit_rate{engine="0",model_name="m"} 0.5
vllm:gpu_prefix_cache_hit_rate{engine="1",model_name="m"} 0.5
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="m"} 1000.0
vllm:prompt_tokens_total{engine="1",model_name="m"} 500.0
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="m"} 200.0
vllm:generation_tokens_total{engine="1",model_name="m"} 100.0
# HELP vllm:time_per_output_token_seconds Histogram of time per output token in seconds.
# TYPE vllm:time_per_output_token_seconds histogram
vllm:time_per_output_token_seconds_bucket{engine="0",le="+Inf",model_name="m"} 190.0
vllm:time_per_output_token_seconds_count{engine="0",model_name="m"} 190.0
vllm:time_per_output_token_seconds_sum{engine="0",model_name="m"} 3.8
vllm:time_per_output_token_seconds_bucket{engine="1",le="+Inf",model_name="m"} 95.0
vllm:time_per_output_token_seconds_count{engine="1",model_name="m"} 95.0
vllm:time_per_output_token_seconds_sum{engine="1",model_name="m"} 1.9
# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="16",engine="0",num_gpu_blocks="1000"} 1.0
vllm:cache_config_info{block_size="16",engine="1",num_gpu_blocks="1000"} 1.0
"""


def test_old_metric_names_are_read_and_engines_are_added_up() -> None:
    parsed = VllmAdapter().parse_metrics(V0_PAGE)
    assert (parsed.requests_running, parsed.requests_waiting) == (5, 1)
    assert (parsed.prompt_tokens_total, parsed.generation_tokens_total) == (1500, 300)
    assert parsed.kv_cache_usage == pytest.approx(0.375)  # a fraction is averaged, not summed
    assert parsed.kv_cache_total_cells == 32_000
    assert parsed.kv_cache_used_cells == 12_000
    assert parsed.prefix_cache_hit_rate == 0.5
    assert parsed.prefix_cache_hits is None and parsed.prefix_cache_queries is None
    assert parsed.tpot_seconds_sum == pytest.approx(5.7)
    assert parsed.tpot_seconds_count == 285
    assert parsed.ttft_seconds_count is None


def test_a_cache_config_not_yet_profiled_gives_no_cell_counts() -> None:
    page = V0_PAGE.replace('num_gpu_blocks="1000"', 'num_gpu_blocks="None"')
    parsed = VllmAdapter().parse_metrics(page)
    assert parsed.kv_cache_total_cells is None and parsed.kv_cache_used_cells is None
    assert parsed.kv_cache_usage == pytest.approx(0.375)
