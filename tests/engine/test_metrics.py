from __future__ import annotations

from tokenmill.engine.metrics import EngineMetrics


def metrics(kv_used: list[int]) -> EngineMetrics:
    return EngineMetrics(
        running=lambda: 1, waiting=lambda: 3, kv_used_cells=lambda: kv_used[0],
        kv_total_cells=lambda: 4096,
    )  # fmt: skip


def value(m: EngineMetrics, name: str, labels: dict[str, str] | None = None) -> float | None:
    return m.registry.get_sample_value(name, labels or {})


def test_gauges_are_read_when_scraped() -> None:
    kv_used = [10]
    m = metrics(kv_used)
    assert value(m, "tokenmill:kv_cache_used_cells") == 10
    kv_used[0] = 25
    assert value(m, "tokenmill:kv_cache_used_cells") == 25
    assert value(m, "tokenmill:num_requests_running") == 1
    assert value(m, "tokenmill:num_requests_waiting") == 3
    assert value(m, "tokenmill:kv_cache_total_cells") == 4096


def test_counters_and_histograms() -> None:
    m = metrics([0])
    m.prompt_started(prompt_tokens=100, cached_tokens=60)
    m.token_generated(arrival_seconds=1.0, previous_seconds=None, now_seconds=1.5)
    m.token_generated(arrival_seconds=1.0, previous_seconds=1.5, now_seconds=1.6)
    m.request_finished("stop")
    assert value(m, "tokenmill:prompt_tokens_total") == 100
    assert value(m, "tokenmill:prefix_cache_queries_total") == 100
    assert value(m, "tokenmill:prefix_cache_hits_total") == 60
    assert value(m, "tokenmill:generation_tokens_total") == 2
    assert value(m, "tokenmill:time_to_first_token_seconds_sum") == 0.5
    assert value(m, "tokenmill:time_per_output_token_seconds_count") == 1
    assert value(m, "tokenmill:request_success_total", {"finish_reason": "stop"}) == 1
    assert value(m, "tokenmill:request_success_total", {"finish_reason": "length"}) == 0


def test_each_engine_has_its_own_registry() -> None:
    first, second = metrics([0]), metrics([0])
    first.request_finished("stop")
    assert value(second, "tokenmill:request_success_total", {"finish_reason": "stop"}) == 0
    assert b"tokenmill:request_success_total" in first.render()
