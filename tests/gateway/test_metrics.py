from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families

from tests.gateway.support import ListSink
from tokenmill.billing.usage import UsageEvent
from tokenmill.gateway.metrics import GatewayMetrics, ObservedSink


def event(request_id: str, **fields: object) -> UsageEvent:
    base: dict[str, object] = {
        "request_id": request_id,
        "tenant_id": "ten_a",
        "key_id": "key_a",
        "model": "m",
        "endpoint": "chat.completions",
        "stream": True,
        "prompt_tokens": 10,
        "cached_tokens": 4,
        "completion_tokens": 11,
        "ttft_seconds": 0.5,
        "duration_seconds": 1.5,
        "status": "ok",
        "http_status": 200,
        "error_code": None,
        "created_at": datetime(2026, 12, 1, tzinfo=UTC),
        "cost_micros": 7,
        "service_tier": "priority",
    }
    return UsageEvent(**{**base, **fields})  # type: ignore[arg-type]


def samples(metrics: GatewayMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_each_usage_event_is_counted_once_by_model_tier_and_endpoint() -> None:
    metrics = GatewayMetrics(known=lambda model: model == "m", waiting=lambda: 3)
    sink = ListSink()
    observed = ObservedSink(sink, metrics)
    observed.record(event("a"))
    observed.record(
        event(
            "b",
            service_tier="default",
            status="error",
            http_status=429,
            error_code="service_tier_overloaded",
            prompt_tokens=0,
            cached_tokens=0,
            completion_tokens=0,
            ttft_seconds=None,
            cost_micros=0,
        )
    )
    observed.record(event("c", model="made-up-name", status="error", http_status=404))
    assert [e.request_id for e in sink.events] == ["a", "b", "c"]
    found = samples(metrics)
    labels = (("endpoint", "chat.completions"), ("model", "m"), ("service_tier", "priority"))
    assert found[("tokenmill_gateway_requests_total", (*labels, ("status", "200")))] == 1
    completion = (labels[0], ("kind", "completion"), *labels[1:])
    assert found[("tokenmill_gateway_tokens_total", completion)] == 11
    assert found[("tokenmill_gateway_cost_micros_total", labels)] == 7
    assert found[("tokenmill_gateway_time_to_first_token_seconds_count", labels)] == 1
    assert found[("tokenmill_gateway_time_per_output_token_seconds_sum", labels)] == 0.1
    refused = (
        ("code", "service_tier_overloaded"),
        ("endpoint", "chat.completions"),
        ("model", "m"),
        ("service_tier", "default"),
    )
    assert found[("tokenmill_gateway_errors_total", refused)] == 1
    unknown = (("endpoint", "chat.completions"), ("model", "unknown"), ("service_tier", "priority"))
    assert found[("tokenmill_gateway_requests_total", (*unknown, ("status", "404")))] == 1
    assert not any(("model", "made-up-name") in labels_ for _, labels_ in found)
    assert found[("tokenmill_gateway_requests_waiting", ())] == 3


def test_tenant_ids_are_labels_only_when_asked_for() -> None:
    quiet, loud = GatewayMetrics(), GatewayMetrics(tenant_labels=True)
    for metrics in (quiet, loud):
        metrics.observe(event("a"))
    assert not any(("tenant", "ten_a") in labels for _, labels in samples(quiet))
    assert any(("tenant", "ten_a") in labels for _, labels in samples(loud))
