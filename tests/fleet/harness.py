"""A real fleet in a test: the controller, the router and replica processes of the bundled
models, on a SQLite library in a temporary directory."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from tokenmill.billing.pricebook import PriceBookRepository
from tokenmill.catalog.install import install_bundled
from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import SystemClock
from tokenmill.fleet.backend import LocalBackend
from tokenmill.fleet.controller import FleetController, Managed
from tokenmill.fleet.deployments import DeploymentRepository, bindings
from tokenmill.fleet.inventory import GIB, Accelerator, Inventory, Node
from tokenmill.fleet.replicas import ReplicaRuns, ReplicaState
from tokenmill.fleet.retries import RetryPolicy
from tokenmill.fleet.seams import FleetOptions
from tokenmill.gateway.routing import Router
from tokenmill.store.db import Database

CHAT = "smollm2-135m-instruct"
COMPLETION = "gemma-3-270m"
SMALL = {"context_tokens": 512, "threads": 1, "max_running": 4}


@dataclass
class Fleet:
    db: Database
    deployments: DeploymentRepository
    models: ModelRepository
    router: Router
    controller: FleetController
    http: httpx.AsyncClient

    async def until(
        self, condition: Callable[[], bool], timeout_seconds: float = 120.0, what: str = ""
    ) -> None:
        deadline = time.monotonic() + timeout_seconds
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {self.controller.status()}")
            await asyncio.sleep(0.1)

    def managed(self, deployment_id: str) -> Managed:
        return self.controller.managed[deployment_id]

    def replicas(self, deployment_id: str, *states: ReplicaState) -> list[object]:
        managed = self.controller.managed.get(deployment_id)
        return managed.live(*states) if managed else []

    async def chat(self, url: str, served_name: str, content: str = "Hi") -> dict[str, object]:
        response = await self.http.post(
            f"{url}/v1/chat/completions",
            json={
                "model": served_name,
                "messages": [{"role": "user", "content": content}],
                "max_tokens": 4,
                "temperature": 0,
            },
        )
        response.raise_for_status()
        return dict(response.json())


def cpu_inventory(slots: int = 4, slot_bytes: int = 2 * GIB) -> Inventory:
    accelerators = tuple(Accelerator(f"local/cpu{i}", "cpu", slot_bytes) for i in range(slots))
    return Inventory((Node("local", "local", accelerators, 2, slots * slot_bytes),))


@contextlib.asynccontextmanager
async def running_fleet(
    tmp_path: Path, models: list[str], inventory: Inventory | None = None
) -> AsyncIterator[Fleet]:
    clock = SystemClock()
    db = Database(f"sqlite:///{tmp_path / 'fleet.db'}")
    db.migrate()
    library = ModelRepository(db, clock)
    install_bundled(library, PriceBookRepository(db, clock), models)
    router = Router(queue_timeout_seconds=120)
    controller = FleetController(
        deployments=DeploymentRepository(db, clock),
        models=library,
        router=router,
        backend=LocalBackend(tmp_path / "logs"),
        inventory=inventory or cpu_inventory(),
        runs=ReplicaRuns(db, clock),
        options=FleetOptions(
            threads=1,
            tick_seconds=0.1,
            reload_seconds=0.2,
            scale_out_delay_seconds=0.5,
            scale_in_delay_seconds=1.0,
            retries=RetryPolicy(backoff_seconds=(0.5, 1.0)),
        ),
        bindings=bindings,
    )
    router.on_demand = controller.wake
    task = asyncio.create_task(controller.run())
    async with httpx.AsyncClient(timeout=120) as http:
        try:
            yield Fleet(db, DeploymentRepository(db, clock), library, router, controller, http)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await asyncio.to_thread(controller.shutdown)
            db.dispose()


def ready(fleet: Fleet, deployment_id: str, count: int) -> Callable[[], bool]:
    return lambda: len(fleet.replicas(deployment_id, ReplicaState.READY)) == count
