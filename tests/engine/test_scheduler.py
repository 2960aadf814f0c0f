"""Scheduling decisions alone: admission, chunking, preemption, prefix reuse, removal."""

from __future__ import annotations

import dataclasses

from tokenmill.engine.blocks import BlockManager
from tokenmill.engine.request import EngineRequest
from tokenmill.engine.scheduler import Scheduler, StepPlan, adapter_groups
from tokenmill.engine.sequence import Sequence, SequenceStatus
from tokenmill.protocol.requests import SamplingParams
from tokenmill.protocol.tenancy import Priority

B = 4


def seq(
    prompt: list[int], max_tokens: int = 8, rid: str = "r", adapter: str | None = None
) -> Sequence:
    request = EngineRequest(rid, tuple(prompt), max_tokens, SamplingParams(), adapter=adapter)
    return Sequence(request, arrival_seconds=0.0)


def scheduler(blocks: int = 64, slots: int = 8, **kwargs: int) -> Scheduler:
    settings = {"max_running": 4, "max_step_tokens": 32, **kwargs}
    return Scheduler(BlockManager(blocks, slots, block_tokens=B), **settings)  # type: ignore[arg-type]


def execute(s: Scheduler, plan: StepPlan, next_token: int = 7) -> None:
    """What the engine does after a decode: advance, register blocks, append samples."""
    for chunk in plan.chunks:
        chunk.seq.num_computed = chunk.start + chunk.count
        s.blocks.computed(chunk.seq)
        if chunk.sample:
            chunk.seq.tokens.append(next_token)


def test_new_requests_join_the_running_batch_at_the_next_step() -> None:
    s = scheduler()
    a = seq([1, 2, 3], rid="a")
    s.add(a)
    plan = s.schedule()
    assert [(c.seq, c.count, c.sample) for c in plan.chunks] == [(a, 3, True)]
    execute(s, plan)
    b = seq([4, 5], rid="b")
    s.add(b)
    plan = s.schedule()
    assert [(c.seq.request_id, c.count) for c in plan.chunks] == [("a", 1), ("b", 2)]


def test_a_long_prompt_is_prefilled_in_chunks_within_the_budget() -> None:
    s = scheduler(max_step_tokens=10)
    long = seq(list(range(25)))
    s.add(long)
    counts = []
    while long.in_prefill or not counts:
        plan = s.schedule()
        counts.append(plan.chunks[0].count)
        assert plan.tokens <= 10
        execute(s, plan)
    assert counts == [10, 10, 5]
    assert long.completion_tokens == 1


def test_decoding_streams_limit_the_prefill_that_shares_their_step() -> None:
    s = scheduler(max_step_tokens=64, prefill_tokens_while_decoding=3)
    a = seq([1, 2])
    s.add(a)
    execute(s, s.schedule())
    s.add(seq(list(range(100, 130)), rid="long"))
    plan = s.schedule()
    assert [(c.seq.request_id, c.count) for c in plan.chunks] == [("r", 1), ("long", 3)]


def test_priority_work_prefills_past_the_limit_that_decoding_streams_set() -> None:
    s = scheduler(max_step_tokens=64, prefill_tokens_while_decoding=3)
    s.add(seq([1, 2]))
    execute(s, s.schedule())
    s.add(seq(list(range(100, 130)), rid="default"))
    urgent = seq(list(range(200, 220)), rid="priority")
    urgent.request = dataclasses.replace(urgent.request, priority=Priority.PRIORITY)
    s.add(urgent)
    plan = s.schedule()
    assert [(c.seq.request_id, c.count) for c in plan.chunks] == [("r", 1), ("priority", 20)]
    execute(s, plan)
    plan = s.schedule()  # the limit again, for the default prompt
    assert [(c.seq.request_id, c.count) for c in plan.chunks][-1] == ("default", 3)


def test_default_work_prefills_past_the_limit_while_flex_work_decodes() -> None:
    s = scheduler(max_step_tokens=64, prefill_tokens_while_decoding=3)
    batch = seq([1, 2], rid="flex")
    batch.request = dataclasses.replace(batch.request, priority=Priority.FLEX)
    s.add(batch)
    execute(s, s.schedule())
    s.add(seq(list(range(100, 130)), rid="interactive"))
    plan = s.schedule()
    assert [(c.seq.request_id, c.count) for c in plan.chunks] == [("flex", 1), ("interactive", 30)]


def test_under_first_come_first_served_priority_work_has_the_limit_too() -> None:
    s = scheduler(max_step_tokens=64, prefill_tokens_while_decoding=3, fair=False)
    s.add(seq([1, 2]))
    execute(s, s.schedule())
    urgent = seq(list(range(200, 220)), rid="priority")
    urgent.request = dataclasses.replace(urgent.request, priority=Priority.PRIORITY)
    s.add(urgent)
    plan = s.schedule()
    assert [(c.seq.request_id, c.count) for c in plan.chunks] == [("r", 1), ("priority", 3)]


def test_at_most_max_running_sequences_run() -> None:
    s = scheduler(max_running=2)
    for i in range(3):
        s.add(seq([i, i], rid=str(i)))
    plan = s.schedule()
    assert {c.seq.request_id for c in plan.chunks} == {"0", "1"}
    assert len(s.waiting) == 1


def test_a_cached_prefix_is_not_recomputed_and_is_reported() -> None:
    s = scheduler()
    first = seq(list(range(10)), rid="first")
    s.add(first)
    execute(s, s.schedule())
    s.blocks.release(first)
    s.running.remove(first)
    second = seq([*range(8), 50, 51], rid="second")
    s.add(second)
    plan = s.schedule()
    assert plan.chunks[0].start == 8 and plan.chunks[0].count == 2
    assert second.cached_tokens == 8


def test_when_cells_run_out_the_newest_sequence_is_preempted_and_resumed() -> None:
    s = scheduler(blocks=3, slots=4, max_step_tokens=64)
    old, new = seq([1, 2, 3, 4], rid="old"), seq([5, 6, 7, 8], rid="new")
    s.add(old)
    s.add(new)
    execute(s, s.schedule())  # both prefilled: 2 blocks, one sampled token each
    plan = s.schedule()  # both need a second block; only one is left
    execute(s, plan)
    assert [c.seq.request_id for c in plan.chunks] == ["old"]
    assert plan.preempted == [new]
    assert new.status is SequenceStatus.WAITING and new.num_computed == 0
    assert list(s.waiting) == [new]
    s.remove(old)
    plan = s.schedule()  # back: its full prompt block was kept cached, the rest recomputed
    assert plan.admitted == [new]
    assert (plan.chunks[0].start, plan.chunks[0].count) == (4, 1)
    assert new.tokens == [5, 6, 7, 8, 7]


def test_removal_frees_cells_for_waiting_work() -> None:
    s = scheduler(blocks=2, slots=4)
    a, b = seq(list(range(8)), rid="a"), seq(list(range(10, 18)), rid="b")
    s.add(a)
    s.add(b)
    plan = s.schedule()
    assert plan.admitted == [a]
    s.remove(a)
    assert s.schedule().admitted == [b]


def test_removing_a_waiting_sequence_forgets_it() -> None:
    s = scheduler()
    a = seq([1, 2])
    s.add(a)
    assert s.remove(a) == []
    assert not s.has_work()


def test_a_step_is_decoded_once_per_adapter_the_current_one_first() -> None:
    s = scheduler()
    for rid, adapter in (("a", "x"), ("b", None), ("c", "y"), ("d", "x"), ("e", None)):
        s.add(seq([1, 2, 3], rid=rid, adapter=adapter))
    chunks = s.schedule().chunks
    assert len(chunks) == 4  # max_running
    groups = adapter_groups(chunks, current="y")
    assert [(adapter, [c.seq.request_id for c in group]) for adapter, group in groups] == [
        ("y", ["c"]),
        ("x", ["a", "d"]),
        (None, ["b"]),
    ]
    assert [adapter for adapter, _ in adapter_groups(chunks, current=None)] == [None, "x", "y"]


def test_a_cached_prefix_serves_only_its_own_adapter() -> None:
    s = scheduler()
    first = seq(list(range(9)), rid="first")
    s.add(first)
    execute(s, s.schedule())
    s.remove(first)
    tuned = seq(list(range(9)), rid="tuned", adapter="x")
    s.add(tuned)
    s.schedule()
    assert tuned.cached_tokens == 0
    base = seq(list(range(9)), rid="base")
    s.add(base)
    s.schedule()
    assert base.cached_tokens == 8
