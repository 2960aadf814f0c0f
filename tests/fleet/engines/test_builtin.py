from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tokenmill.engine.__main__ import parse_args
from tokenmill.engine.embed.__main__ import parse_args as parse_embed_args
from tokenmill.engine.embed.metrics import EmbedMetrics
from tokenmill.engine.metrics import EngineMetrics
from tokenmill.errors import InvalidRequest
from tokenmill.fleet.engines.base import LaunchSettings
from tokenmill.fleet.engines.builtin import TokenmillAdapter, TokenmillEmbedAdapter


def settings(**changes: object) -> LaunchSettings:
    values: dict[str, object] = {
        "model_path": Path("/models/m.gguf"), "served_name": "m", "port": 8123,
        "context_tokens": 1024, "threads": 2, "max_running": 8, "kv_cache_tokens": 4096,
        "speculative_tokens": 4,
    }  # fmt: skip
    values.update(changes)
    return LaunchSettings(**values)  # type: ignore[arg-type]


def test_the_command_line_is_what_the_engine_parses() -> None:
    command = TokenmillAdapter().command(settings(extra_args=("--log-level", "debug")))
    assert command[:3] == [sys.executable, "-m", "tokenmill.engine"]
    args = parse_args(command[3:])  # the engine's own parser: unknown flags would exit
    assert args.model == Path("/models/m.gguf")
    assert args.served_name == "m"
    assert (args.host, args.port) == ("127.0.0.1", 8123)
    assert (args.threads, args.context_tokens, args.kv_cache_tokens) == (2, 1024, 4096)
    assert (args.max_running, args.speculative_tokens) == (8, 4)
    assert args.log_level == "debug"


def test_unset_settings_are_left_to_the_engine_defaults() -> None:
    command = TokenmillAdapter().command(
        settings(threads=None, max_running=None, kv_cache_tokens=None, speculative_tokens=0)
    )
    for flag in ("--threads", "--max-running", "--kv-cache-tokens"):
        assert flag not in command
    args = parse_args(command[3:])
    assert args.kv_cache_tokens == 8192  # the engine's own default: max(2 * context, 8192)
    assert args.max_running == 32


def test_the_embeddings_engine_gets_only_its_own_flags() -> None:
    adapter = TokenmillEmbedAdapter()
    command = adapter.command(settings(model_path=Path("/models/minilm"), served_name="e"))
    assert command[:3] == [sys.executable, "-m", "tokenmill.engine.embed"]
    pairs = dict(zip(command[3::2], command[4::2], strict=True))
    assert pairs == {
        "--model": "/models/minilm", "--served-name": "e", "--host": "127.0.0.1",
        "--port": "8123", "--threads": "2",
    }  # fmt: skip
    args = parse_embed_args(command[3:])  # the embeddings engine's own parser
    assert (args.model, args.served_name, args.port, args.threads) == (
        Path("/models/minilm"), "e", 8123, 2,
    )  # fmt: skip
    assert adapter.env(settings()) == {"HF_HUB_OFFLINE": "1"}


def test_metrics_from_the_embeddings_engines_page() -> None:
    metrics = EmbedMetrics(running=lambda: 1, waiting=lambda: 4)
    metrics.request_finished(prompt_tokens=12, latency_seconds=0.2)
    metrics.request_finished(prompt_tokens=30, latency_seconds=0.3)
    parsed = TokenmillEmbedAdapter().parse_metrics(metrics.render().decode())
    assert (parsed.requests_running, parsed.requests_waiting) == (1, 4)
    assert (parsed.prompt_tokens_total, parsed.generation_tokens_total) == (42, 0)
    assert parsed.kv_cache_usage is None and parsed.ttft_seconds_count is None


@pytest.mark.parametrize("adapter", [TokenmillAdapter(), TokenmillEmbedAdapter()])
def test_our_engines_refuse_gpu_settings(adapter: TokenmillAdapter) -> None:
    with pytest.raises(InvalidRequest, match="runs on CPU"):
        adapter.command(settings(accelerators=1))
    with pytest.raises(InvalidRequest, match="runs on CPU"):
        adapter.command(settings(gpu_memory_fraction=0.5))


def test_metrics_from_the_engines_own_page() -> None:
    metrics = EngineMetrics(
        running=lambda: 2, waiting=lambda: 5, kv_used_cells=lambda: 1024,
        kv_total_cells=lambda: 4096,
    )  # fmt: skip
    metrics.prompt_started(prompt_tokens=100, cached_tokens=60)
    metrics.prompt_started(prompt_tokens=20, cached_tokens=0)
    metrics.token_generated(arrival_seconds=1.0, previous_seconds=None, now_seconds=1.5)
    metrics.token_generated(arrival_seconds=1.0, previous_seconds=1.5, now_seconds=1.75)
    metrics.token_generated(arrival_seconds=1.0, previous_seconds=1.75, now_seconds=2.0)
    metrics.request_finished("stop")

    parsed = TokenmillAdapter().parse_metrics(metrics.render().decode())

    assert (parsed.requests_running, parsed.requests_waiting) == (2, 5)
    assert (parsed.prompt_tokens_total, parsed.generation_tokens_total) == (120, 3)
    assert (parsed.kv_cache_used_cells, parsed.kv_cache_total_cells) == (1024, 4096)
    assert parsed.kv_cache_usage == 0.25
    assert (parsed.prefix_cache_hits, parsed.prefix_cache_queries) == (60, 120)
    assert (parsed.ttft_seconds_sum, parsed.ttft_seconds_count) == (0.5, 1)
    assert (parsed.tpot_seconds_sum, parsed.tpot_seconds_count) == (0.5, 2)
    assert parsed.prefix_cache_hit_rate is None


def test_a_page_without_the_request_gauges_is_refused() -> None:
    with pytest.raises(ValueError, match="tokenmill:num_requests_running"):
        TokenmillAdapter().parse_metrics("# TYPE other gauge\nother 1\n")
