"""The fleet controller's Prometheus metrics: what the fleet runs, what it did, what waits.

Counters are fed by the controller as it acts: a replica started, failed (by cause) or
stopped, a scaling decision taken, a placement refused for want of room, a step run. The
fleet's state (replicas by state, the replicas each deployment should have, accelerator
memory) is a snapshot the controller hands over at the end of each step and a collector
serves at scrape time, so a deployment or a node that is gone leaves no stale series and a
scrape from another thread never reads the controller's state half-changed.

Deployments are labelled by id (``deployment``) and served name (``model``): a shared and a
dedicated deployment may serve the same name. ``WorkQueueCollector`` counts the durable work
queue from the database at scrape time. ``leader`` and ``leader_changes`` belong to leader
election, which sets them; the controller does not touch them.

A registry takes each family once: build ``controller_metrics`` once per process and hand the
same ``FleetMetrics`` to every fleet the process builds (one per leadership term).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from tokenmill.clock import Clock
from tokenmill.fleet.autoscale import ScalingDecision
from tokenmill.fleet.deployments import DeploymentInfo
from tokenmill.fleet.inventory import Inventory
from tokenmill.fleet.placement import Assignment, Occupancy
from tokenmill.fleet.replicas import ReplicaState
from tokenmill.store.db import Database
from tokenmill.work.items import WorkStatus
from tokenmill.work.queue import WorkQueue

if TYPE_CHECKING:
    from tokenmill.fleet.controller import Managed

log = logging.getLogger(__name__)

PREFIX = "tokenmill_controller_"
STEP_BUCKETS_SECONDS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
REPLICA_STATES = (ReplicaState.STARTING, ReplicaState.READY, ReplicaState.DRAINING)
DEPLOYMENT = ["deployment", "model"]


class FailureCause(StrEnum):
    """Why a replica did not come up or stay up: the ``cause`` label of replica failures."""

    LAUNCH = "launch"  # the backend could not start its process
    EXITED = "exited"  # its process ended unasked, while starting or serving
    START_TIMEOUT = "start_timeout"  # not ready within the start timeout


@dataclass(frozen=True, slots=True)
class FleetSnapshot:
    """The fleet as one step left it: values only, safe to read from any thread."""

    replicas: dict[tuple[str, str, str], int] = field(default_factory=dict)
    desired: dict[tuple[str, str], int] = field(default_factory=dict)
    memory_bytes: dict[tuple[str, str], int] = field(default_factory=dict)
    allocated_bytes: dict[tuple[str, str], int] = field(default_factory=dict)

    @classmethod
    def of(
        cls, managed: Iterable[Managed], inventory: Inventory, assignments: Sequence[Assignment]
    ) -> FleetSnapshot:
        snapshot = cls()
        for m in managed:
            labels = (m.info.id, m.info.served_name)
            for state in REPLICA_STATES:
                snapshot.replicas[(*labels, state.value)] = len(m.live(state))
            decision = m.last_decision if m.info.active else None
            snapshot.desired[labels] = decision.target_replicas if decision else 0
        occupancy = Occupancy.from_assignments(inventory, assignments)
        for node, accelerator in inventory.accelerators():
            key = (node.id, accelerator.kind)
            use = occupancy.uses.get(accelerator.id)
            used = use.used_bytes if use else 0
            snapshot.memory_bytes[key] = (
                snapshot.memory_bytes.get(key, 0) + accelerator.memory_bytes
            )
            snapshot.allocated_bytes[key] = snapshot.allocated_bytes.get(key, 0) + used
        return snapshot


class FleetStateCollector(Collector):
    """Serves the latest ``FleetSnapshot`` at scrape time."""

    def __init__(self) -> None:
        self.snapshot = FleetSnapshot()

    def describe(self) -> Iterator[Metric]:
        return self._families(FleetSnapshot())

    def collect(self) -> Iterator[Metric]:
        return self._families(self.snapshot)

    @staticmethod
    def _families(snapshot: FleetSnapshot) -> Iterator[Metric]:
        for name, text, labels, values in (
            (
                "replicas",
                "Replicas by state: starting (launched, not yet warmed up), ready (in the "
                "router), draining (finishing in-flight work).",
                [*DEPLOYMENT, "state"],
                snapshot.replicas,
            ),
            (
                "desired_replicas",
                "The replicas the deployment's autoscaler last asked for (0 when stopped).",
                DEPLOYMENT,
                snapshot.desired,
            ),
            (
                "accelerator_memory_bytes",
                "Accelerator memory the fleet can place replicas into, by node and kind.",
                ["node", "kind"],
                snapshot.memory_bytes,
            ),
            (
                "accelerator_allocated_memory_bytes",
                "Accelerator memory held by live replicas' placements, by node and kind.",
                ["node", "kind"],
                snapshot.allocated_bytes,
            ),
        ):
            family = GaugeMetricFamily(PREFIX + name, text, labels=labels)
            for key, value in values.items():
                family.add_metric(list(key), value)
            yield family


class FleetMetrics:
    """The controller's metrics on ``registry`` (its own, or one shared with the gateway)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = r = registry
        self.starts = Counter(
            PREFIX + "replica_starts",
            "Replicas placed and launched.",
            DEPLOYMENT,
            registry=r,
        )
        self.failures = Counter(
            PREFIX + "replica_failures",
            "Replicas that did not come up or stay up, by cause: launch (the backend could "
            "not start it), exited (its process ended unasked), start_timeout.",
            [*DEPLOYMENT, "cause"],
            registry=r,
        )
        self.stops = Counter(
            PREFIX + "replica_stops",
            "Replicas drained and stopped (scaled in, or the deployment stopped).",
            DEPLOYMENT,
            registry=r,
        )
        self.scaling_decisions = Counter(
            PREFIX + "scaling_decisions",
            "Autoscaler decisions the controller acted on, by direction (out: start replicas, "
            "in: drain some) and reason (cold_start, scale_out, scale_in, scale_to_zero, "
            "below_min, above_max).",
            [*DEPLOYMENT, "direction", "reason"],
            registry=r,
        )
        self.placement_failures = Counter(
            PREFIX + "placement_failures",
            "Replicas that could not be placed: no accelerator had room under the constraints.",
            DEPLOYMENT,
            registry=r,
        )
        self.step_seconds = Histogram(
            PREFIX + "step_seconds",
            "Time one controller step took (watch, scale, act, for every deployment).",
            buckets=STEP_BUCKETS_SECONDS,
            registry=r,
        )
        self.leader = Gauge(
            PREFIX + "leader",
            "1 while this controller holds the fleet's leadership, else 0 (set by leader "
            "election).",
            registry=r,
        )
        self.leader_changes = Counter(
            PREFIX + "leader_changes",
            "Times this controller gained or lost the leadership (counted by leader election).",
            registry=r,
        )
        self.state = FleetStateCollector()
        r.register(self.state)

    def started(self, info: DeploymentInfo) -> None:
        self.starts.labels(info.id, info.served_name).inc()

    def failed(self, info: DeploymentInfo, cause: FailureCause) -> None:
        self.failures.labels(info.id, info.served_name, cause.value).inc()

    def stopped(self, info: DeploymentInfo) -> None:
        self.stops.labels(info.id, info.served_name).inc()

    def unplaced(self, info: DeploymentInfo) -> None:
        self.placement_failures.labels(info.id, info.served_name).inc()

    def decided(self, info: DeploymentInfo, decision: ScalingDecision) -> None:
        """A decision the controller acts on (a scale-out waiting out a back-off is not)."""
        direction = "out" if decision.delta > 0 else "in"
        labels = (info.id, info.served_name, direction, decision.reason.value)
        self.scaling_decisions.labels(*labels).inc()

    def stepped(self, seconds: float, snapshot: FleetSnapshot) -> None:
        self.step_seconds.observe(seconds)
        self.state.snapshot = snapshot

    def forget_fleet(self) -> None:
        """Empties the fleet's state series: call it when this controller stops leading, so
        only the leader reports replicas and accelerator memory."""
        self.state.snapshot = FleetSnapshot()


class WorkQueueCollector(Collector):
    """The durable work queue, counted from the database at each scrape.

    ``work_items{kind,status}``: items in each status (finished ones stay until they are
    purged); ``work_oldest_queued_seconds{kind}``: how long the longest-waiting queued item
    that is due (not waiting out a retry delay) has waited to be claimed, 0 when none waits.
    A database that does not answer leaves both families empty: the rest of the page is served.
    """

    def __init__(self, queue: WorkQueue, clock: Clock) -> None:
        self._queue = queue
        self._clock = clock

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        items, oldest = self._families()
        try:
            census = self._queue.census()
        except SQLAlchemyError as error:
            log.warning("cannot count the work queue: %s", error)
            yield from (items, oldest)
            return
        now = self._clock.utcnow()
        kinds = sorted({kind for kind, _ in census.counts})
        for kind in kinds:
            for status in WorkStatus:
                items.add_metric([kind, status.value], census.counts.get((kind, status), 0))
            due = census.oldest_due.get(kind)
            oldest.add_metric([kind], max(0.0, (now - due).total_seconds()) if due else 0.0)
        yield from (items, oldest)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                PREFIX + "work_items",
                "Background work items by kind and status.",
                labels=["kind", "status"],
            ),
            GaugeMetricFamily(
                PREFIX + "work_oldest_queued_seconds",
                "How long the oldest due queued item of each kind has waited to be claimed.",
                labels=["kind"],
            ),
        )


def controller_metrics(registry: CollectorRegistry, db: Database, clock: Clock) -> FleetMetrics:
    """The controller process's metrics on ``registry``: the fleet's, and the work queue's
    counts. Call once per process and registry (a second call finds the names taken)."""
    metrics = FleetMetrics(registry)
    registry.register(WorkQueueCollector(WorkQueue(db, clock), clock))
    return metrics
