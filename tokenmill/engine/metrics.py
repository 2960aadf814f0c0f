"""The engine's Prometheus metrics, named like vLLM's (``tokenmill:`` for ``vllm:``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import get_args

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from tokenmill.engine.request import FinishReason

TTFT_BUCKETS_SECONDS = (
    0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0,
)  # fmt: skip
TPOT_BUCKETS_SECONDS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4,
    0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip


class EngineMetrics:
    """One registry per engine (never the global one), so engines and tests never collide.

    Gauges are read when scraped, from the callables given; counters and histograms are fed
    by the engine as work happens (prometheus_client is thread-safe).
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(
        self,
        *,
        running: Callable[[], int],
        waiting: Callable[[], int],
        kv_used_cells: Callable[[], int],
        kv_total_cells: Callable[[], int],
        adapters_loaded: Callable[[], int] = lambda: 0,
    ) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        _gauge("tokenmill:num_requests_running", "Requests being generated.", r, running)
        _gauge("tokenmill:num_requests_waiting", "Requests queued for the runner.", r, waiting)
        _gauge("tokenmill:kv_cache_used_cells", "KV cache cells in use.", r, kv_used_cells)
        _gauge("tokenmill:kv_cache_total_cells", "KV cache cells in all.", r, kv_total_cells)
        _gauge("tokenmill:lora_adapters_loaded", "LoRA adapters loaded.", r, adapters_loaded)
        self.adapter_loads = Counter(
            "tokenmill:lora_adapter_loads", "LoRA adapters loaded from files.", registry=r
        )
        self.adapter_switches = Counter(
            "tokenmill:lora_adapter_switches",
            "Decodes run with other adapters than the decode before (each costs llama.cpp a "
            "new compute graph).",
            registry=r,
        )
        self.prefix_cache_queries = Counter(
            "tokenmill:prefix_cache_queries",
            "Prompt tokens looked up in the prefix cache.",
            registry=r,
        )
        self.prefix_cache_hits = Counter(
            "tokenmill:prefix_cache_hits",
            "Prompt tokens reused from the prefix cache.",
            registry=r,
        )
        self.prompt_tokens = Counter(
            "tokenmill:prompt_tokens", "Prompt tokens of started requests.", registry=r
        )
        self.generation_tokens = Counter(
            "tokenmill:generation_tokens", "Tokens generated.", registry=r
        )
        self.time_to_first_token = Histogram(
            "tokenmill:time_to_first_token_seconds",
            "Seconds from arrival to the first generated token.",
            buckets=TTFT_BUCKETS_SECONDS,
            registry=r,
        )
        self.time_per_output_token = Histogram(
            "tokenmill:time_per_output_token_seconds",
            "Seconds between consecutive generated tokens.",
            buckets=TPOT_BUCKETS_SECONDS,
            registry=r,
        )
        self.spec_draft_tokens = Counter(
            "tokenmill:spec_decode_num_draft_tokens",
            "Prompt-lookup draft tokens proposed.",
            registry=r,
        )
        self.spec_accepted_tokens = Counter(
            "tokenmill:spec_decode_num_accepted_tokens",
            "Draft tokens the model confirmed.",
            registry=r,
        )
        self.busy_seconds = Counter(
            "tokenmill:engine_busy_seconds",
            "Seconds the engine spent computing steps (over wall time: how busy it is).",
            registry=r,
        )
        self.preemptions = Counter(
            "tokenmill:num_preemptions", "Sequences preempted for lack of KV cells.", registry=r
        )
        self.request_success = Counter(
            "tokenmill:request_success",
            "Requests ended, by finish reason.",
            ["finish_reason"],
            registry=r,
        )
        for reason in get_args(FinishReason):
            self.request_success.labels(finish_reason=reason)

    def prompt_started(self, *, prompt_tokens: int, cached_tokens: int) -> None:
        self.prompt_tokens.inc(prompt_tokens)
        self.prefix_cache_queries.inc(prompt_tokens)
        self.prefix_cache_hits.inc(cached_tokens)

    def token_generated(
        self, *, arrival_seconds: float, previous_seconds: float | None, now_seconds: float
    ) -> None:
        self.generation_tokens.inc()
        if previous_seconds is None:
            self.time_to_first_token.observe(now_seconds - arrival_seconds)
        else:
            self.time_per_output_token.observe(now_seconds - previous_seconds)

    def request_finished(self, finish_reason: str) -> None:
        self.request_success.labels(finish_reason=finish_reason).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _gauge(name: str, doc: str, registry: CollectorRegistry, read: Callable[[], int]) -> None:
    Gauge(name, doc, registry=registry).set_function(read)
