from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import ManualClock
from tokenmill.fleet.compose import build_fleet, ensure_default_deployments, with_cpu_slots
from tokenmill.fleet.deployments import DeploymentRepository
from tokenmill.fleet.inventory import GIB, Accelerator, Node
from tokenmill.fleet.metrics import controller_metrics
from tokenmill.gateway.routing import Router
from tokenmill.settings import Settings
from tokenmill.store.db import Database
from tokenmill.work.queue import WorkQueue


def test_the_cpu_is_split_into_slots_and_gpus_are_kept() -> None:
    node = Node(
        "n",
        "r",
        (Accelerator("n/cpu", "cpu", 8 * GIB), Accelerator("n/gpu0", "L4", 24 * GIB)),
        8,
        16 * GIB,
    )
    split = with_cpu_slots(node, 4)
    cpus = [a for a in split.accelerators if a.kind == "cpu"]
    assert [a.memory_bytes for a in cpus] == [2 * GIB] * 4
    assert len({a.id for a in split.accelerators}) == 5
    assert with_cpu_slots(node, 1) == node


def test_each_model_gets_one_default_deployment_unless_one_exists(
    database: Database, clock: ManualClock, tmp_path: Path
) -> None:
    models = ModelRepository(database, clock)
    chat = models.register("chat", task="chat", artifact="/c", context_tokens=8192)
    embed = models.register(
        "embed", task="embeddings", artifact="/e", context_tokens=256, engine="tokenmill-embed"
    )
    deployments = DeploymentRepository(database, clock)
    settings = Settings(data_dir=tmp_path, engine_context_tokens=2048, bundled_min_replicas=0)
    ensure_default_deployments(settings, deployments, [chat, embed])
    ensure_default_deployments(settings, deployments, [chat, embed])
    made = {d.model_id: d for d in deployments.list()}
    assert set(made) == {"chat", "embed"} and len(deployments.list()) == 2
    assert made["chat"].settings["context_tokens"] == 2048
    assert made["embed"].settings == {} and made["embed"].engine == "tokenmill-embed"
    assert made["chat"].min_replicas == 0


async def test_every_fleet_of_a_process_reports_on_its_one_set_of_metrics(
    database: Database, clock: ManualClock, tmp_path: Path
) -> None:
    registry = CollectorRegistry()
    metrics = controller_metrics(registry, database, clock)
    WorkQueue(database, clock).enqueue("index", {})
    settings = Settings(data_dir=tmp_path)
    for term in (1, 2):  # a new leadership term builds a new fleet on the same metrics
        controller = build_fleet(settings, database, clock, Router(), metrics)
        try:
            await controller.step()
        finally:
            controller.shutdown()
        assert controller.metrics is metrics
        assert registry.get_sample_value("tokenmill_controller_step_seconds_count") == term
    queued = {"kind": "index", "status": "queued"}
    assert registry.get_sample_value("tokenmill_controller_work_items", queued) == 1
    node = controller.inventory.nodes[0]
    labels = {"node": node.id, "kind": node.accelerators[0].kind}
    assert registry.get_sample_value("tokenmill_controller_accelerator_memory_bytes", labels)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        controller_metrics(registry, database, clock)
