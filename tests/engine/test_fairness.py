"""Fair share between tenants: the virtual token counters alone, then the real engine's order."""

from __future__ import annotations

import asyncio

import pytest

from tokenmill.engine.blocks import BlockManager
from tokenmill.engine.engine import Engine
from tokenmill.engine.fairness import OUTPUT_TOKEN_COST, FairQueue
from tokenmill.engine.request import EngineRequest
from tokenmill.engine.runner import LlamaRunner
from tokenmill.engine.scheduler import Scheduler
from tokenmill.engine.seams import EngineSettings
from tokenmill.engine.sequence import Sequence, SequenceStatus
from tokenmill.protocol.requests import SamplingParams

from .ordering import run, short_request


def seq(tenant: str, rid: str, prompt: int = 10, weight: float = 1.0) -> Sequence:
    request = EngineRequest(
        rid, tuple(range(prompt)), 8, SamplingParams(), tenant=tenant, weight=weight
    )
    return Sequence(request, arrival_seconds=0.0)


def serve_next(queue: FairQueue, output_tokens: int) -> Sequence:
    """Admit the next sequence, charge its prompt and output, and end it."""
    chosen = queue.peek()
    assert chosen is not None
    queue.take(chosen)
    queue.charge_prompt(chosen, chosen.prompt_len)
    queue.charge_output(chosen, output_tokens)
    queue.discard(chosen, running=True)
    return chosen


def test_a_tenant_that_arrives_behind_a_flood_is_served_between_its_requests() -> None:
    queue = FairQueue()
    for i in range(6):
        queue.arrive(seq("a", f"a{i}"))
    for i in range(2):
        queue.arrive(seq("b", f"b{i}"))
    order = [serve_next(queue, 5).request_id for _ in range(8)]
    assert order[:4] in (["a0", "b0", "a1", "b1"], ["b0", "a0", "b1", "a1"])
    assert order[4:] == ["a2", "a3", "a4", "a5"]


def test_first_come_first_served_ignores_tenants() -> None:
    queue = FairQueue(fair=False)
    for rid, tenant in [("a0", "a"), ("a1", "a"), ("b0", "b")]:
        queue.arrive(seq(tenant, rid))
    assert [serve_next(queue, 5).request_id for _ in range(3)] == ["a0", "a1", "b0"]


def test_backlogged_tenants_get_service_in_proportion_to_their_weights() -> None:
    weights = {"w1": 1.0, "w2": 2.0, "w3": 3.0, "w4": 4.0}
    queue = FairQueue()
    served = dict.fromkeys(weights, 0.0)
    for tenant, weight in weights.items():
        for i in range(400):
            queue.arrive(seq(tenant, f"{tenant}-{i}", prompt=10 + i % 7, weight=weight))
    for _ in range(500):  # all four stay backlogged throughout
        done = serve_next(queue, output_tokens=6)
        served[done.request.tenant] += done.prompt_len + OUTPUT_TOKEN_COST * 6
    total = sum(served.values())
    for tenant, weight in weights.items():
        share = weight / sum(weights.values())
        assert served[tenant] / total == pytest.approx(share, rel=0.10)


def test_idle_time_is_not_banked_for_a_burst_later() -> None:
    queue = FairQueue()
    queue.arrive(seq("b", "b-early"))
    serve_next(queue, 1)  # b was here once, long ago, and left with a tiny counter
    for i in range(50):
        queue.arrive(seq("a", f"a{i}"))
    for _ in range(20):
        serve_next(queue, 20)  # a alone: its counter grows far past b's
    for i in range(10):
        queue.arrive(seq("b", f"b{i}"))
    order = [serve_next(queue, 20).request.tenant for _ in range(10)]
    # Lifted to a's counter on return, b alternates with a instead of taking ten in a row.
    assert order.count("b") <= 6


def test_a_counter_is_lifted_only_on_arrival_from_idle() -> None:
    queue = FairQueue()
    queue.arrive(seq("a", "a0"))
    queue.charge_output(queue.peek() or seq("a", "x"), 100)
    queue.arrive(seq("b", "b0"))
    assert queue.counter("b") == queue.counter("a") == 100 * OUTPUT_TOKEN_COST
    queue.arrive(seq("b", "b1"))  # b is active: no new lift
    queue.charge_output(seq("a", "a-running"), 50)
    assert queue.counter("b") == 100 * OUTPUT_TOKEN_COST


def test_memory_pressure_preempts_the_newest_sequence_of_the_tenant_furthest_ahead() -> None:
    queue = FairQueue()
    running = [seq("a", "a0"), seq("b", "b0"), seq("b", "b1"), seq("a", "a1")]
    for s in running:
        queue.arrive(s)
        queue.take(s)
    queue.charge_output(running[1], 30)  # b has had more
    assert queue.victim(running).request_id == "b1"
    assert FairQueue(fair=False).victim(running).request_id == "a1"


def test_a_weight_divides_what_a_tenant_is_charged() -> None:
    queue = FairQueue()
    heavy = seq("h", "h0", weight=4.0)
    queue.arrive(heavy)
    queue.charge_prompt(heavy, 40)
    assert queue.counter("h") == 10.0


def test_ending_a_sequence_that_never_arrived_changes_nothing() -> None:
    queue = FairQueue()
    queue.arrive(seq("a", "a0"))
    queue.discard(seq("a", "ghost"), running=False)
    queue.arrive(seq("b", "b0"))
    queue.charge_output(seq("a", "a0"), 10)
    queue.arrive(seq("c", "c0"))  # a and b are both still active: c lifts to the smaller
    assert queue.counter("c") == queue.counter("b") == 0.0
    assert len(queue) == 3


def test_a_tenant_below_its_share_is_admitted_when_a_flood_holds_every_place() -> None:
    s = Scheduler(BlockManager(256, 16, block_tokens=4), max_running=4, max_step_tokens=256)
    for i in range(8):
        s.add(seq("a", f"a{i}", prompt=4))
    assert [x.request_id for x in s.schedule().admitted] == ["a0", "a1", "a2", "a3"]
    for i in range(3):
        s.add(seq("b", f"b{i}", prompt=4))
    assert [x.request_id for x in s.schedule().admitted] == ["b0", "b1"]  # half of 4 places
    for done in s.running[:3]:  # three of a's end; b has been served more since it came
        s.remove(done)
    assert [x.request_id for x in s.schedule().admitted] == ["a4"]
    assert len(s.running) == 4  # both at their share of the places: b2 waits


def test_first_come_first_served_never_runs_more_than_its_places() -> None:
    s = Scheduler(
        BlockManager(256, 16, block_tokens=4), max_running=2, max_step_tokens=256, fair=False
    )
    for rid, tenant in [("a0", "a"), ("a1", "a"), ("b0", "b")]:
        s.add(seq(tenant, rid, prompt=4))
    assert [x.request_id for x in s.schedule().admitted] == ["a0", "a1"]


def test_a_preempted_sequence_waits_at_the_head_of_its_tenants_queue() -> None:
    s = Scheduler(BlockManager(64, 8, block_tokens=4), max_running=1, max_step_tokens=64)
    for rid in ("a0", "a1"):
        s.add(seq("a", rid, prompt=4))
    a0 = s.schedule().admitted[0]
    s.sampled(a0)
    s.evict(a0)
    assert a0.status is SequenceStatus.WAITING
    assert [x.request_id for x in s.waiting] == ["a0", "a1"]
    assert s.waiting.counter("a") == 4 + OUTPUT_TOKEN_COST  # its prompt once, its token


async def _finish_order(runner: LlamaRunner, scheduling: str) -> list[str]:
    engine = Engine(
        runner,
        EngineSettings(max_running=1, max_step_tokens=256, scheduling=scheduling),  # type: ignore[arg-type]
    )
    order: list[str] = []

    async def one(rid: str, tenant: str) -> None:
        await run(engine, short_request(engine, rid, tenant=tenant), order)

    engine.start()
    try:
        ids = [("a0", "a"), ("a1", "a"), ("a2", "a"), ("a3", "a"), ("b0", "b"), ("b1", "b")]
        await asyncio.gather(*(one(rid, tenant) for rid, tenant in ids))
    finally:
        await engine.stop()
    return order


@pytest.mark.model
def test_the_engine_serves_a_tenant_behind_a_flood_before_the_flood_ends(
    runner: LlamaRunner,
) -> None:
    fair = asyncio.run(_finish_order(runner, "fair"))
    fcfs = asyncio.run(_finish_order(runner, "fcfs"))
    assert fcfs == ["a0", "a1", "a2", "a3", "b0", "b1"]
    assert fair.index("b1") < fair.index("a3")
    assert fair.index("b0") <= 2
