"""The controller's metrics, read from the registry as a scrape would, after a real controller
started, lost, scaled and stopped replicas; and the work queue counted from a real database.

Replica processes are doubles (alive until told otherwise, never healthy) as in
test_controller_failing, with time passed in; one test runs a real engine process (the
llama-server stand-in) to see a replica counted ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from tests.fleet.engines import standin
from tests.fleet.harness import cpu_inventory
from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import ManualClock, SystemClock
from tokenmill.fleet.backend import LocalBackend
from tokenmill.fleet.controller import FleetController
from tokenmill.fleet.deployments import DeploymentRepository, bindings
from tokenmill.fleet.engines.base import EngineAdapter, LaunchSettings
from tokenmill.fleet.inventory import GIB
from tokenmill.fleet.metrics import FleetMetrics, WorkQueueCollector
from tokenmill.fleet.placement import Assignment
from tokenmill.fleet.retries import RetryPolicy
from tokenmill.fleet.seams import FleetOptions
from tokenmill.gateway.routing import Router
from tokenmill.store.db import Database
from tokenmill.work.queue import WorkQueue

P = "tokenmill_controller_"


@dataclass
class QuietProcess:
    """A replica process that runs until ``exit`` and never answers (nothing listens)."""

    code: int | None = None
    url: str = "http://127.0.0.1:9"
    log_path: Path | None = None
    stopped: bool = False

    def alive(self) -> bool:
        return self.code is None and not self.stopped

    def exit_code(self) -> int | None:
        return self.code

    def log_tail(self, lines: int = 20) -> str:
        return "loading the model"

    def stop(self, grace_seconds: float = 10.0) -> None:
        self.stopped = True

    def kill(self) -> None:
        self.stopped = True

    def exit(self, code: int) -> None:
        self.code = code


@dataclass
class QuietBackend:
    name: str = "fake"
    refuse: bool = False
    launched: list[QuietProcess] = field(default_factory=list)

    def free_port(self, assignment: Assignment) -> int:
        return 9

    def launch(
        self, adapter: EngineAdapter, settings: LaunchSettings, assignment: Assignment
    ) -> QuietProcess:
        if self.refuse:
            raise OSError("llama-server: not found")
        self.launched.append(QuietProcess())
        return self.launched[-1]

    def close(self) -> None:
        pass


@dataclass
class Fleet:
    controller: FleetController
    backend: QuietBackend
    deployments: DeploymentRepository
    registry: CollectorRegistry
    clock: ManualClock

    def value(self, name: str, **labels: str) -> float:
        found = self.registry.get_sample_value(P + name, labels)
        return 0.0 if found is None else found

    async def steps(self, count: int = 1, seconds: float = 0.1) -> None:
        for _ in range(count):
            await self.controller.step()
            self.clock.advance(seconds)


@pytest.fixture
def fleet(database: Database, clock: ManualClock) -> Fleet:
    ModelRepository(database, clock).register("m", task="chat", artifact="/m", context_tokens=512)
    registry = CollectorRegistry()
    backend = QuietBackend()
    controller = FleetController(
        deployments=DeploymentRepository(database, clock),
        models=ModelRepository(database, clock),
        router=Router(queue_timeout_seconds=60, monotonic=clock.monotonic),
        backend=backend,
        inventory=cpu_inventory(slots=2, slot_bytes=2 * GIB),
        options=FleetOptions(
            retries=RetryPolicy(backoff_seconds=(1.0,), failing_after_failures=100),
            reload_seconds=1e9,
            start_timeout_seconds=5.0,
        ),
        bindings=bindings,
        monotonic=clock.monotonic,
        metrics=FleetMetrics(registry),
    )
    return Fleet(controller, backend, DeploymentRepository(database, clock), registry, clock)


async def test_starts_placement_failures_scaling_and_stops_are_counted(fleet: Fleet) -> None:
    big = {"memory_bytes": 3 * GIB // 2}  # one per 2 GiB slot: the third has no room
    info = fleet.deployments.create("m", "1", min_replicas=3, max_replicas=3, settings=big)
    d = {"deployment": info.id, "model": "m@1"}
    await fleet.controller.reload()
    await fleet.steps()
    assert fleet.value("scaling_decisions_total", **d, direction="out", reason="below_min") == 1
    assert fleet.value("replica_starts_total", **d) == 2
    assert fleet.value("placement_failures_total", **d) == 1
    assert fleet.value("replicas", **d, state="starting") == 2
    assert fleet.value("replicas", **d, state="ready") == 0
    assert fleet.value("desired_replicas", **d) == 3
    node = {"node": "local", "kind": "cpu"}
    assert fleet.value("accelerator_memory_bytes", **node) == 4 * GIB
    assert fleet.value("accelerator_allocated_memory_bytes", **node) == 3 * GIB
    # Waiting out the back-off, the unmet scale-out is not counted again; then it is retried.
    await fleet.steps(5)
    assert fleet.value("scaling_decisions_total", **d, direction="out", reason="below_min") == 1
    await fleet.steps(6)
    assert fleet.value("scaling_decisions_total", **d, direction="out", reason="below_min") == 2
    assert fleet.value("placement_failures_total", **d) == 2

    fleet.deployments.update(info.id, min_replicas=1, max_replicas=1)
    await fleet.controller.reload()
    await fleet.steps()
    assert fleet.value("scaling_decisions_total", **d, direction="in", reason="above_max") == 1
    assert fleet.value("replicas", **d, state="draining") == 1
    assert fleet.value("replicas", **d, state="starting") == 1
    assert fleet.value("desired_replicas", **d) == 1
    await fleet.steps()  # nothing in flight: the drained replica stops
    assert fleet.value("replica_stops_total", **d) == 1
    assert fleet.value("replicas", **d, state="draining") == 0
    assert fleet.value("accelerator_allocated_memory_bytes", **node) == 3 * GIB // 2

    fleet.deployments.update(info.id, status="stopped")
    await fleet.controller.reload()
    await fleet.steps(2)
    assert fleet.value("replica_stops_total", **d) == 2
    assert fleet.value("desired_replicas", **d) == 0
    assert sum(fleet.value("replicas", **d, state=s) for s in ("starting", "draining")) == 0
    assert fleet.value("accelerator_allocated_memory_bytes", **node) == 0
    assert fleet.value("replica_failures_total", **d, cause="exited") == 0
    assert fleet.value("step_seconds_count") == 16


async def test_failures_are_counted_by_cause(fleet: Fleet) -> None:
    info = fleet.deployments.create("m", "1", min_replicas=1, max_replicas=1)
    d = {"deployment": info.id, "model": "m@1"}
    await fleet.controller.reload()
    await fleet.steps()
    fleet.backend.launched[0].exit(-signal.SIGSEGV)
    await fleet.steps()
    assert fleet.value("replica_failures_total", **d, cause="exited") == 1
    assert fleet.value("replicas", **d, state="starting") == 0

    await fleet.steps(12)  # after the 1 s back-off, another, which never answers
    assert fleet.value("replica_starts_total", **d) == 2
    await fleet.steps(60)
    assert fleet.value("replica_failures_total", **d, cause="start_timeout") == 1

    fleet.backend.refuse = True
    await fleet.steps(10)
    assert fleet.value("replica_failures_total", **d, cause="launch") == 1
    assert fleet.value("replica_starts_total", **d) == 2
    assert fleet.value("replica_failures_total", **d, cause="exited") == 1


async def test_leaving_the_lead_empties_the_fleet_series(fleet: Fleet) -> None:
    info = fleet.deployments.create("m", "1", min_replicas=1, max_replicas=1)
    await fleet.controller.reload()
    await fleet.steps()
    d = {"deployment": info.id, "model": "m@1"}
    assert fleet.value("replicas", **d, state="starting") == 1
    assert fleet.registry.get_sample_value(P + "leader") == 0
    fleet.controller.metrics.leader.set(1)
    fleet.controller.metrics.leader_changes.inc()
    assert fleet.registry.get_sample_value(P + "leader") == 1
    assert fleet.registry.get_sample_value(P + "leader_changes_total") == 1
    fleet.controller.metrics.forget_fleet()
    assert fleet.registry.get_sample_value(P + "replicas", {**d, "state": "starting"}) is None
    node = {"node": "local", "kind": "cpu"}
    assert fleet.registry.get_sample_value(P + "accelerator_memory_bytes", node) is None
    assert fleet.registry.get_sample_value(P + "replica_starts_total", d) == 1  # counters stay


async def test_a_real_replica_is_counted_ready_and_its_crash_as_exited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    engine = bin_dir / "llama-server"
    engine.write_text(f'#!/bin/sh\nexec {shlex.join(standin.launcher("llama-server"))} "$@"\n')
    engine.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    clock = SystemClock()
    db = Database(f"sqlite:///{tmp_path / 'fleet.db'}")
    db.migrate()
    ModelRepository(db, clock).register("m", task="chat", artifact=str(model), context_tokens=512)
    info = DeploymentRepository(db, clock).create(
        "m", "1", engine="llama-server", min_replicas=1, max_replicas=1
    )
    registry = CollectorRegistry()
    controller = FleetController(
        deployments=DeploymentRepository(db, clock),
        models=ModelRepository(db, clock),
        router=Router(queue_timeout_seconds=60),
        backend=LocalBackend(tmp_path / "logs"),
        inventory=cpu_inventory(),
        options=FleetOptions(
            threads=1, tick_seconds=0.05, retries=RetryPolicy(backoff_seconds=(0.1,))
        ),
        bindings=bindings,
        metrics=FleetMetrics(registry),
    )
    d = {"deployment": info.id, "model": "m@1"}

    async def until(name: str, value: float, **labels: str) -> None:
        deadline = time.monotonic() + 60
        while registry.get_sample_value(P + name, {**d, **labels}) != value:
            assert time.monotonic() < deadline, f"{name} never reached {value}"
            await asyncio.sleep(0.05)

    task = asyncio.create_task(controller.run())
    try:
        await until("replicas", 1, state="ready")
        assert registry.get_sample_value(P + "replicas", {**d, "state": "starting"}) == 0
        first = controller.managed[info.id].replicas[0]
        os.kill(first.process.process.pid, signal.SIGKILL)  # type: ignore[attr-defined]
        await until("replica_failures_total", 1, cause="exited")
        await until("replica_starts_total", 2)
        await until("replicas", 1, state="ready")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.to_thread(controller.shutdown)
        db.dispose()


def test_the_work_queue_is_counted_by_kind_and_status(
    database: Database, clock: ManualClock
) -> None:
    queue = WorkQueue(database, clock)
    registry = CollectorRegistry()
    registry.register(WorkQueueCollector(queue, clock))
    first = queue.enqueue("index", {"file": "a"})
    clock.advance(30)
    for name in ("b", "c"):
        queue.enqueue("index", {"file": name})
    queue.enqueue("batch", {"lines": 3}, delay_seconds=60)  # queued, but not due yet
    claimed = queue.claim("w1", ["index"], lease_seconds=60)
    assert claimed is not None and claimed.id == first.id
    done = queue.claim("w1", ["index"], lease_seconds=60)
    assert done is not None and queue.complete(done.id, "w1")
    clock.advance(15)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(P + name, labels)

    assert value("work_items", kind="index", status="queued") == 1
    assert value("work_items", kind="index", status="running") == 1
    assert value("work_items", kind="index", status="succeeded") == 1
    assert value("work_items", kind="index", status="failed") == 0
    assert value("work_items", kind="batch", status="queued") == 1
    assert value("work_oldest_queued_seconds", kind="index") == 15
    assert value("work_oldest_queued_seconds", kind="batch") == 0
    clock.advance(60)  # the batch item is due now, and has waited 15 s since
    assert value("work_oldest_queued_seconds", kind="index") == 75
    assert value("work_oldest_queued_seconds", kind="batch") == 15


def test_a_database_that_does_not_answer_leaves_the_rest_of_the_page(
    tmp_path: Path, clock: ManualClock
) -> None:
    unmigrated = Database(f"sqlite:///{tmp_path / 'empty.db'}")  # no work_items table
    registry = CollectorRegistry()
    registry.register(WorkQueueCollector(WorkQueue(unmigrated, clock), clock))
    Gauge("tokenmill_gateway_requests_waiting", "Waiting.", registry=registry).set(2)
    try:
        page = generate_latest(registry).decode()
    finally:
        unmigrated.dispose()
    assert "tokenmill_gateway_requests_waiting 2.0" in page
    assert "# TYPE tokenmill_controller_work_items gauge" in page
    assert "tokenmill_controller_work_items{" not in page
