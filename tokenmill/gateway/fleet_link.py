"""A gateway in its own process, linked to the fleet through the board in the database.

``RouteWatcher`` keeps the gateway's router as the leading controller published it: served
names' pools, ready replicas (applied again at every read, so a replica the gateway set aside
as unreachable comes back while the controller still holds it ready), failing pools; and it
keeps the fleet's status for the admin API. ``LoadReporter`` tells the controller what waits
and runs here; a request that waits for a pool with no replica is reported at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from tokenmill.fleet.board import BIND, FAILING, REPLICAS, STATUS, FleetBoard, PoolReport
from tokenmill.fleet.deployments import Binding
from tokenmill.gateway.routing import Router

log = logging.getLogger(__name__)

WATCH_SECONDS = 0.25
REPORT_SECONDS = 1.0


class RouteWatcher:
    def __init__(
        self,
        board: FleetBoard,
        router: Router,
        *,
        interval_seconds: float = WATCH_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.board = board
        self.router = router
        self.interval_seconds = interval_seconds
        self._monotonic = monotonic
        self._applied: dict[str, Any] = {}
        self.fleet: list[dict[str, Any]] = []

    def status(self) -> list[dict[str, Any]]:
        return self.fleet

    async def run(self) -> None:
        while True:
            try:
                self.apply(await asyncio.to_thread(self.board.routes))
            except Exception:
                log.exception("could not read the fleet's routes; the last ones stay")
            await asyncio.sleep(self.interval_seconds)

    def apply(self, routes: dict[str, Any]) -> None:
        for key in set(self._applied) - set(routes):
            self._apply(key, None)
        for key, payload in routes.items():
            if key.startswith(REPLICAS) or self._applied.get(key) != payload:
                self._apply(key, payload)
        self._applied = dict(routes)

    def _apply(self, key: str, payload: Any) -> None:
        if key == STATUS:
            self.fleet = list(payload or [])
        elif key.startswith(BIND):
            bindings = [Binding(pool, tenant) for pool, tenant in payload or []]
            self.router.bind(key[len(BIND) :], bindings)
        elif key.startswith(REPLICAS):
            self.router.set_replicas(key[len(REPLICAS) :], [(i, u) for i, u in payload or []])
        elif key.startswith(FAILING):
            reason, retry_in = payload or (None, 0.0)
            retry_at = self._monotonic() + float(retry_in) if reason else 0.0
            self.router.set_failing(key[len(FAILING) :], reason, retry_at)


def pool_reports(router: Router, now: float) -> list[PoolReport]:
    """Each pool's load; replicas that left a pool are forgotten once their last request
    here has ended (in-process, the controller's ``in_flight_of`` does that)."""
    reports = []
    for key, pool in router.pools.items():
        for gone in [i for i, e in pool.retired.items() if e.in_flight <= 0]:
            del pool.retired[gone]
        endpoints = [*pool.endpoints, *pool.retired.values()]
        busy = {e.replica_id: e.in_flight for e in endpoints if e.in_flight > 0}
        idle = None if pool.last_request_at is None else max(0.0, now - pool.last_request_at)
        reports.append(
            PoolReport(key, pool.waiting, sum(busy.values()), pool.arrived_total, idle, busy)
        )
    return reports


class LoadReporter:
    def __init__(
        self,
        board: FleetBoard,
        router: Router,
        gateway_id: str,
        *,
        interval_seconds: float = REPORT_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.board = board
        self.router = router
        self.gateway_id = gateway_id
        self.interval_seconds = interval_seconds
        self._monotonic = monotonic
        self._demand = asyncio.Event()

    def wake(self, key: str = "") -> None:
        """A request waits for a pool with no replica: the controller should know now."""
        self._demand.set()

    async def run(self) -> None:
        try:
            while True:
                self._demand.clear()
                try:
                    reports = pool_reports(self.router, self._monotonic())
                    await asyncio.to_thread(self.board.report, self.gateway_id, reports)
                except Exception:
                    log.exception("could not report this gateway's load")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._demand.wait(), self.interval_seconds)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.board.forget, self.gateway_id)
