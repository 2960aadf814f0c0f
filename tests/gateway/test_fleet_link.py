"""A gateway in its own process follows the board: the leading controller's routes reach its
router, its load reaches the controller, and a waiting request is reported at once."""

from __future__ import annotations

import asyncio

from tokenmill.clock import ManualClock
from tokenmill.control.leader import LeaderLease
from tokenmill.fleet.board import BoardSink, FleetBoard
from tokenmill.fleet.deployments import Binding
from tokenmill.gateway.fleet_link import LoadReporter, RouteWatcher, pool_reports
from tokenmill.gateway.routing import Router
from tokenmill.store.db import Database


def sink_and_board(database: Database, clock: ManualClock) -> tuple[BoardSink, FleetBoard]:
    board = FleetBoard(database, clock)
    epoch = LeaderLease(database, clock, "controller", ttl_seconds=5).claim()
    assert epoch is not None
    return BoardSink(board, Router(), epoch, monotonic=clock.monotonic), board


def test_routes_reach_the_gateways_router(database: Database, clock: ManualClock) -> None:
    sink, board = sink_and_board(database, clock)
    router = Router(monotonic=clock.monotonic)
    watcher = RouteWatcher(board, router, monotonic=clock.monotonic)
    sink.bind("chat", [Binding("dep1"), Binding("dep2", "acme")])
    sink.set_replicas("dep1", [("r1", "http://r1"), ("r2", "http://r2")])
    sink.publish_status([{"id": "dep1", "replicas": []}])
    watcher.apply(board.routes())
    assert router.pool_for("chat").key == "dep1"
    assert router.pool_for("chat", "acme").key == "dep2"
    assert router.pools["dep1"].managed
    assert [e.url for e in router.pools["dep1"].endpoints] == ["http://r1", "http://r2"]
    assert watcher.status() == [{"id": "dep1", "replicas": []}]

    lease = router.try_acquire(router.pools["dep1"])
    assert lease is not None
    router.suspect(lease)  # the gateway could not reach it
    assert len(router.pools["dep1"].endpoints) == 1
    watcher.apply(board.routes())  # the controller still holds it ready: it comes back
    assert len(router.pools["dep1"].endpoints) == 2
    assert lease.endpoint.replica_id in {e.replica_id for e in router.pools["dep1"].endpoints}
    assert router.pool_load("dep1")[1] == 1  # its request still counts until it ends
    assert pool_reports(router, clock.monotonic())[0].replicas == {"r1": 1}
    lease.release()
    assert pool_reports(router, clock.monotonic())[0].replicas == {}
    assert router.pools["dep1"].retired == {}  # forgotten once its requests ended

    sink.set_failing("dep2", "out of memory", clock.monotonic() + 20)
    sink.set_replicas("dep1", [("r2", "http://r2")])
    sink.bind("chat", [Binding("dep1")])
    watcher.apply(board.routes())
    assert [e.replica_id for e in router.pools["dep1"].endpoints] == ["r2"]
    assert router.pools["dep2"].failing == "out of memory"
    assert router.pools["dep2"].retry_at == clock.monotonic() + 20
    assert router.bindings["chat"] == [Binding("dep1")]
    sink.set_failing("dep2", None)
    sink.bind("chat", [])
    watcher.apply(board.routes())
    assert router.pools["dep2"].failing is None
    assert "chat" not in router.bindings


async def test_load_is_reported_and_a_waiting_request_at_once(
    database: Database, clock: ManualClock
) -> None:
    sink, board = sink_and_board(database, clock)
    router = Router(monotonic=clock.monotonic, queue_timeout_seconds=30)
    watcher = RouteWatcher(board, router, monotonic=clock.monotonic)
    reporter = LoadReporter(board, router, "g1", interval_seconds=3600, monotonic=clock.monotonic)
    router.on_demand = reporter.wake
    sink.bind("chat", [Binding("dep1")])
    watcher.apply(board.routes())
    task = asyncio.create_task(reporter.run())
    try:
        while not board.reports():
            await asyncio.sleep(0.01)
        assert sink.pool_load("dep1")[:2] == (0, 0)
        waiting = asyncio.create_task(router.acquire("chat"))  # no replica: it waits
        while not any(r.pool.waiting for r in board.reports()):
            await asyncio.sleep(0.01)  # reported long before the hour's interval
        clock.advance(1)  # past the sink's read cache
        assert sink.pool_load("dep1")[0] == 1
        sink.set_replicas("dep1", [("r1", "http://r1")])
        watcher.apply(board.routes())
        lease = await waiting
        assert lease.url == "http://r1"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert board.reports() == []  # a gateway that stops forgets its reports
