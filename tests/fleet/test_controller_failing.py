"""A deployment whose replicas die before they are ready: counted, explained, refused at once,
retried more slowly. Fake processes, a real router and database, time passed in. (Recovery,
with a real engine process that crashes and then does not: tests/e2e/test_failing_deployment.)"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.fleet.harness import cpu_inventory
from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import ManualClock
from tokenmill.errors import ServiceUnavailable
from tokenmill.fleet.controller import FleetController
from tokenmill.fleet.deployments import DeploymentRepository, bindings
from tokenmill.fleet.engines.base import EngineAdapter, LaunchSettings
from tokenmill.fleet.local import describe_exit
from tokenmill.fleet.placement import Assignment
from tokenmill.fleet.retries import RetryPolicy
from tokenmill.fleet.seams import FleetOptions
from tokenmill.gateway.routing import Router
from tokenmill.store.db import Database

LOG = "INFO uvicorn: Uvicorn running on http://127.0.0.1:9\nFatal Python error: Segmentation fault"


@dataclass
class DeadProcess:
    """A replica process that has already died with ``code``."""

    code: int
    url: str = "http://127.0.0.1:9"
    log_path: Path | None = None

    def alive(self) -> bool:
        return False

    def exit_code(self) -> int | None:
        return self.code

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(LOG.splitlines()[-lines:])

    def stop(self, grace_seconds: float = 10.0) -> None:
        pass

    def kill(self) -> None:
        pass


@dataclass
class CrashingBackend:
    name: str = "fake"
    code: int = -signal.SIGSEGV
    launched: list[float] = field(default_factory=list)
    clock: ManualClock | None = None

    def free_port(self, assignment: Assignment) -> int:
        return 9

    def launch(
        self, adapter: EngineAdapter, settings: LaunchSettings, assignment: Assignment
    ) -> DeadProcess:
        assert self.clock is not None
        self.launched.append(self.clock.monotonic())
        return DeadProcess(self.code)

    def close(self) -> None:
        pass


@pytest.fixture
def fleet(database: Database, clock: ManualClock) -> tuple[FleetController, CrashingBackend]:
    ModelRepository(database, clock).register("m", task="chat", artifact="/m", context_tokens=512)
    backend = CrashingBackend(clock=clock)
    router = Router(queue_timeout_seconds=60, monotonic=clock.monotonic)
    controller = FleetController(
        deployments=DeploymentRepository(database, clock),
        models=ModelRepository(database, clock),
        router=router,
        backend=backend,
        inventory=cpu_inventory(),
        options=FleetOptions(
            retries=RetryPolicy(backoff_seconds=(1.0, 2.0), failing_backoff_seconds=(30.0,)),
            reload_seconds=1e9,
        ),
        bindings=bindings,
        monotonic=clock.monotonic,
    )
    return controller, backend


async def _run_for(controller: FleetController, clock: ManualClock, seconds: float) -> None:
    for _ in range(int(seconds * 10)):
        await controller.step()
        clock.advance(0.1)


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (-11, "was killed by signal 11 (SIGSEGV)"),
        (-9, "was killed by signal 9 (SIGKILL)"),
        (1, "exited with code 1"),
        (None, "stopped answering"),
    ],
)
def test_an_exit_is_described_in_words(code: int | None, words: str) -> None:
    assert describe_exit(code) == words


async def test_repeated_crashes_before_ready_make_the_deployment_failing(
    fleet: tuple[FleetController, CrashingBackend], database: Database, clock: ManualClock
) -> None:
    controller, backend = fleet
    deployments = DeploymentRepository(database, clock)
    info = deployments.create("m", "1", min_replicas=1, max_replicas=1)
    await controller.reload()
    await _run_for(controller, clock, 2.5)
    assert len(backend.launched) == 2  # the second after the first back-off of 1 s
    assert controller.managed[info.id].failing is None
    assert deployments.get(info.id).failing_reason is None  # type: ignore[union-attr]

    await _run_for(controller, clock, 3)
    assert len(backend.launched) == 3
    managed = controller.managed[info.id]
    assert managed.failing is not None
    assert "3 failures in a row" in managed.failing
    assert "was killed by signal 11 (SIGSEGV) while starting" in managed.failing
    assert "Segmentation fault" in managed.failing  # the last line of its log
    stored = deployments.get(info.id)
    assert stored is not None and stored.failing_reason == managed.failing
    status = next(s for s in controller.status() if s["id"] == info.id)
    assert (status["health"], status["health_reason"]) == ("failing", managed.failing)

    router = controller.router
    assert isinstance(router, Router)
    with pytest.raises(ServiceUnavailable) as refused:
        await router.acquire(info.served_name)
    assert refused.value.code == "deployment_failing"
    assert "signal 11" in refused.value.message
    assert 25 <= int(refused.value.headers["Retry-After"]) <= 30

    # Retries go on, at the slower pace: the next one 30 s after the third failure (t=3.4).
    await _run_for(controller, clock, 27)
    assert len(backend.launched) == 3
    await _run_for(controller, clock, 2)
    assert len(backend.launched) == 4
    assert backend.launched[3] - backend.launched[2] == pytest.approx(30, abs=0.3)


async def test_a_waiting_request_is_refused_when_the_deployment_turns_failing(
    fleet: tuple[FleetController, CrashingBackend], database: Database, clock: ManualClock
) -> None:
    import asyncio

    controller, _ = fleet
    info = DeploymentRepository(database, clock).create("m", "1", min_replicas=1, max_replicas=1)
    await controller.reload()
    router = controller.router
    assert isinstance(router, Router)
    waiting = asyncio.ensure_future(router.acquire(info.served_name))
    await asyncio.sleep(0)
    assert not waiting.done()
    await _run_for(controller, clock, 6)
    with pytest.raises(ServiceUnavailable) as refused:
        await waiting
    assert refused.value.code == "deployment_failing"
