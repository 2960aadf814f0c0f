"""A replica's life as the controller tracks it, and its record in the database.

States: ``starting`` (process launched, not yet healthy and warmed up), ``ready`` (in the
router), ``draining`` (out of the router, finishing in-flight work), then ``stopped``; a
process that dies unasked is ``failed`` and the controller starts another after a back-off.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select

from tokenmill.billing.ledger import LedgerRepository
from tokenmill.billing.pricebook import PriceBookRepository
from tokenmill.clock import Clock
from tokenmill.fleet.backend import ReplicaProcess
from tokenmill.fleet.deployments import DeploymentInfo
from tokenmill.fleet.engines.base import EngineAdapter
from tokenmill.fleet.placement import Assignment
from tokenmill.store.db import Database
from tokenmill.store.tables import Deployment, ReplicaRun

SECONDS_PER_HOUR = 3600


class ReplicaState(StrEnum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    STOPPED = "stopped"
    FAILED = "failed"

    @classmethod
    def live(cls) -> frozenset[ReplicaState]:
        """States that hold an accelerator."""
        return frozenset({cls.STARTING, cls.READY, cls.DRAINING})


@dataclass(slots=True)
class Replica:
    id: str
    deployment: DeploymentInfo
    assignment: Assignment
    process: ReplicaProcess
    started_at_seconds: float
    adapter: EngineAdapter
    state: ReplicaState = ReplicaState.STARTING
    ready_at_seconds: float | None = None
    draining_since_seconds: float | None = None
    warming: bool = False

    @property
    def url(self) -> str:
        return self.process.url

    def as_json(self) -> dict[str, object]:
        return {
            "object": "replica",
            "id": self.id,
            "deployment_id": self.deployment.id,
            "model": self.deployment.served_name,
            "state": self.state.value,
            "url": self.url,
            "node": self.assignment.node_id,
            "accelerators": list(self.assignment.accelerator_ids),
            "memory_bytes": self.assignment.memory_bytes,
        }


def accelerator_charge_micros(
    seconds: float, accelerators: int, accelerator_hour_micros: int
) -> int:
    """Integer micros for ``seconds`` on ``accelerators``, rounded to the nearest micro."""
    return round(accelerator_hour_micros * accelerators * seconds / SECONDS_PER_HOUR)


class ReplicaRuns:
    """Writes each replica's run, and bills a dedicated one's hours when it stops."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._ledger = LedgerRepository(db, clock)
        self._prices = PriceBookRepository(db, clock)

    def started(self, replica: Replica, restarts: int) -> None:
        with self._db.session() as session:
            session.add(
                ReplicaRun(
                    id=replica.id,
                    deployment_id=replica.deployment.id,
                    tenant_id=replica.deployment.tenant_id,
                    served_name=replica.deployment.served_name,
                    node_id=replica.assignment.node_id,
                    accelerator_ids=list(replica.assignment.accelerator_ids),
                    url=replica.url,
                    state=ReplicaState.STARTING.value,
                    started_at=self._clock.utcnow(),
                    restarts=restarts,
                )
            )

    def ready(self, replica: Replica) -> None:
        with self._db.session() as session:
            row = session.get(ReplicaRun, replica.id)
            if row is not None:
                row.state, row.ready_at = ReplicaState.READY.value, self._clock.utcnow()

    def close_orphans(self, reason: str = "its controller was lost") -> int:
        """Closes every run still open, as failed: a new leader's first act, since the
        replicas of the controller before it died with it (they are started to). A dedicated
        one is billed up to now, at most a lease's length after it died. Returns how many."""
        now = self._clock.utcnow()
        live = [state.value for state in ReplicaState.live()]
        with self._db.session() as session:
            rows = session.execute(
                select(ReplicaRun, Deployment)
                .join(Deployment, Deployment.id == ReplicaRun.deployment_id)
                .where(ReplicaRun.state.in_(live), ReplicaRun.stopped_at.is_(None))
            ).all()
            closed = [
                (run.id, run.ready_at, len(run.accelerator_ids), run.served_name, deployment)
                for run, deployment in rows
            ]
            for run, _ in rows:
                run.state, run.stopped_at = ReplicaState.FAILED.value, now
                run.exit_reason = reason
        for replica_id, ready_at, accelerators, served_name, deployment in closed:
            if deployment.mode == "dedicated" and deployment.tenant_id is not None:
                what = f"{served_name} on {deployment.id}"
                tenant, model = deployment.tenant_id, deployment.model_id
                self._charge(replica_id, model, tenant, what, ready_at, accelerators, now)
        return len(closed)

    def stopped(self, replica: Replica, state: ReplicaState, reason: str | None = None) -> int:
        """Closes the run (with how a failed one ended); returns what a dedicated replica was
        charged (micros)."""
        now = self._clock.utcnow()
        with self._db.session() as session:
            row = session.get(ReplicaRun, replica.id)
            if row is None:
                return 0
            row.state, row.stopped_at, row.exit_reason = state.value, now, reason
            ready_at: datetime | None = row.ready_at
        deployment = replica.deployment
        if not deployment.dedicated or deployment.tenant_id is None:
            return 0
        return self._charge(
            replica.id,
            deployment.model_id,
            deployment.tenant_id,
            f"{deployment.served_name} on {deployment.id}",
            ready_at,
            len(replica.assignment.accelerator_ids),
            now,
        )

    def _charge(
        self,
        replica_id: str,
        model_id: str,
        tenant_id: str,
        what: str,
        ready_at: datetime | None,
        accelerators: int,
        until: datetime,
    ) -> int:
        """A dedicated replica's accelerator time, from ready to ``until``, once per run."""
        if ready_at is None:
            return 0
        price = self._prices.load().price_at(model_id, ready_at)
        amount = accelerator_charge_micros(
            (until - ready_at).total_seconds(), accelerators, price.accelerator_hour_micros
        )
        if amount:
            self._ledger.charge_accelerator_time(
                tenant_id,
                amount,
                idempotency_key=f"replica:{replica_id}",
                note=f"{what}, replica {replica_id}",
            )
        return amount
