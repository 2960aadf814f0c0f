"""Builds the fleet for ``tokenmill serve``: inventory, backend, controller, metrics, default
deployments."""

from __future__ import annotations

import logging
from dataclasses import replace

from tokenmill.catalog.card import ADAPTER_ENGINE
from tokenmill.catalog.repository import ModelInfo, ModelRepository
from tokenmill.clock import Clock
from tokenmill.fleet.backend import Backend, LocalBackend
from tokenmill.fleet.controller import FleetController
from tokenmill.fleet.deployments import DeploymentRepository, bindings
from tokenmill.fleet.inventory import CPU_KIND, Accelerator, Inventory, Node, detect_local_node
from tokenmill.fleet.metrics import FleetMetrics
from tokenmill.fleet.replicas import ReplicaRuns
from tokenmill.fleet.retries import RetryPolicy
from tokenmill.fleet.seams import FleetOptions, ReadySink
from tokenmill.settings import Settings
from tokenmill.store.db import Database

log = logging.getLogger(__name__)


def with_cpu_slots(node: Node, slots: int) -> Node:
    """The node with its CPU accelerator split into ``slots`` equal slots of host memory."""
    others = [a for a in node.accelerators if a.kind != CPU_KIND]
    cpus = [a for a in node.accelerators if a.kind == CPU_KIND]
    if not cpus or slots <= 1:
        return node
    memory = sum(a.memory_bytes for a in cpus) // slots
    split = [Accelerator(f"{node.id}/cpu{i}", CPU_KIND, memory) for i in range(slots)]
    return replace(node, accelerators=(*split, *others))


def local_inventory(settings: Settings) -> Inventory:
    return Inventory((with_cpu_slots(detect_local_node(), settings.fleet_cpu_slots),))


def build_backend(settings: Settings) -> tuple[Backend, Inventory]:
    if settings.fleet_backend == "ray":
        from tokenmill.fleet.ray_backend import RayBackend

        backend = RayBackend(settings.ray_address, settings.ensure_data_dir() / "logs")
        return backend, backend.inventory()
    if settings.fleet_backend != "local":
        raise ValueError(f"fleet_backend is local or ray, not {settings.fleet_backend!r}")
    return LocalBackend(settings.ensure_data_dir() / "logs"), local_inventory(settings)


def build_fleet(
    settings: Settings,
    db: Database,
    clock: Clock,
    router: ReadySink,
    metrics: FleetMetrics | None = None,
) -> FleetController:
    """``metrics``: the process's (``controller_metrics``), made once and passed to every
    fleet it builds, one per leadership term; without them the fleet counts unscraped."""
    backend, inventory = build_backend(settings)
    return FleetController(
        deployments=DeploymentRepository(db, clock),
        models=ModelRepository(db, clock),
        router=router,
        backend=backend,
        inventory=inventory,
        runs=ReplicaRuns(db, clock),
        options=FleetOptions(
            threads=settings.engine_threads,
            autoscaler=settings.fleet_autoscaler,
            extra_buffers=settings.engine_extra_buffers,
            scheduling=settings.engine_scheduling,
            adapters_dir=settings.adapters_dir,
            retries=RetryPolicy(
                backoff_seconds=tuple(settings.fleet_backoff_seconds),
                failing_after_failures=settings.fleet_failing_after_failures,
                failing_backoff_seconds=tuple(settings.fleet_failing_backoff_seconds),
            ),
        ),
        bindings=bindings,
        metrics=metrics,
    )


def ensure_default_deployments(
    settings: Settings, deployments: DeploymentRepository, models: list[ModelInfo]
) -> None:
    """One shared deployment per bundled model, unless an operator made one already."""
    existing = {d.model_id for d in deployments.list()}
    for model in models:
        if model.id in existing or model.default_version is None or model.engine == ADAPTER_ENGINE:
            continue
        settings_for = {}
        if model.task != "embeddings":
            settings_for = {
                "context_tokens": min(settings.engine_context_tokens, model.context_tokens),
                "max_running": settings.engine_max_running,
                "speculative_tokens": settings.engine_speculative_tokens,
            }
            if settings.engine_kv_cache_tokens:
                settings_for["kv_cache_tokens"] = settings.engine_kv_cache_tokens
        info = deployments.create(
            model.id,
            model.default_version,
            engine=model.engine,
            settings=settings_for,
            min_replicas=settings.bundled_min_replicas,
            max_replicas=settings.bundled_max_replicas,
            idle_seconds=settings.bundled_idle_seconds,
        )
        log.info("deployed %s as %s", info.served_name, info.id)
