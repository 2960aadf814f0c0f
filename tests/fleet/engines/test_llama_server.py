from __future__ import annotations

from pathlib import Path

import pytest

from tokenmill.errors import InvalidRequest
from tokenmill.fleet.engines.base import LaunchSettings
from tokenmill.fleet.engines.llama_server import LlamaServerAdapter


def settings(**changes: object) -> LaunchSettings:
    values: dict[str, object] = {
        "model_path": Path("/models/m.gguf"), "served_name": "m", "port": 8080,
        "context_tokens": 4096, "max_running": 4, "threads": 8,
    }  # fmt: skip
    values.update(changes)
    return LaunchSettings(**values)  # type: ignore[arg-type]


def pairs(command: list[str]) -> dict[str, str]:
    rest = [arg for arg in command[1:] if arg not in ("--metrics", "--cont-batching")]
    return dict(zip(rest[::2], rest[1::2], strict=True))


def test_every_slot_gets_a_full_context() -> None:
    command = LlamaServerAdapter().command(settings())
    assert command[0] == "llama-server"
    assert "--metrics" in command and "--cont-batching" in command
    assert pairs(command) == {
        "-m": "/models/m.gguf", "--host": "127.0.0.1", "--port": "8080", "--alias": "m",
        "-c": "16384", "-np": "4", "-t": "8",
    }  # fmt: skip


def test_a_larger_kv_cache_and_gpus() -> None:
    command = LlamaServerAdapter().command(settings(kv_cache_tokens=32768, accelerators=1))
    assert pairs(command)["-c"] == "32768"
    assert pairs(command)["-ngl"] == "999"


def test_speculation_without_a_draft_model_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="draft model"):
        LlamaServerAdapter().command(settings(speculative_tokens=4))


# An older llama-server: it still had the KV gauges (a NaN ratio when the context is empty).
OLD_PAGE = """\
# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 33065
# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total 7801
# HELP llamacpp:tokens_predicted_seconds_total Predict process time
# TYPE llamacpp:tokens_predicted_seconds_total counter
llamacpp:tokens_predicted_seconds_total 156.02
# HELP llamacpp:kv_cache_usage_ratio KV-cache usage. 1 means 100 percent usage.
# TYPE llamacpp:kv_cache_usage_ratio gauge
llamacpp:kv_cache_usage_ratio 0.125
# HELP llamacpp:kv_cache_tokens KV-cache tokens.
# TYPE llamacpp:kv_cache_tokens gauge
llamacpp:kv_cache_tokens 2048
# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 3
# HELP llamacpp:requests_deferred Number of requests deferred.
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 1
"""


def test_an_older_page_with_kv_gauges() -> None:
    parsed = LlamaServerAdapter().parse_metrics(OLD_PAGE)
    assert (parsed.requests_running, parsed.requests_waiting) == (3, 1)
    assert (parsed.prompt_tokens_total, parsed.generation_tokens_total) == (33065, 7801)
    assert (parsed.kv_cache_usage, parsed.kv_cache_used_cells) == (0.125, 2048)
    assert (parsed.tpot_seconds_sum, parsed.tpot_seconds_count) == (156.02, 7801)
    assert parsed.ttft_seconds_sum is None


def test_a_nan_ratio_means_unknown() -> None:
    page = OLD_PAGE.replace("kv_cache_usage_ratio 0.125", "kv_cache_usage_ratio nan")
    assert LlamaServerAdapter().parse_metrics(page).kv_cache_usage is None


def test_a_server_without_metrics_is_refused() -> None:
    with pytest.raises(ValueError, match="llamacpp:requests_processing"):
        LlamaServerAdapter().parse_metrics("")
