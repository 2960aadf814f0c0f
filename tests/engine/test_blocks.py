"""The KV ledger alone: no model, no llama.cpp."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tokenmill.engine.blocks import BlockManager, CellCopy, CellRemoval

B = 4  # tokens per block in these tests


@dataclass
class Seq:
    tokens: list[int]
    slot: int | None = None
    block_table: list[int] = field(default_factory=list)
    num_computed: int = 0
    adapter: str | None = None
    reuses_prefix: bool = True


def run(manager: BlockManager, seq: Seq) -> list[object]:
    """Admit and compute every token, as a step would."""
    ops: list[object] = list(manager.admit(seq))
    seq.num_computed = len(seq.tokens)
    manager.computed(seq)
    return ops


def test_admit_allocates_blocks_for_every_token() -> None:
    manager = BlockManager(total_blocks=10, slots=4, block_tokens=B)
    seq = Seq(list(range(10)))
    assert manager.can_admit(seq)
    assert manager.admit(seq) == []
    assert len(seq.block_table) == 3
    assert seq.slot is not None
    assert manager.used_blocks == 3


def test_a_shared_prefix_is_copied_not_recomputed() -> None:
    manager = BlockManager(total_blocks=10, slots=4, block_tokens=B)
    first = Seq(list(range(10)))
    run(manager, first)
    second = Seq([*range(8), 99, 98])
    ops = manager.admit(second)
    assert second.num_computed == 8
    assert ops == [CellCopy(first.slot, second.slot, 0, 8)]  # type: ignore[arg-type]
    assert second.block_table[:2] == first.block_table[:2]
    assert manager.used_blocks == 4  # two shared, one each of their own


def test_a_prefix_is_shared_only_under_the_adapter_it_was_computed_with() -> None:
    manager = BlockManager(total_blocks=20, slots=8, block_tokens=B)
    base, tuned = Seq(list(range(10))), Seq(list(range(10)), adapter="a")
    run(manager, base)
    run(manager, tuned)
    assert base.block_table[:2] != tuned.block_table[:2]  # computed twice, kept apart
    for adapter, source in ((None, base), ("a", tuned)):
        seq = Seq([*range(8), 99], adapter=adapter)
        assert manager.admit(seq) == [CellCopy(source.slot, seq.slot, 0, 8)]  # type: ignore[arg-type]
        assert seq.block_table[:2] == source.block_table[:2]
    other = Seq([*range(8), 99], adapter="b")
    manager.admit(other)
    assert other.num_computed == 0
    assert manager.match(list(range(10)), "c") == []


def test_at_least_one_prompt_token_is_left_to_compute() -> None:
    manager = BlockManager(total_blocks=10, slots=4, block_tokens=B)
    run(manager, Seq(list(range(8))))
    again = Seq(list(range(8)))
    manager.admit(again)
    assert again.num_computed == 4  # the last block holds the token whose logits we need


def test_a_finished_sequence_leaves_its_full_blocks_cached() -> None:
    manager = BlockManager(total_blocks=10, slots=2, block_tokens=B)
    first = Seq(list(range(10)))
    run(manager, first)
    slot = first.slot
    ops = manager.release(first)
    # the partial third block is dropped; the two full ones stay under the old slot
    assert ops == [CellRemoval(slot, 8, 12), CellRemoval(slot, 12, -1)]  # type: ignore[arg-type]
    assert manager.cached_blocks == 2 and manager.used_blocks == 0
    later = Seq([*range(8), 7, 7])
    assert manager.admit(later)[0] == CellCopy(slot, later.slot, 0, 8)  # type: ignore[arg-type]
    assert later.slot != slot


def test_cached_blocks_are_evicted_least_recently_used_when_space_runs_out() -> None:
    manager = BlockManager(total_blocks=4, slots=4, block_tokens=B)
    old = Seq(list(range(8)))
    run(manager, old)
    old_slot = old.slot
    manager.release(old)
    assert manager.cached_blocks == 2
    big = Seq(list(range(100, 116)))  # needs all four blocks
    assert manager.can_admit(big)
    ops = manager.admit(big)
    assert CellRemoval(old_slot, 0, 4) in ops and CellRemoval(old_slot, 4, 8) in ops  # type: ignore[arg-type]
    assert manager.cached_blocks == 0
    assert manager.match(list(range(8))) == []


def test_no_room_means_no_admission() -> None:
    manager = BlockManager(total_blocks=2, slots=4, block_tokens=B)
    run(manager, Seq(list(range(8))))
    assert not manager.can_admit(Seq(list(range(50, 54))))


def test_slots_run_out_before_blocks_do() -> None:
    manager = BlockManager(total_blocks=100, slots=2, block_tokens=B)
    running = [Seq([i] * 5) for i in range(2)]
    for seq in running:
        run(manager, seq)
    assert not manager.can_admit(Seq([9] * 5))
    manager.release(running[0])  # its full block keeps the slot as a holder
    assert manager.can_admit(Seq([9] * 5))  # ...which can be evicted to free the slot
    ops = manager.admit(Seq([9] * 5))
    assert any(isinstance(op, CellRemoval) for op in ops)


def test_growing_adds_a_block_when_a_token_crosses_a_boundary() -> None:
    manager = BlockManager(total_blocks=3, slots=2, block_tokens=B)
    seq = Seq(list(range(4)))
    run(manager, seq)
    assert len(seq.block_table) == 1
    seq.tokens.append(4)
    assert manager.can_grow(seq, 5)
    manager.grow(seq, 5)
    assert len(seq.block_table) == 2
    assert not manager.can_grow(seq, 13)


def test_the_same_prefix_computed_twice_at_once_is_registered_once() -> None:
    manager = BlockManager(total_blocks=10, slots=4, block_tokens=B)
    a, b = Seq(list(range(6))), Seq(list(range(6)))
    manager.admit(a)
    manager.admit(b)  # nothing cached yet: both compute the prefix
    for seq in (a, b):
        seq.num_computed = 6
        manager.computed(seq)
    b_slot = b.slot
    ops = manager.release(b)
    assert CellRemoval(b_slot, 0, 4) in ops  # type: ignore[arg-type]  # b's copy is dropped
    assert manager.cached_blocks == 0  # a still uses the registered one
    assert manager.match([*range(4), 0, 0]) == a.block_table[:1]


@pytest.mark.parametrize("total", [0, -1])
def test_an_empty_cache_is_refused(total: int) -> None:
    with pytest.raises(ValueError):
        BlockManager(total_blocks=total, slots=1)


def test_release_is_idempotent() -> None:
    manager = BlockManager(total_blocks=4, slots=2, block_tokens=B)
    seq = Seq(list(range(3)))
    run(manager, seq)
    manager.release(seq)
    assert manager.release(seq) == []
    assert manager.used_blocks == 0


def test_idle_cached_blocks_are_capped() -> None:
    manager = BlockManager(total_blocks=20, slots=8, block_tokens=B, max_cached_blocks=2)
    first, second = Seq(list(range(8))), Seq(list(range(50, 58)))
    run(manager, first)
    run(manager, second)
    manager.release(first)
    assert manager.cached_blocks == 2
    ops = manager.release(second)  # two more would make four: the oldest two go
    assert manager.cached_blocks == 2
    assert sum(isinstance(op, CellRemoval) and op.end - op.start == B for op in ops) >= 2
    assert manager.match(list(range(8))) == []
    assert len(manager.match([*range(50, 58), 1])) == 2
