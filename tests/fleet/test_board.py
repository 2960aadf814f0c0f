"""The fleet's board: routes only the lease's epoch may write, gateways' load reports, and the
controller's side of it (``BoardSink``)."""

from __future__ import annotations

from tests.conftest import QueryLog
from tokenmill.clock import ManualClock
from tokenmill.control.leader import LeaderLease
from tokenmill.fleet.board import BIND, FAILING, REPLICAS, BoardSink, FleetBoard, PoolReport
from tokenmill.fleet.deployments import Binding
from tokenmill.gateway.routing import Router
from tokenmill.store.db import Database


def led(database: Database, clock: ManualClock, holder: str = "a") -> int:
    epoch = LeaderLease(database, clock, holder, ttl_seconds=5).claim()
    assert epoch is not None
    return epoch


def test_only_the_leases_epoch_publishes(database: Database, clock: ManualClock) -> None:
    board = FleetBoard(database, clock)
    first = led(database, clock, "a")
    assert board.publish(first, REPLICAS + "dep1", [["r1", "http://r1"]])
    clock.advance(6)
    second = led(database, clock, "b")
    assert not board.publish(first, REPLICAS + "dep1", [["old", "http://old"]])  # fenced
    assert board.routes() == {REPLICAS + "dep1": [["r1", "http://r1"]]}
    board.take_over(second)
    assert board.routes() == {}
    assert board.publish(second, REPLICAS + "dep1", [["r2", "http://r2"]])
    assert board.publish(second, BIND + "m", [["dep1", None]])
    assert board.publish(second, BIND + "m", None)  # None removes
    assert board.routes() == {REPLICAS + "dep1": [["r2", "http://r2"]]}


def test_reports_replace_a_gateways_earlier_ones_and_age_out(
    database: Database, clock: ManualClock
) -> None:
    board = FleetBoard(database, clock)
    board.report("g1", [PoolReport("dep1", 2, 3, 10, 0.5, {"r1": 3})])
    board.report("g1", [PoolReport("dep1", 1, 1, 11, 0.1, {"r1": 1})])
    board.report("g2", [PoolReport("dep1", 0, 4, 7, 2.0, {"r1": 4})])
    found = {r.gateway_id: r.pool for r in board.reports()}
    assert found == {
        "g1": PoolReport("dep1", 1, 1, 11, 0.1, {"r1": 1}),
        "g2": PoolReport("dep1", 0, 4, 7, 2.0, {"r1": 4}),
    }
    clock.advance(3)
    board.report("g2", [])
    assert [r.gateway_id for r in board.reports()] == ["g1"]
    clock.advance(3)  # g1 stopped reporting: it is gone
    assert board.reports() == []
    board.report("g1", [PoolReport("dep1", 0, 0, 11, None, {})])
    board.forget("g1")
    assert board.reports() == []


class Monotonic:
    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock

    def __call__(self) -> float:
        return self.clock.monotonic()


def test_sink_publishes_changes_only_and_keeps_its_own_router(
    database: Database, clock: ManualClock, query_log: QueryLog
) -> None:
    board = FleetBoard(database, clock)
    epoch = led(database, clock)
    local = Router()
    sink = BoardSink(board, local, epoch, monotonic=Monotonic(clock))
    sink.bind("m", [Binding("dep1")])
    sink.set_replicas("dep1", [("r1", "http://r1")])
    sink.set_failing("dep1", None)
    assert board.routes() == {
        BIND + "m": [["dep1", None]],
        REPLICAS + "dep1": [["r1", "http://r1"]],
    }
    assert [e.url for e in local.pools["dep1"].endpoints] == ["http://r1"]
    writes = query_log.count("fleet_routes")
    for _ in range(5):
        sink.set_replicas("dep1", [("r1", "http://r1")])
        sink.set_failing("dep1", None)
    assert query_log.count("fleet_routes") == writes
    clock.advance(1)
    sink.set_failing("dep1", "out of memory", clock.monotonic() + 30)
    assert board.routes()[FAILING + "dep1"] == ["out of memory", 30.0]
    assert local.pools["dep1"].failing == "out of memory"


def test_sink_sums_gateways_loads_with_its_own(database: Database, clock: ManualClock) -> None:
    board = FleetBoard(database, clock)
    epoch = led(database, clock)
    local = Router(monotonic=Monotonic(clock))
    sink = BoardSink(board, local, epoch, monotonic=Monotonic(clock))
    clock.advance(100)
    board.report("g1", [PoolReport("dep1", 2, 3, 10, 4.0, {"r1": 3})])
    board.report(
        "g2",
        [PoolReport("dep1", 1, 1, 5, 1.0, {"r1": 1}), PoolReport("dep2", 0, 0, 1, 50.0, {})],
    )
    waiting, in_flight, last, arrived = sink.pool_load("dep1")
    assert (waiting, in_flight, arrived) == (3, 4, 15)
    assert last == clock.monotonic() - 1.0  # the most recent arrival at any gateway
    assert sink.in_flight_of("dep1", "r1") == 4
    assert sink.in_flight_of("dep1", "r2") == 0

    clock.advance(1)
    board.report("g1", [PoolReport("dep1", 0, 0, 2, 0.0, {})])  # g1 restarted: counts anew
    assert sink.pool_load("dep1")[3] == 17  # arrivals never go back


def test_sink_without_local_load_counts_only_reports(
    database: Database, clock: ManualClock
) -> None:
    board = FleetBoard(database, clock)
    local = Router(monotonic=Monotonic(clock))
    local.pool("dep1").waiting = 7
    epoch = led(database, clock)
    sink = BoardSink(board, local, epoch, monotonic=Monotonic(clock), local_load=False)
    assert sink.pool_load("dep1") == (0, 0, None, 0)
    with_local = BoardSink(board, local, 1, monotonic=Monotonic(clock))
    assert with_local.pool_load("dep1")[0] == 7
