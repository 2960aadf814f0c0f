"""Decides what each step computes: continuous batching with chunked prefill and preemption.

Every step, in order:
1. each decoding sequence gets its next token (plus speculative drafts), oldest first; when
   the KV cache has no room, the newest running sequence is preempted (its cells dropped; it
   waits at the head of the queue and is recomputed later);
2. sequences still prefilling get chunks of their prompt;
3. waiting sequences are admitted, first come first served, while sequences, cells and the
   token budget allow, reusing cached prefixes.

While sequences are decoding, prefill tokens per step are limited so that a long prompt
arriving does not stall running streams: a step then costs about twice a decode-only step.
Pure bookkeeping: no kernels, no threads, no clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from tokenmill.engine.blocks import BlockManager, CellOp
from tokenmill.engine.sequence import Sequence, SequenceStatus

MIN_PREFILL_TOKENS_WHILE_DECODING = 8


@dataclass(frozen=True, slots=True)
class Chunk:
    """Compute ``seq.tokens[start:start + count]``; ``sample`` when that reaches the end."""

    seq: Sequence
    start: int
    count: int
    sample: bool


@dataclass(slots=True)
class StepPlan:
    chunks: list[Chunk] = field(default_factory=list)
    ops: list[CellOp] = field(default_factory=list)
    preempted: list[Sequence] = field(default_factory=list)
    admitted: list[Sequence] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return sum(c.count for c in self.chunks)


class Scheduler:
    def __init__(
        self,
        blocks: BlockManager,
        *,
        max_running: int,
        max_step_tokens: int,
        prefill_tokens_while_decoding: int | None = None,
    ) -> None:
        if max_running < 1 or max_step_tokens < 1:
            raise ValueError("max_running and max_step_tokens must be at least 1")
        self.blocks = blocks
        self.max_running = max_running
        self.max_step_tokens = max_step_tokens
        self.prefill_tokens_while_decoding = prefill_tokens_while_decoding
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []

    def add(self, seq: Sequence) -> None:
        self.waiting.append(seq)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def can_ever_fit(self, tokens: int) -> bool:
        return self.blocks.blocks_for(tokens) <= self.blocks.total_blocks

    def remove(self, seq: Sequence) -> list[CellOp]:
        """Take a finished or cancelled sequence out; returns the cell operations to apply."""
        if seq in self.running:
            self.running.remove(seq)
        elif seq in self.waiting:
            self.waiting.remove(seq)
        return self.blocks.release(seq)

    def schedule(self) -> StepPlan:
        plan = StepPlan()
        budget = self.max_step_tokens
        for seq in [s for s in self.running if not s.in_prefill]:
            if seq.status is not SequenceStatus.RUNNING:
                continue  # preempted earlier in this step
            count = seq.to_compute + len(seq.drafts)
            if count > budget:
                break
            if not self._make_room(seq, len(seq.tokens) + len(seq.drafts), plan):
                continue
            plan.ops.extend(self.blocks.grow(seq, len(seq.tokens) + len(seq.drafts)))
            plan.chunks.append(Chunk(seq, seq.num_computed, count, sample=True))
            budget -= count
        prefill_budget = budget
        if plan.chunks:
            prefill_budget = min(budget, self._prefill_limit(len(plan.chunks)))
        for seq in [s for s in self.running if s.in_prefill]:
            if prefill_budget <= 0:
                break
            prefill_budget -= self._prefill(seq, prefill_budget, plan)
        while self.waiting and prefill_budget > 0 and len(self.running) < self.max_running:
            seq = self.waiting[0]
            if not self.blocks.can_admit(seq):
                break
            self.waiting.popleft()
            plan.ops.extend(self.blocks.admit(seq))
            if not seq.admitted:
                seq.admitted = True
                seq.cached_tokens = seq.num_computed
            seq.status = SequenceStatus.RUNNING
            self.running.append(seq)
            plan.admitted.append(seq)
            prefill_budget -= self._prefill(seq, prefill_budget, plan)
        return plan

    def _prefill(self, seq: Sequence, budget: int, plan: StepPlan) -> int:
        count = min(seq.to_compute, budget)
        plan.chunks.append(Chunk(seq, seq.num_computed, count, sample=count == seq.to_compute))
        return count

    def _prefill_limit(self, decoding: int) -> int:
        if self.prefill_tokens_while_decoding is not None:
            return self.prefill_tokens_while_decoding
        return max(MIN_PREFILL_TOKENS_WHILE_DECODING, decoding)

    def _make_room(self, seq: Sequence, tokens: int, plan: StepPlan) -> bool:
        """Preempt the newest running sequences until ``seq`` has cells; False if it was the
        one preempted."""
        while not self.blocks.can_grow(seq, tokens):
            victim = self.running[-1]
            self._preempt(victim, plan)
            if victim is seq:
                return False
        return True

    def _preempt(self, seq: Sequence, plan: StepPlan) -> None:
        self.running.remove(seq)
        plan.ops.extend(self.blocks.release(seq))
        plan.chunks = [c for c in plan.chunks if c.seq is not seq]
        seq.status = SequenceStatus.WAITING
        seq.drafts.clear()
        self.waiting.appendleft(seq)
        plan.preempted.append(seq)
