"""The fleet's board in the database: how a controller and gateways in other processes meet.

The leading controller publishes what a gateway's router needs (each served name's pools, each
pool's ready replicas, a pool that fails to start, and the fleet's status for the admin API);
every gateway reports what the controller's autoscalers need (each pool's waiting and in-flight
requests, arrivals, idle time, in-flight requests per replica). ``BoardSink`` is the
controller's side: the router the fleet controller publishes to, backed by the board.
Gateways read and report with ``tokenmill.gateway.fleet_link``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select

from tokenmill.clock import Clock
from tokenmill.control.leader import CONTROLLER_LEASE
from tokenmill.fleet.deployments import Binding
from tokenmill.fleet.seams import ReadySink
from tokenmill.store.db import Database
from tokenmill.store.fleet_tables import FleetRoute, GatewayLoad, Lease

BIND, REPLICAS, FAILING, STATUS = "bind:", "replicas:", "failing:", "status"
FRESH_SECONDS = 5.0  # a gateway's report older than this is of a gateway that is gone
LOADS_CACHE_SECONDS = 0.2


@dataclass(frozen=True, slots=True)
class PoolReport:
    """One gateway's view of one pool."""

    pool_key: str
    waiting: int
    in_flight: int
    arrived_total: int
    idle_seconds: float | None
    replicas: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Report:
    gateway_id: str
    pool: PoolReport
    age_seconds: float  # how old the report was when read


class FleetBoard:
    def __init__(self, db: Database, clock: Clock, lease_name: str = CONTROLLER_LEASE) -> None:
        self._db = db
        self._clock = clock
        self._lease_name = lease_name

    def take_over(self, epoch: int) -> None:
        """A new leader's first act: what earlier leaders published is gone."""
        with self._db.session() as session:
            session.execute(delete(FleetRoute).where(FleetRoute.epoch < epoch))

    def publish(self, epoch: int, key: str, payload: Any) -> bool:
        """Writes one route, or removes it (``payload`` None), only while ``epoch`` still
        holds the lease: False when a newer leader has it."""
        with self._db.session() as session:
            lease = session.get(Lease, self._lease_name)
            if lease is None or lease.epoch != epoch:
                return False
            row = session.get(FleetRoute, key)
            if payload is None:
                if row is not None:
                    session.delete(row)
            elif row is None:
                session.add(
                    FleetRoute(key=key, payload=payload, epoch=epoch, updated_at=self._now())
                )
            else:
                row.payload, row.epoch, row.updated_at = payload, epoch, self._now()
        return True

    def routes(self) -> dict[str, Any]:
        """Every route of the newest epoch on the board."""
        with self._db.session() as session:
            rows = session.execute(select(FleetRoute)).scalars().all()
            newest = max((r.epoch for r in rows), default=0)
            return {r.key: r.payload for r in rows if r.epoch == newest}

    def report(self, gateway_id: str, pools: Sequence[PoolReport]) -> None:
        """This gateway's pools, replacing what it reported before."""
        now = self._now()
        with self._db.session() as session:
            session.execute(delete(GatewayLoad).where(GatewayLoad.gateway_id == gateway_id))
            session.add_all(
                GatewayLoad(
                    gateway_id=gateway_id,
                    pool_key=p.pool_key,
                    waiting=p.waiting,
                    in_flight=p.in_flight,
                    arrived_total=p.arrived_total,
                    idle_seconds=p.idle_seconds,
                    replicas=p.replicas,
                    updated_at=now,
                )
                for p in pools
            )

    def forget(self, gateway_id: str) -> None:
        with self._db.session() as session:
            session.execute(delete(GatewayLoad).where(GatewayLoad.gateway_id == gateway_id))

    def reports(self, fresh_seconds: float = FRESH_SECONDS) -> list[Report]:
        """Every live gateway's pools (reports newer than ``fresh_seconds``)."""
        now = self._now()
        since = now - timedelta(seconds=fresh_seconds)
        with self._db.session() as session:
            rows = session.execute(
                select(GatewayLoad).where(GatewayLoad.updated_at >= since)
            ).scalars()
            return [
                Report(
                    r.gateway_id,
                    PoolReport(
                        r.pool_key,
                        r.waiting,
                        r.in_flight,
                        r.arrived_total,
                        r.idle_seconds,
                        dict(r.replicas),
                    ),
                    (now - r.updated_at).total_seconds(),
                )
                for r in rows
            ]

    def _now(self) -> Any:
        return self._clock.utcnow()


class BoardSink:
    """The controller's router: publishes to its own in-process router (for the model calls
    its background work makes) and to the board; loads are its own plus every gateway's.

    Routes are written only when they change. Arrivals are summed as each gateway's increases,
    so a gateway that restarts (its count back at zero) does not make the total go down.
    """

    def __init__(
        self,
        board: FleetBoard,
        local: ReadySink,
        epoch: int,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        local_load: bool = True,
    ) -> None:
        """``local_load``: count the local router's own load too (False when this process
        reports it on the board like a gateway)."""
        self.board = board
        self.local = local
        self.epoch = epoch
        self._monotonic = monotonic
        self._local_load = local_load
        self._published: dict[str, Any] = {}
        self._failing: dict[str, tuple[str | None, float]] = {}
        self._reports: list[Report] = []
        self._read_at = -1e18
        self._seen: dict[tuple[str, str], int] = {}
        self._arrivals: dict[str, int] = {}

    def _publish(self, key: str, payload: Any) -> None:
        if key in self._published and self._published[key] == payload:
            return
        if self.board.publish(self.epoch, key, payload):
            self._published[key] = payload

    def bind(self, served_name: str, bindings: Sequence[Any]) -> None:
        self.local.bind(served_name, bindings)
        routes = [[b.pool_key, b.tenant_id] for b in bindings if isinstance(b, Binding)]
        self._publish(BIND + served_name, routes or None)

    def set_replicas(self, key: str, urls: Sequence[str | tuple[str, str]]) -> None:
        self.local.set_replicas(key, urls)
        pairs = [[u, u] if isinstance(u, str) else [u[0], u[1]] for u in urls]
        self._publish(REPLICAS + key, pairs)

    def set_failing(self, key: str, reason: str | None, retry_at: float = 0.0) -> None:
        self.local.set_failing(key, reason, retry_at)
        if self._failing.get(key) == (reason, retry_at):
            return
        self._failing[key] = (reason, retry_at)
        retry_in = max(0.0, retry_at - self._monotonic())
        self._publish(FAILING + key, None if reason is None else [reason, round(retry_in, 1)])

    def publish_status(self, status: list[dict[str, Any]]) -> None:
        self._publish(STATUS, status)

    def pool_load(self, key: str) -> tuple[int, int, float | None, int]:
        waiting, in_flight, last, arrived = (
            self.local.pool_load(key) if self._local_load else (0, 0, None, 0)
        )
        now = self._monotonic()
        for report in self._gateways():
            pool = report.pool
            if pool.pool_key != key:
                continue
            waiting += pool.waiting
            in_flight += pool.in_flight
            if pool.idle_seconds is not None:
                theirs = now - pool.idle_seconds - report.age_seconds
                last = theirs if last is None else max(last, theirs)
        return waiting, in_flight, last, arrived + self._arrivals.get(key, 0)

    def in_flight_of(self, key: str, replica_id: str) -> int:
        theirs = sum(
            r.pool.replicas.get(replica_id, 0) for r in self._gateways() if r.pool.pool_key == key
        )
        own = self.local.in_flight_of(key, replica_id) if self._local_load else 0
        return own + theirs

    def _gateways(self) -> list[Report]:
        now = self._monotonic()
        if now - self._read_at >= LOADS_CACHE_SECONDS:
            self._read_at = now
            self._reports = self.board.reports()
            for report in self._reports:
                seen = (report.gateway_id, report.pool.pool_key)
                total = report.pool.arrived_total
                before = self._seen.get(seen, 0)
                grown = total - before if total >= before else total
                self._arrivals[report.pool.pool_key] = (
                    self._arrivals.get(report.pool.pool_key, 0) + grown
                )
                self._seen[seen] = total
        return self._reports
