"""Decides what each step computes: continuous batching with chunked prefill and preemption.

Every step, in order:
1. each decoding sequence gets its next token (plus speculative drafts), oldest first; when
   the KV cache has no room, a running sequence is preempted (its cells dropped; it waits at
   the head of its tenant's queue and is recomputed later): the newest of the tenant furthest
   above its fair share, or simply the newest under first come, first served;
2. sequences still prefilling get chunks of their prompt, in the order admission would pick
   them (a tenant below its share is not stuck behind a flood's prompts);
3. waiting sequences are admitted, by class and fair share between tenants
   (``fairness.FairQueue``) or first come first served, while sequences, cells and the token
   budget allow, reusing cached prefixes. A tenant below its share of the running places, or
   work of a more urgent class than some running, is admitted even when all are taken (up to
   twice as many), rather than wait for another's to end.

While sequences are decoding, prefill tokens per step are limited so that a long prompt
arriving does not stall running streams: a step then costs about twice a decode-only step.
Priority work, and work more urgent than some that runs, is not limited (fair scheduling
only): its prompt may take the step's whole token budget, so its first token does not wait
behind less urgent work.
A step's chunks are computed in one ``llama_decode``, whatever their LoRA adapters, when the
runner mixes adapters (``tokenmill.engine.lora``); otherwise in one per adapter among them
(``adapter_groups``): llama.cpp applies a context's adapters to every token of a decode.
Pure bookkeeping: no kernels, no threads, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tokenmill.engine.blocks import BlockManager, CellOp
from tokenmill.engine.fairness import FairQueue
from tokenmill.engine.sequence import Sequence, SequenceStatus
from tokenmill.protocol.tenancy import Priority

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


def adapter_groups(
    chunks: list[Chunk], current: str | None
) -> list[tuple[str | None, list[Chunk]]]:
    """The chunks by adapter, one group per decode: the adapter set on the context now first
    (switching adapters costs llama.cpp a new compute graph), then in the plan's order."""
    groups: dict[str | None, list[Chunk]] = {}
    for chunk in chunks:
        groups.setdefault(chunk.seq.adapter, []).append(chunk)
    order = sorted(groups, key=lambda adapter: adapter != current)  # stable
    return [(adapter, groups[adapter]) for adapter in order]


class Scheduler:
    def __init__(
        self,
        blocks: BlockManager,
        *,
        max_running: int,
        max_step_tokens: int,
        prefill_tokens_while_decoding: int | None = None,
        fair: bool = True,
    ) -> None:
        if max_running < 1 or max_step_tokens < 1:
            raise ValueError("max_running and max_step_tokens must be at least 1")
        self.blocks = blocks
        self.max_running = max_running
        self.max_step_tokens = max_step_tokens
        self.prefill_tokens_while_decoding = prefill_tokens_while_decoding
        self.waiting = FairQueue(fair=fair)
        self.running: list[Sequence] = []

    def add(self, seq: Sequence) -> None:
        self.waiting.arrive(seq)

    def sampled(self, seq: Sequence) -> None:
        """``seq`` got a token: its tenant is charged for it."""
        self.waiting.charge_output(seq)

    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    def can_ever_fit(self, tokens: int) -> bool:
        return self.blocks.blocks_for(tokens) <= self.blocks.total_blocks

    def remove(self, seq: Sequence) -> list[CellOp]:
        """Take a finished or cancelled sequence out; returns the cell operations to apply."""
        running = seq in self.running
        if running:
            self.running.remove(seq)
        self.waiting.discard(seq, running=running)
        return self.blocks.release(seq)

    def evict(self, seq: Sequence) -> list[CellOp]:
        """Send a running sequence back to wait (recomputed later); returns its cell ops."""
        self.running.remove(seq)
        seq.status = SequenceStatus.WAITING
        seq.drafts.clear()
        self.waiting.requeue(seq)
        return self.blocks.release(seq)

    def schedule(self, now: float | None = None) -> StepPlan:
        """``now``: the time, for waiting sequences to move up a class as they wait."""
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
        # While sequences decode, prefill is capped (``capped``), except for priority work and
        # work more urgent than some that runs (interactive over batch), which may take the
        # step's whole budget: its first token is what it waits for.
        capped = self._prefill_limit(len(plan.chunks)) if plan.chunks else budget
        for seq in self.waiting.order([s for s in self.running if s.in_prefill]):
            allowance = self._allowance(seq, budget, capped)
            if allowance <= 0:
                break
            count = self._prefill(seq, allowance, plan)
            budget, capped = budget - count, capped - count
        while budget > 0 and len(self.running) < 2 * self.max_running:
            full = len(self.running) >= self.max_running
            chosen = self.waiting.peek(self.max_running if full else None, now)
            if chosen is None or not self.blocks.can_admit(chosen):
                break
            allowance = self._allowance(chosen, budget, capped)
            if allowance <= 0:
                break
            seq = chosen
            self.waiting.take(seq)
            plan.ops.extend(self.blocks.admit(seq))
            if not seq.admitted:
                seq.admitted = True
                seq.cached_tokens = seq.num_computed
                self.waiting.charge_prompt(seq, seq.prompt_len - seq.cached_tokens)
            seq.status = SequenceStatus.RUNNING
            self.running.append(seq)
            plan.admitted.append(seq)
            count = self._prefill(seq, allowance, plan)
            budget, capped = budget - count, capped - count
        return plan

    def _prefill(self, seq: Sequence, budget: int, plan: StepPlan) -> int:
        count = min(seq.to_compute, budget)
        plan.chunks.append(Chunk(seq, seq.num_computed, count, sample=count == seq.to_compute))
        return count

    def _allowance(self, seq: Sequence, budget: int, capped: int) -> int:
        urgent = seq.request.priority == Priority.PRIORITY
        if self.waiting.fair and (urgent or self.waiting.outranks(seq.request.priority)):
            return budget
        return min(budget, capped)

    def _prefill_limit(self, decoding: int) -> int:
        if self.prefill_tokens_while_decoding is not None:
            return self.prefill_tokens_while_decoding
        return max(MIN_PREFILL_TOKENS_WHILE_DECODING, decoding)

    def _make_room(self, seq: Sequence, tokens: int, plan: StepPlan) -> bool:
        """Preempt running sequences until ``seq`` has cells; False if it was preempted."""
        while not self.blocks.can_grow(seq, tokens):
            victim = self.waiting.victim(self.running)
            self._preempt(victim, plan)
            if victim is seq:
                return False
        return True

    def _preempt(self, seq: Sequence, plan: StepPlan) -> None:
        plan.ops.extend(self.evict(seq))
        plan.chunks = [c for c in plan.chunks if c.seq is not seq]
        plan.preempted.append(seq)
