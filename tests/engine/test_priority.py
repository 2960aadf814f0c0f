"""Queue classes: more urgent work first, aging so nothing starves, less urgent work gives way."""

from __future__ import annotations

import asyncio

import pytest

from tokenmill.engine.blocks import BlockManager
from tokenmill.engine.engine import Engine
from tokenmill.engine.fairness import FairQueue
from tokenmill.engine.request import EngineRequest
from tokenmill.engine.runner import LlamaRunner
from tokenmill.engine.scheduler import Scheduler
from tokenmill.engine.seams import EngineSettings
from tokenmill.engine.sequence import Sequence
from tokenmill.protocol.requests import SamplingParams
from tokenmill.protocol.tenancy import Priority

from .ordering import run, short_request

FLEX, DEFAULT, PRIORITY = Priority.FLEX, Priority.DEFAULT, Priority.PRIORITY


def seq(rid: str, priority: Priority, tenant: str = "t", arrival: float = 0.0) -> Sequence:
    request = EngineRequest(
        rid, (1, 2, 3, 4), 8, SamplingParams(), tenant=tenant, priority=priority
    )
    return Sequence(request, arrival_seconds=arrival)


def admit_all(queue: FairQueue, now: float | None = None) -> list[str]:
    order = []
    while (head := queue.peek(now=now)) is not None:
        queue.take(head)
        order.append(head.request_id)
    return order


def test_more_urgent_classes_go_first_whatever_the_counters() -> None:
    queue = FairQueue()
    queue.arrive(seq("f", FLEX, tenant="poor"))
    queue.arrive(seq("d", DEFAULT, tenant="rich"))
    queue.arrive(seq("p", PRIORITY, tenant="rich"))
    queue.charge_output(seq("x", DEFAULT, tenant="rich"), 1000)
    assert admit_all(queue) == ["p", "d", "f"]


def test_a_tenants_urgent_request_is_not_stuck_behind_its_own_flex_work() -> None:
    queue = FairQueue()
    for i in range(3):
        queue.arrive(seq(f"f{i}", FLEX))
    queue.arrive(seq("d", DEFAULT))
    assert admit_all(queue) == ["d", "f0", "f1", "f2"]


def test_waiting_moves_a_sequence_up_a_class_per_aging_period() -> None:
    queue = FairQueue(aging_seconds=10, flex_aging_seconds=10)
    queue.arrive(seq("old-flex", FLEX, arrival=0.0))
    queue.arrive(seq("new-default", DEFAULT, arrival=14.0))
    assert queue.peek(now=9.0).request_id == "new-default"  # type: ignore[union-attr]
    # At 15 s the flex sequence has waited one period: it counts as default, and is older.
    assert queue.peek(now=15.0).request_id == "old-flex"  # type: ignore[union-attr]
    queue.arrive(seq("new-priority", PRIORITY, arrival=14.0))
    assert queue.peek(now=15.0).request_id == "new-priority"  # type: ignore[union-attr]
    assert queue.peek(now=20.0).request_id == "old-flex"  # two periods: priority, and older


def test_batch_work_waits_minutes_before_it_competes_with_interactive_work() -> None:
    queue = FairQueue()
    queue.arrive(seq("line", FLEX, arrival=0.0))
    queue.arrive(seq("chat", DEFAULT, arrival=119.0))
    assert admit_all(queue, now=120.0) == ["chat", "line"]
    queue.arrive(seq("old-line", FLEX, arrival=0.0))
    queue.arrive(seq("new-chat", DEFAULT, arrival=300.5))
    assert admit_all(queue, now=301.0) == ["old-line", "new-chat"]  # five minutes: default


def test_aging_orders_classes_not_tenants_within_a_class() -> None:
    queue = FairQueue(aging_seconds=10)
    for i in range(3):
        queue.arrive(seq(f"flood-{i}", DEFAULT, tenant="a", arrival=0.0))
    queue.arrive(seq("fresh", DEFAULT, tenant="b", arrival=29.0))
    queue.charge_output(seq("x", DEFAULT, tenant="a"), 50)  # a is served more since b came
    # a's requests have waited three periods, b's none; within one class the counters decide.
    assert queue.peek(now=30.0).request_id == "fresh"  # type: ignore[union-attr]


def test_first_come_first_served_ignores_classes() -> None:
    queue = FairQueue(fair=False)
    queue.arrive(seq("f", FLEX))
    queue.arrive(seq("p", PRIORITY))
    assert admit_all(queue) == ["f", "p"]


def test_memory_pressure_preempts_the_least_urgent_class_first() -> None:
    queue = FairQueue()
    running = [seq("p", PRIORITY, "a"), seq("f", FLEX, "b"), seq("d", DEFAULT, "c")]
    for s in running:
        queue.arrive(s)
        queue.take(s)
    queue.charge_output(running[0], 500)  # "a" is furthest ahead, but its work is urgent
    assert queue.victim(running).request_id == "f"


def test_urgent_work_is_admitted_past_full_places_held_by_less_urgent_work() -> None:
    s = Scheduler(BlockManager(256, 16, block_tokens=4), max_running=2, max_step_tokens=256)
    for i in range(4):
        s.add(seq(f"f{i}", FLEX))
    assert [x.request_id for x in s.schedule(0.0).admitted] == ["f0", "f1"]
    s.add(seq("d0", DEFAULT))
    s.add(seq("d1", DEFAULT))
    # Flex work holds both places: default work gets in at once, up to twice the places;
    # the flex sequences still waiting do not.
    assert [x.request_id for x in s.schedule(1.0).admitted] == ["d0", "d1"]
    for done in [x for x in s.running if x.request.priority is FLEX]:
        s.remove(done)
    assert s.schedule(2.0).admitted == []  # both places are the default work's
    assert len(s.running) == 2


async def _finish_order(runner: LlamaRunner) -> list[str]:
    engine = Engine(runner, EngineSettings(max_running=1, max_step_tokens=256))
    order: list[str] = []

    async def one(rid: str, priority: Priority) -> None:
        await run(engine, short_request(engine, rid, priority=priority), order)

    engine.start()
    try:
        flex = [asyncio.create_task(one(f"f{i}", FLEX)) for i in range(4)]
        await asyncio.sleep(0)  # the flex work arrives first
        await asyncio.gather(one("d", DEFAULT), *flex)
    finally:
        await engine.stop()
    return order


@pytest.mark.model
def test_the_engine_answers_interactive_work_before_queued_batch_work(
    runner: LlamaRunner,
) -> None:
    order = asyncio.run(_finish_order(runner))
    assert order.index("d") <= 1  # at most the flex sequence already running ends first
    assert sorted(order) == ["d", "f0", "f1", "f2", "f3"]
