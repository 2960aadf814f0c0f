"""The Grafana dashboard in deploy/grafana reads only series the gateway, the engine and the
fleet controller export: a renamed metric fails here, not on an operator's empty panel."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from tokenmill.clock import ManualClock
from tokenmill.engine.metrics import EngineMetrics
from tokenmill.fleet.inventory import Inventory, Node
from tokenmill.fleet.metrics import FleetSnapshot, controller_metrics
from tokenmill.gateway.metrics import GatewayMetrics
from tokenmill.store.db import Database
from tokenmill.work.queue import WorkQueue

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "tokenmill.json"
SERIES = re.compile(r"\btokenmill[_:][a-z0-9_:]+")
SUFFIXES = ("_bucket", "_total", "_sum", "_count")


def exported(registry: CollectorRegistry) -> set[str]:
    names = set()
    for family in registry.collect():
        for sample in family.samples:
            names.add(sample.name)
    return names


def controller_registry(tmp_path: Path) -> CollectorRegistry:
    """The controller's metrics, each labelled family with a sample, and the work queue's
    counts from a database holding one item."""
    clock = ManualClock()
    db = Database(f"sqlite:///{tmp_path / 'work.db'}")
    db.migrate()
    WorkQueue(db, clock).enqueue("index", {})
    registry = CollectorRegistry()
    fleet = controller_metrics(registry, db, clock)
    for counter in (fleet.starts, fleet.stops, fleet.placement_failures):
        counter.labels("dep_1", "m@1").inc()
    fleet.failures.labels("dep_1", "m@1", "exited").inc()
    fleet.scaling_decisions.labels("dep_1", "m@1", "out", "cold_start").inc()
    snapshot = FleetSnapshot.of([], Inventory((Node.uniform("n", "r", "L4", 1),)), [])
    snapshot.replicas[("dep_1", "m@1", "ready")] = 1
    snapshot.desired[("dep_1", "m@1")] = 1
    fleet.stepped(0.01, snapshot)
    return registry


def expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def test_every_series_the_dashboard_reads_is_exported(tmp_path: Path) -> None:
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
    controller = controller_registry(tmp_path)
    known = exported(gateway.registry) | exported(engine.registry) | exported(controller)
    read = {name for expr in expressions() for name in SERIES.findall(expr)}
    assert read, "the dashboard reads no tokenmill series"
    assert read - known == set()


def test_each_gateway_and_controller_family_has_a_panel(tmp_path: Path) -> None:
    gateway = GatewayMetrics(waiting=lambda: 0, journal_lag=lambda: (0, 0))
    families = {
        family.name
        for registry in (gateway.registry, controller_registry(tmp_path))
        for family in registry.collect()
    }
    assert {"tokenmill_controller_replicas", "tokenmill_controller_work_items"} <= families
    read = {
        name.removesuffix(suffix)
        for expr in expressions()
        for name in SERIES.findall(expr)
        for suffix in (*SUFFIXES, "")
        if name.endswith(suffix)
    }
    assert families - read == set()
