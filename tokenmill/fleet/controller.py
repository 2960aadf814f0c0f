"""The fleet controller: makes the running replicas match the deployments.

Each step it reloads deployments now and then, watches every replica (health and warm-up
while starting, liveness while ready, in-flight work while draining), asks each deployment's
autoscaler for a replica count, and carries the decision out: place and launch, or drain and
stop. The autoscaler decides, the controller acts. Ready replicas are published to the
router through ``ReadySink``; the router tells the controller when a request waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from tokenmill.catalog.repository import ModelInfo, ModelRepository
from tokenmill.errors import NoCapacity, TokenmillError
from tokenmill.fleet.autoscale import (
    AUTOSCALERS,
    Autoscaler,
    LoadSnapshot,
    ScalingConfig,
    ScalingDecision,
)
from tokenmill.fleet.backend import Backend
from tokenmill.fleet.deployments import DeploymentInfo, DeploymentRepository
from tokenmill.fleet.engines import adapter_for
from tokenmill.fleet.inventory import Inventory
from tokenmill.fleet.launching import launch_settings, placement_request
from tokenmill.fleet.local import describe_exit
from tokenmill.fleet.metrics import FailureCause, FleetMetrics, FleetSnapshot
from tokenmill.fleet.placement import Assignment, place
from tokenmill.fleet.replicas import Replica, ReplicaRuns, ReplicaState
from tokenmill.fleet.seams import FleetOptions, ReadySink
from tokenmill.fleet.warmup import healthy, warm_up

log = logging.getLogger(__name__)

STARTING_TICK_SECONDS = 0.05


@dataclass(slots=True)
class Managed:
    info: DeploymentInfo
    autoscaler: Autoscaler
    replicas: list[Replica] = field(default_factory=list)
    failures: int = 0
    retry_at_seconds: float = 0.0
    last_decision: ScalingDecision | None = None
    last_error: str | None = None
    failing: str | None = None  # why replicas fail to come up, once they have often enough

    def live(self, *states: ReplicaState) -> list[Replica]:
        wanted = states or tuple(ReplicaState.live())
        return [r for r in self.replicas if r.state in wanted]


class FleetController:
    def __init__(
        self,
        *,
        deployments: DeploymentRepository,
        models: ModelRepository,
        router: ReadySink,
        backend: Backend,
        inventory: Inventory,
        runs: ReplicaRuns | None = None,
        options: FleetOptions | None = None,
        bindings: Callable[[list[DeploymentInfo]], dict[str, list[Any]]] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        metrics: FleetMetrics | None = None,
    ) -> None:
        self.deployments = deployments
        self.models = models
        self.router = router
        self.backend = backend
        self.inventory = inventory
        self.runs = runs
        self.options = options or FleetOptions()
        self._bindings = bindings
        self._monotonic = monotonic
        self.metrics = metrics or FleetMetrics(CollectorRegistry())  # unscraped without one
        self.managed: dict[str, Managed] = {}
        self._models: dict[str, ModelInfo] = {}
        self._reloaded_at = -1e18
        self._wake = asyncio.Event()
        self._bound: set[str] = set()

    def wake(self, key: str = "") -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except Exception:
                log.exception("fleet step failed; retrying")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._next_tick_seconds())

    def _next_tick_seconds(self) -> float:
        """Short while a replica is starting: a request may be waiting for it."""
        starting = any(
            r.state == ReplicaState.STARTING and not r.warming
            for m in self.managed.values()
            for r in m.replicas
        )
        return STARTING_TICK_SECONDS if starting else self.options.tick_seconds

    async def step(self) -> None:
        started, now = time.perf_counter(), self._monotonic()
        if now - self._reloaded_at >= self.options.reload_seconds:
            await self.reload()
        for managed in list(self.managed.values()):
            await self._watch(managed)
            if managed.info.active:
                await self._scale(managed)
            else:
                for replica in managed.live(ReplicaState.STARTING, ReplicaState.READY):
                    self._drain(managed, replica)
            self._publish(managed)
        snapshot = FleetSnapshot.of(self.managed.values(), self.inventory, self.assignments())
        self.metrics.stepped(time.perf_counter() - started, snapshot)

    async def reload(self) -> None:
        infos = await asyncio.to_thread(self.deployments.list)
        models = await asyncio.to_thread(self.models.list)
        self._models = {m.id: m for m in models}
        self._reloaded_at = self._monotonic()
        for info in infos:
            managed = self.managed.get(info.id)
            if managed is None:
                self.managed[info.id] = Managed(info, self._autoscaler(info))
            elif managed.info != info:
                managed.info = info
                managed.autoscaler = self._autoscaler(info)
        if self._bindings is not None:
            current = self._bindings(infos)
            for served_name in self._bound - set(current):
                self.router.bind(served_name, [])
            for served_name, bindings in current.items():
                self.router.bind(served_name, bindings)
            self._bound = set(current)

    def _autoscaler(self, info: DeploymentInfo) -> Autoscaler:
        o = self.options
        config = ScalingConfig(
            min_replicas=info.min_replicas,
            max_replicas=max(info.max_replicas, 1),
            target_load_per_replica=float(
                info.scaling.get("target_load_per_replica", o.target_load_per_replica)
            ),
            scale_out_delay_seconds=float(
                info.scaling.get("scale_out_delay_seconds", o.scale_out_delay_seconds)
            ),
            scale_in_delay_seconds=float(
                info.scaling.get("scale_in_delay_seconds", o.scale_in_delay_seconds)
            ),
            idle_seconds_before_zero=float(info.idle_seconds),
        )
        return AUTOSCALERS[info.scaling.get("policy", o.autoscaler)](config)

    async def _scale(self, managed: Managed) -> None:
        now = self._monotonic()
        waiting, in_flight, last_request, arrived = self.router.pool_load(managed.info.id)
        snapshot = LoadSnapshot(
            now_seconds=now,
            ready_replicas=len(managed.live(ReplicaState.READY)),
            starting_replicas=len(managed.live(ReplicaState.STARTING)),
            queued_requests=waiting,
            in_flight_requests=in_flight,
            last_request_at_seconds=last_request,
            arrived_requests_total=arrived,
        )
        decision = managed.autoscaler.decide(snapshot)
        managed.last_decision = decision
        if decision.delta > 0 and now >= managed.retry_at_seconds:
            self.metrics.decided(managed.info, decision)
            for _ in range(decision.delta):
                if not await self._start(managed):
                    break
        elif decision.delta < 0:
            self.metrics.decided(managed.info, decision)
            newest_first = sorted(
                managed.live(ReplicaState.STARTING, ReplicaState.READY),
                key=lambda r: (r.state == ReplicaState.READY, -r.started_at_seconds),
            )
            for replica in newest_first[: -decision.delta]:
                self._drain(managed, replica)

    def assignments(self) -> list[Assignment]:
        return [r.assignment for m in self.managed.values() for r in m.live()]

    async def _start(self, managed: Managed) -> bool:
        info = managed.info
        model = self._models.get(info.model_id)
        version = model.version(info.version) if model else None
        if model is None or version is None:
            managed.last_error = f"model {info.served_name} is not in the library"
            return False
        replica_id = f"rep_{secrets.token_hex(5)}"
        request = placement_request(info, version, replica_id)
        try:
            assignment = place(self.inventory, self.assignments(), request, self.options.placement)
            adapter = adapter_for(info.engine if info.engine != "auto" else model.engine)
            port = self.backend.free_port(assignment)
            settings = launch_settings(
                info, model, version, assignment, self.inventory, port, self.options
            )
            process = await asyncio.to_thread(self.backend.launch, adapter, settings, assignment)
        except NoCapacity as error:
            self.metrics.unplaced(info)
            managed.last_error = str(error)
            log.warning("no room for a replica of %s: %s", info.served_name, error)
            wait = self.options.retries.backoff_seconds[0]
            managed.retry_at_seconds = self._monotonic() + wait
            return False
        except (TokenmillError, OSError) as error:
            log.warning("cannot start a replica of %s: %s", info.served_name, error)
            reason = f"its replica could not be started: {error}"
            await self._failed(managed, reason, FailureCause.LAUNCH)
            return False
        replica = Replica(replica_id, info, assignment, process, self._monotonic(), adapter)
        managed.replicas.append(replica)
        self.metrics.started(info)
        if self.runs is not None:
            await asyncio.to_thread(self.runs.started, replica, managed.failures)
        return True

    async def _watch(self, managed: Managed) -> None:
        now = self._monotonic()
        for replica in list(managed.replicas):
            if replica.state == ReplicaState.STOPPED or replica.state == ReplicaState.FAILED:
                managed.replicas.remove(replica)
                continue
            if not replica.process.alive() and replica.state != ReplicaState.DRAINING:
                await self._died(managed, replica)
                continue
            if replica.state == ReplicaState.STARTING and not replica.warming:
                if now - replica.started_at_seconds > self.options.start_timeout_seconds:
                    timeout = self.options.start_timeout_seconds
                    reason = f"its replica {replica.id} did not become ready within {timeout:g} s"
                    await self._finish(managed, replica, ReplicaState.FAILED, reason)
                    await self._failed(managed, reason, FailureCause.START_TIMEOUT)
                elif await asyncio.to_thread(healthy, replica.url, replica.adapter):
                    replica.warming = True
                    asyncio.get_running_loop().create_task(self._warm(managed, replica))
            elif replica.state == ReplicaState.DRAINING:
                in_flight = self.router.in_flight_of(managed.info.id, replica.id)
                since = replica.draining_since_seconds or now
                if in_flight == 0 or now - since > self.options.drain_timeout_seconds:
                    await self._finish(managed, replica, ReplicaState.STOPPED)

    async def _warm(self, managed: Managed, replica: Replica) -> None:
        model = self._models.get(managed.info.model_id)
        task = model.task if model else "chat"
        try:
            measured = await asyncio.to_thread(warm_up, replica.url, managed.info.served_name, task)
        except Exception as error:  # a replica that cannot answer is not ready
            log.warning("warm-up of %s failed: %s", replica.id, error)
            replica.warming = False
            return
        if replica.state != ReplicaState.STARTING:
            return
        replica.state = ReplicaState.READY
        replica.ready_at_seconds = self._monotonic()
        managed.failures = 0
        managed.last_error = None
        if managed.failing is not None or managed.info.failing_reason is not None:
            log.info("%s is healthy: a replica is ready", managed.info.served_name)
            managed.failing = None
            self.router.set_failing(managed.info.id, None)
            await asyncio.to_thread(self.deployments.set_failing, managed.info.id, None)
        self._publish(managed)
        self.wake()
        if self.runs is not None:
            await asyncio.to_thread(self.runs.ready, replica)
        if measured:
            await asyncio.to_thread(
                self.models.record_measured,
                managed.info.model_id,
                managed.info.version,
                measured,
            )

    def _drain(self, managed: Managed, replica: Replica) -> None:
        replica.state = ReplicaState.DRAINING
        replica.draining_since_seconds = self._monotonic()
        self._publish(managed)

    async def _finish(
        self, managed: Managed, replica: Replica, state: ReplicaState, reason: str | None = None
    ) -> None:
        was_live = replica.state in ReplicaState.live()
        if was_live:  # out of the router at once; it holds its accelerator until it exits
            replica.state = ReplicaState.DRAINING
            self._publish(managed)
        await asyncio.to_thread(replica.process.stop)
        replica.state = state
        if was_live and state == ReplicaState.STOPPED:
            self.metrics.stopped(managed.info)
        if was_live and self.runs is not None:
            await asyncio.to_thread(self.runs.stopped, replica, state, reason)

    async def _died(self, managed: Managed, replica: Replica) -> None:
        """A replica's process ended unasked: say how, with the end of its log, and back off."""
        process = replica.process
        code, tail = await asyncio.to_thread(lambda: (process.exit_code(), process.log_tail()))
        when = "while starting" if replica.state == ReplicaState.STARTING else "while serving"
        reason = f"its replica {replica.id} {describe_exit(code)} {when}"
        log.warning(
            "%s: %s; the end of its log:\n%s", managed.info.served_name, reason, tail or "(empty)"
        )
        await self._finish(managed, replica, ReplicaState.FAILED, reason)
        last_line = next((line for line in reversed(tail.splitlines()) if line.strip()), "")
        reason = f"{reason} (last log line: {last_line.strip()[:300]})"
        await self._failed(managed, reason, FailureCause.EXITED)

    async def _failed(self, managed: Managed, reason: str, cause: FailureCause) -> None:
        """Counts a failure to bring a replica up and backs off; once failures repeat, the
        deployment is failing and its requests are refused with the reason until one is ready."""
        self.metrics.failed(managed.info, cause)
        managed.failures += 1
        managed.last_error = reason
        decision = self.options.retries.after(managed.failures)
        managed.retry_at_seconds = self._monotonic() + decision.wait_seconds
        if not decision.failing:
            return
        name = managed.info.served_name
        log.error("%s is failing: %s; next attempt in %g s", name, reason, decision.wait_seconds)
        managed.failing = f"{managed.failures} failures in a row; the last: {reason}"
        self.router.set_failing(managed.info.id, managed.failing, managed.retry_at_seconds)
        await asyncio.to_thread(self.deployments.set_failing, managed.info.id, managed.failing)

    def _publish(self, managed: Managed) -> None:
        ready = [(r.id, r.url) for r in managed.replicas if r.state == ReplicaState.READY]
        self.router.set_replicas(managed.info.id, ready)

    def status(self) -> list[dict[str, Any]]:
        out = []
        for managed in self.managed.values():
            decision = managed.last_decision
            out.append(
                {
                    **managed.info.as_json(),
                    "replicas": [r.as_json() for r in managed.replicas],
                    "scaling_reason": decision.reason.value if decision else None,
                    "target_replicas": decision.target_replicas if decision else None,
                    "last_error": managed.last_error,
                    "health": "failing" if managed.failing else "ok",
                    "health_reason": managed.failing,
                }
            )
        return out

    def shutdown(self) -> None:
        """Stops every replica (the platform is going down); closes their runs."""
        for managed in self.managed.values():
            for replica in managed.replicas:
                if replica.state in ReplicaState.live():
                    replica.process.stop()
                    if self.runs is not None:
                        self.runs.stopped(replica, ReplicaState.STOPPED)
                    replica.state = ReplicaState.STOPPED
        self.backend.close()
