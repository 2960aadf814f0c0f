"""KV cache bookkeeping: reference-counted blocks of cells and a prefix cache over full blocks.

llama.cpp keeps one pool of KV cells (``kv_unified``); a cell belongs to a set of sequence
slots, and ``seq_cp`` adds a slot to cells without copying them. These blocks are our ledger
of that pool: every cell llama.cpp holds lies in a block counted here, so the cells in use
never exceed ``total_blocks * block_tokens``.

A full block is immutable and keyed by a hash chained over all tokens before it, seeded
with the LoRA adapter its cells were computed under (``None``: the base model), so that cells
computed under one adapter are never reused for another. When its sequence ends, the block
stays cached: its cells stay alive under the sequence's slot (the block's *holder*), and a
later prompt with the same prefix (and adapter) gets them by ``seq_cp`` instead of recomputing
them. Cached blocks nobody uses are evicted least recently used first.

Nothing here touches llama.cpp: methods return the cell operations to carry out, in order.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence as Seq
from dataclasses import dataclass
from typing import Protocol

BLOCK_TOKENS = 16


@dataclass(frozen=True, slots=True)
class CellCopy:
    """Give slot ``dst`` the cells slot ``src`` has at positions [start, end)."""

    src: int
    dst: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class CellRemoval:
    """Take slot ``slot`` off its cells at positions [start, end); ``end`` -1 means all after."""

    slot: int
    start: int
    end: int


CellOp = CellCopy | CellRemoval


@dataclass(slots=True)
class Block:
    id: int
    index: int = 0  # position in its sequence: cells [index * B, (index + 1) * B)
    ref_count: int = 0
    hash: int | None = None
    tokens: tuple[int, ...] = ()
    holder: int | None = None
    adapter: str | None = None


class KvSequence(Protocol):
    """What the block manager needs to know of a sequence."""

    tokens: list[int]
    slot: int | None
    block_table: list[int]
    num_computed: int

    @property
    def adapter(self) -> str | None: ...

    @property
    def reuses_prefix(self) -> bool: ...


def chain_root(adapter: str | None) -> int | None:
    """Where a chain starts: nothing for the base model, the adapter's id for an adapter."""
    return None if adapter is None else hash(("adapter", adapter))


def chain_hash(previous: int | None, tokens: Seq[int]) -> int:
    return hash((previous, tuple(tokens)))


class BlockManager:
    def __init__(
        self,
        total_blocks: int,
        slots: int,
        block_tokens: int = BLOCK_TOKENS,
        max_cached_blocks: int | None = None,
    ) -> None:
        if total_blocks < 1 or slots < 1:
            raise ValueError("a KV cache needs at least one block and one slot")
        self.block_tokens = block_tokens
        self.total_blocks = total_blocks
        # Cached cells are not free for llama.cpp: attention spans every cell up to the
        # highest one in use, so a cache full of idle prefixes slows every step.
        self.max_cached_blocks = total_blocks if max_cached_blocks is None else max_cached_blocks
        self._blocks = [Block(i) for i in range(total_blocks)]
        self._free: deque[int] = deque(range(total_blocks))
        self._cached: OrderedDict[int, None] = OrderedDict()  # ref 0, still hashed, LRU first
        self._by_hash: dict[int, int] = {}
        self._free_slots: list[int] = list(range(slots - 1, -1, -1))
        self._held: dict[int, set[int]] = {}  # holder slot -> blocks it keeps alive
        self.prefix_hits_tokens = 0

    # what the scheduler asks

    @property
    def used_blocks(self) -> int:
        return self.total_blocks - len(self._free) - len(self._cached)

    @property
    def cached_blocks(self) -> int:
        return len(self._cached)

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_tokens)

    def match(self, tokens: Seq[int], adapter: str | None = None) -> list[int]:
        """The cached full blocks that start ``tokens`` under ``adapter``, leaving at least one
        token to compute (a prompt needs the logits of its last token)."""
        found: list[int] = []
        previous = chain_root(adapter)
        size = self.block_tokens
        for start in range(0, len(tokens) - 1 - size + 1, size):
            chunk = tuple(tokens[start : start + size])
            previous = chain_hash(previous, chunk)
            block_id = self._by_hash.get(previous)
            if block_id is None:
                break
            block = self._blocks[block_id]
            if block.tokens != chunk or block.adapter != adapter:
                break
            found.append(block_id)
        return found

    def _reusable(self, seq: KvSequence) -> list[int]:
        return self.match(seq.tokens, seq.adapter) if seq.reuses_prefix else []

    def can_admit(self, seq: KvSequence) -> bool:
        if not self._free_slots and self._evictable_holder() is None:
            return False
        match = self._reusable(seq)
        revived = sum(1 for b in match if self._blocks[b].ref_count == 0)
        needed = self.blocks_for(len(seq.tokens)) - len(match)
        return needed <= len(self._free) + len(self._cached) - revived

    def admit(self, seq: KvSequence) -> list[CellOp]:
        """Give ``seq`` a slot and blocks for all its tokens, reusing a cached prefix."""
        ops: list[CellOp] = []
        if not self._free_slots:
            holder = self._evictable_holder()
            if holder is None:
                raise RuntimeError("admit() without can_admit()")
            ops.extend(self._evict(block_id) for block_id in list(self._held[holder]))
        match = self._reusable(seq)
        slot = self._free_slots.pop()
        seq.slot = slot
        for block_id in match:
            block = self._blocks[block_id]
            if block.ref_count == 0:
                del self._cached[block_id]
            block.ref_count += 1
        seq.block_table = list(match)
        ops.extend(self._copies(match, slot))
        seq.num_computed = len(match) * self.block_tokens
        self.prefix_hits_tokens += seq.num_computed
        ops.extend(self._grow(seq, len(seq.tokens)))
        return ops

    def can_grow(self, seq: KvSequence, tokens: int) -> bool:
        """Whether ``seq`` can have cells for its first ``tokens`` positions."""
        needed = self.blocks_for(tokens) - len(seq.block_table)
        return needed <= len(self._free) + len(self._cached)

    def grow(self, seq: KvSequence, tokens: int) -> list[CellOp]:
        return self._grow(seq, tokens)

    def computed(self, seq: KvSequence) -> None:
        """Register the blocks ``seq`` has filled, so later prompts can share them."""
        assert seq.slot is not None
        size = self.block_tokens
        previous = chain_root(seq.adapter)
        for index in range(seq.num_computed // size):
            block = self._blocks[seq.block_table[index]]
            if block.hash is not None:
                previous = block.hash
                continue
            chunk = tuple(seq.tokens[index * size : (index + 1) * size])
            previous = chain_hash(previous, chunk)
            if previous in self._by_hash:
                continue  # the same prefix, computed twice at once: one copy is enough
            block.hash, block.tokens, block.index, block.holder = previous, chunk, index, seq.slot
            block.adapter = seq.adapter
            self._by_hash[previous] = block.id
            self._held.setdefault(seq.slot, set()).add(block.id)

    def release(self, seq: KvSequence) -> list[CellOp]:
        """``seq`` is done (finished, cancelled or preempted): drop its references.

        Its slot keeps the cells of the blocks it holds (now cached); every other position of
        the slot is cleared. A slot that holds nothing is free again.
        """
        slot = seq.slot
        if slot is None:
            return []
        held = self._held.get(slot, set())
        ops: list[CellOp] = []
        for index, block_id in enumerate(seq.block_table):
            block = self._blocks[block_id]
            block.ref_count -= 1
            if block_id not in held:
                ops.append(self._range_removal(slot, index))
            if block.ref_count == 0:
                if block.hash is not None:
                    self._cached[block_id] = None
                else:
                    self._reset(block)
        ops.append(CellRemoval(slot, len(seq.block_table) * self.block_tokens, -1))
        seq.block_table = []
        seq.slot = None
        seq.num_computed = 0
        if not held:
            self._held.pop(slot, None)
            self._free_slots.append(slot)
        while len(self._cached) > self.max_cached_blocks:
            ops.append(self._evict(next(iter(self._cached))))
        return ops

    # internals

    def _grow(self, seq: KvSequence, tokens: int) -> list[CellOp]:
        ops: list[CellOp] = []
        while len(seq.block_table) < self.blocks_for(tokens):
            if not self._free:
                ops.append(self._evict(next(iter(self._cached))))
            block_id = self._free.popleft()
            block = self._blocks[block_id]
            block.ref_count = 1
            block.index = len(seq.block_table)
            seq.block_table.append(block_id)
        return ops

    def _copies(self, blocks: list[int], slot: int) -> list[CellOp]:
        """One copy per run of consecutive blocks that share a holder."""
        ops: list[CellOp] = []
        size = self.block_tokens
        for index, block_id in enumerate(blocks):
            holder = self._blocks[block_id].holder
            assert holder is not None
            last = ops[-1] if ops else None
            if isinstance(last, CellCopy) and last.src == holder and last.end == index * size:
                ops[-1] = CellCopy(holder, slot, last.start, (index + 1) * size)
            else:
                ops.append(CellCopy(holder, slot, index * size, (index + 1) * size))
        return ops

    def _evict(self, block_id: int) -> CellOp:
        """Forget a cached block: its holder lets go of its cells."""
        block = self._blocks[block_id]
        assert block.ref_count == 0 and block.holder is not None
        del self._cached[block_id]
        holder = block.holder
        op = self._range_removal(holder, block.index)
        self._reset(block)
        held = self._held[holder]
        held.discard(block_id)
        if not held:
            del self._held[holder]
            self._free_slots.append(holder)
        return op

    def _reset(self, block: Block) -> None:
        if block.hash is not None and self._by_hash.get(block.hash) == block.id:
            del self._by_hash[block.hash]
        if block.holder is not None:
            self._held.get(block.holder, set()).discard(block.id)
        block.hash, block.tokens, block.holder, block.ref_count = None, (), None, 0
        block.adapter = None
        self._free.append(block.id)

    def _range_removal(self, slot: int, index: int) -> CellRemoval:
        return CellRemoval(slot, index * self.block_tokens, (index + 1) * self.block_tokens)

    def _evictable_holder(self) -> int | None:
        """A holder slot all of whose blocks are unused, oldest first."""
        for block_id in self._cached:
            holder = self._blocks[block_id].holder
            if holder is not None and all(
                self._blocks[b].ref_count == 0 for b in self._held.get(holder, ())
            ):
                return holder
        return None
