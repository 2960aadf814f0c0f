from __future__ import annotations

import sys
from pathlib import Path

from tokenmill.fleet.engines.base import LaunchSettings
from tokenmill.fleet.engines.sglang import SglangAdapter


def test_the_command_line_uses_launch_server_flags() -> None:
    settings = LaunchSettings(
        model_path=Path("/models/qwen"), served_name="qwen", port=30000, context_tokens=4096,
        max_running=32, kv_cache_tokens=65536, accelerators=4, gpu_memory_fraction=0.8,
        speculative_tokens=5,
    )  # fmt: skip
    command = SglangAdapter().command(settings)
    assert command[:3] == [sys.executable, "-m", "sglang.launch_server"]
    assert "--enable-metrics" in command  # without it there is no /metrics page
    rest = [arg for arg in command[3:] if arg != "--enable-metrics"]
    assert dict(zip(rest[::2], rest[1::2], strict=True)) == {
        "--model-path": "/models/qwen", "--host": "127.0.0.1", "--port": "30000",
        "--served-model-name": "qwen", "--context-length": "4096",
        "--max-running-requests": "32", "--max-total-tokens": "65536", "--tp-size": "4",
        "--mem-fraction-static": "0.8", "--speculative-algorithm": "NGRAM",
        "--speculative-num-draft-tokens": "5",
    }  # fmt: skip


# An older SGLang: only the usage and hit-rate gauges, time per output token, no cached tokens.
OLD_PAGE = """\
# HELP sglang:num_running_reqs The number of running requests.
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{model_name="qwen"} 7.0
# HELP sglang:num_queue_reqs The number of requests in the waiting queue.
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{model_name="qwen"} 2.0
# HELP sglang:token_usage The token usage.
# TYPE sglang:token_usage gauge
sglang:token_usage{model_name="qwen"} 0.28
# HELP sglang:cache_hit_rate The cache hit rate.
# TYPE sglang:cache_hit_rate gauge
sglang:cache_hit_rate{model_name="qwen"} 0.0075
# HELP sglang:prompt_tokens_total Number of prefill tokens processed.
# TYPE sglang:prompt_tokens_total counter
sglang:prompt_tokens_total{model_name="qwen"} 8.128902e+06
# HELP sglang:generation_tokens_total Number of generation tokens processed.
# TYPE sglang:generation_tokens_total counter
sglang:generation_tokens_total{model_name="qwen"} 7.557572e+06
# HELP sglang:time_per_output_token_seconds Histogram of time per output token in seconds.
# TYPE sglang:time_per_output_token_seconds histogram
sglang:time_per_output_token_seconds_sum{model_name="qwen"} 866964.5791
sglang:time_per_output_token_seconds_bucket{le="+Inf",model_name="qwen"} 7.557572e+06
sglang:time_per_output_token_seconds_count{model_name="qwen"} 7.557572e+06
"""


def test_an_older_page_gives_fractions_and_no_cached_token_counts() -> None:
    parsed = SglangAdapter().parse_metrics(OLD_PAGE)
    assert (parsed.requests_running, parsed.requests_waiting) == (7, 2)
    assert (parsed.prompt_tokens_total, parsed.generation_tokens_total) == (8_128_902, 7_557_572)
    assert parsed.kv_cache_usage == 0.28
    assert parsed.kv_cache_used_cells is None and parsed.kv_cache_total_cells is None
    assert parsed.prefix_cache_hit_rate == 0.0075
    assert parsed.prefix_cache_hits is None and parsed.prefix_cache_queries is None
    assert (parsed.tpot_seconds_sum, parsed.tpot_seconds_count) == (866964.5791, 7_557_572)
