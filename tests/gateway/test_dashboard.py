"""The Grafana dashboard in deploy/grafana reads only series the gateway and the engine
export: a renamed metric fails here, not on an operator's empty panel."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from tokenmill.engine.metrics import EngineMetrics
from tokenmill.gateway.metrics import GatewayMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "tokenmill.json"
SERIES = re.compile(r"\btokenmill[_:][a-z0-9_:]+")
SUFFIXES = ("_bucket", "_total", "_sum", "_count")


def exported(registry: CollectorRegistry) -> set[str]:
    names = set()
    for family in registry.collect():
        for sample in family.samples:
            names.add(sample.name)
    return names


def expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def test_every_series_the_dashboard_reads_is_exported() -> None:
    gateway = GatewayMetrics(waiting=lambda: 0, journal_lag=lambda: (0, 0))
    gateway.auth_failures.labels("invalid_api_key").inc()
    for histogram in (gateway.latency, gateway.ttft, gateway.tpot):
        histogram.labels("m", "default", "chat.completions").observe(1.0)
    for counter in (gateway.requests, gateway.errors, gateway.tokens):
        counter.labels("m", "default", "chat.completions", "x").inc()
    gateway.cost.labels("m", "default", "chat.completions").inc()
    engine = EngineMetrics(
        running=lambda: 0, waiting=lambda: 0, kv_used_cells=lambda: 0, kv_total_cells=lambda: 1
    )
    known = exported(gateway.registry) | exported(engine.registry)
    read = {name for expr in expressions() for name in SERIES.findall(expr)}
    assert read, "the dashboard reads no tokenmill series"
    assert read - known == set()


def test_each_gateway_family_has_a_panel() -> None:
    gateway = GatewayMetrics(waiting=lambda: 0, journal_lag=lambda: (0, 0))
    families = {family.name for family in gateway.registry.collect()}
    read = {
        name.removesuffix(suffix)
        for expr in expressions()
        for name in SERIES.findall(expr)
        for suffix in (*SUFFIXES, "")
        if name.endswith(suffix)
    }
    assert families - read == set()
