"""The embedding replica's Prometheus metrics, named like the chat engine's (``tokenmill:``)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS_SECONDS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip


class EmbedMetrics:
    """One registry per replica (never the global one); gauges are read when scraped."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, *, running: Callable[[], int], waiting: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        Gauge(
            "tokenmill:num_requests_running", "Requests in the forward pass under way.", registry=r
        ).set_function(running)
        Gauge(
            "tokenmill:num_requests_waiting", "Requests queued for a forward pass.", registry=r
        ).set_function(waiting)
        self.prompt_tokens = Counter(
            "tokenmill:prompt_tokens", "Input tokens of embedded requests.", registry=r
        )
        self.request_latency = Histogram(
            "tokenmill:e2e_request_latency_seconds",
            "Seconds from a request's arrival to its answer.",
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=r,
        )

    def request_finished(self, *, prompt_tokens: int, latency_seconds: float) -> None:
        self.prompt_tokens.inc(prompt_tokens)
        self.request_latency.observe(latency_seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
