"""What a replica asks for: its placement request and, once placed, its engine's launch settings."""

from __future__ import annotations

from pathlib import Path

from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import ManualClock
from tokenmill.fleet.deployments import DeploymentRepository
from tokenmill.fleet.inventory import GIB, Accelerator, Inventory, Node
from tokenmill.fleet.launching import MIB, launch_settings, placement_request
from tokenmill.fleet.placement import Assignment
from tokenmill.fleet.seams import FleetOptions
from tokenmill.store.db import Database


def test_a_replica_asks_for_its_footprint_then_its_engine_settings(
    database: Database, clock: ManualClock
) -> None:
    model = ModelRepository(database, clock).register(
        "m", task="chat", artifact="/m.gguf", context_tokens=4096, size_bytes=800 * MIB
    )
    version = model.version()
    assert version is not None
    deployments = DeploymentRepository(database, clock)
    sized = deployments.create("m", "1", settings={"context_tokens": 8192, "max_running": 4})
    request = placement_request(sized, version, "rep_1")
    assert request.memory_bytes == 800 * MIB * 5 // 4 + 256 * MIB
    assert (request.accelerators, request.dedicated) == (1, False)
    given = deployments.create("m", "1", settings={"memory_bytes": 3 * GIB, "accelerators": 2})
    given_request = placement_request(given, version, "rep_2")
    assert (given_request.memory_bytes, given_request.accelerators) == (3 * GIB, 2)

    node = Node(
        "n", "r", (Accelerator("n/cpu", "cpu", 8 * GIB), Accelerator("n/g", "L4", GIB)), 8, 16 * GIB
    )
    placed = Assignment("rep_1", sized.id, "n", ("n/cpu", "n/g"), request.memory_bytes)
    options = FleetOptions(threads=3, scheduling="fair")
    settings = launch_settings(sized, model, version, placed, Inventory((node,)), 8123, options)
    assert settings.model_path == Path("/m.gguf")
    assert settings.context_tokens == 4096  # never beyond the model's own
    assert (settings.port, settings.threads, settings.max_running) == (8123, 3, 4)
    assert settings.accelerators == 1  # the GPU; the host's CPU is not one
    assert settings.scheduling == "fair"
