"""The gateway's Prometheus metrics, fed by the usage events every request ends with.

Every authenticated request (answered, refused, failed or cancelled) and every call the
platform makes for a tenant (batch lines, embeddings) records exactly one usage event, so
counting events counts everything once. Labels are the model, the service tier and the
endpoint; tenant ids are labels only when ``tenant_labels`` is set (one series per tenant can
be many). Served at ``GET /metrics``, without authentication, like an engine's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from tokenmill.billing.usage import UsageEvent
from tokenmill.engine.metrics import TPOT_BUCKETS_SECONDS, TTFT_BUCKETS_SECONDS
from tokenmill.gateway.metering import UsageSink

LATENCY_BUCKETS_SECONDS = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    20.0, 40.0, 80.0, 160.0, 320.0, 640.0,
)  # fmt: skip


class GatewayMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(
        self,
        *,
        known: Callable[[str], bool] = lambda model: True,
        tenant_labels: bool = False,
        waiting: Callable[[], int] | None = None,
        journal_lag: Callable[[], tuple[int, int]] | None = None,
    ) -> None:
        """``known``: whether a model id is in the library; others (a misspelt or invented
        name in a refused request) are counted as ``unknown``, so callers cannot make series."""
        self.known = known
        self.tenant_labels = tenant_labels
        self.registry = CollectorRegistry()
        base = ["model", "service_tier", "endpoint"]
        labels = [*base, "tenant"] if tenant_labels else base
        r = self.registry
        self.requests = Counter(
            "tokenmill_gateway_requests",
            "Requests ended, by HTTP status.",
            [*labels, "status"],
            registry=r,
        )
        self.errors = Counter(
            "tokenmill_gateway_errors",
            "Requests refused or failed, by error code (rate_limit_exceeded, "
            "insufficient_quota, service_tier_overloaded, ...).",
            [*labels, "code"],
            registry=r,
        )
        self.tokens = Counter(
            "tokenmill_gateway_tokens",
            "Tokens metered: prompt (cached ones included), cached, completion.",
            [*labels, "kind"],
            registry=r,
        )
        self.cost = Counter(
            "tokenmill_gateway_cost_micros",
            "What the requests cost, in micros.",
            labels,
            registry=r,
        )
        self.latency = Histogram(
            "tokenmill_gateway_request_seconds",
            "Time from the request to its last byte.",
            labels,
            buckets=LATENCY_BUCKETS_SECONDS,
            registry=r,
        )
        self.ttft = Histogram(
            "tokenmill_gateway_time_to_first_token_seconds",
            "Time to the first token of streamed answers.",
            labels,
            buckets=TTFT_BUCKETS_SECONDS,
            registry=r,
        )
        self.tpot = Histogram(
            "tokenmill_gateway_time_per_output_token_seconds",
            "Mean time per output token after the first, of streamed answers.",
            labels,
            buckets=TPOT_BUCKETS_SECONDS,
            registry=r,
        )
        if waiting is not None:
            queued = Gauge(
                "tokenmill_gateway_requests_waiting",
                "Requests waiting for a replica to be ready.",
                registry=r,
            )
            queued.set_function(waiting)
        self.auth_failures = Counter(
            "tokenmill_gateway_auth_failures",
            "Requests refused before authentication: invalid_api_key (a missing, wrong, "
            "revoked or expired key) or too_many_auth_failures (throttled).",
            ["code"],
            registry=r,
        )
        if journal_lag is not None:
            for index, (name, text) in enumerate(
                (
                    ("unsynced", "Usage events recorded but not yet on the journal's disk."),
                    ("pending", "Usage events recorded but not yet in the database."),
                )
            ):
                gauge = Gauge(f"tokenmill_gateway_journal_{name}_events", text, registry=r)
                gauge.set_function(lambda index=index: journal_lag()[index])  # type: ignore[misc]

    def observe(self, event: UsageEvent) -> None:
        model = event.model if self.known(event.model) else "unknown"
        values = [model, event.service_tier, event.endpoint]
        if self.tenant_labels:
            values.append(event.tenant_id)
        self.requests.labels(*values, str(event.http_status)).inc()
        if event.error_code:
            self.errors.labels(*values, event.error_code).inc()
        for kind, count in (
            ("prompt", event.prompt_tokens),
            ("cached", event.cached_tokens),
            ("completion", event.completion_tokens),
        ):
            if count:
                self.tokens.labels(*values, kind).inc(count)
        if event.cost_micros:
            self.cost.labels(*values).inc(event.cost_micros)
        self.latency.labels(*values).observe(event.duration_seconds)
        if event.ttft_seconds is not None and event.status == "ok":
            self.ttft.labels(*values).observe(event.ttft_seconds)
            if event.completion_tokens > 1:
                decode = event.duration_seconds - event.ttft_seconds
                self.tpot.labels(*values).observe(decode / (event.completion_tokens - 1))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class ObservedSink:
    """A usage sink that counts each event in the metrics, then passes it on."""

    def __init__(self, inner: UsageSink, metrics: GatewayMetrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def record(self, event: UsageEvent) -> Awaitable[None] | None:
        self._metrics.observe(event)
        return self._inner.record(event)
