"""A simulated engine replica: continuous batching inside a token budget and a KV capacity.

The replica advances in *phases*: runs of identical steps during which the batch does not
change (the same sequences decode, the same prompt chunk size prefills). A phase ends when a
sequence finishes its prompt or its output, so one event covers many engine steps and the
cost of a phase is closed-form (``StepCost.run_seconds``). Something that changes the batch
mid-phase (an admissible arrival, a neighbour on the same accelerator starting or stopping)
*interrupts* the phase: it is cut short at the end of the step in progress, exactly where a
real engine would first see the change.

Scheduling mirrors ``tokenmill.engine.scheduler``: decoding sequences each get one token a
step, prefilling sequences share what remains of the step budget, oldest first, and waiting
sequences are admitted first come first served while sequences and KV cells allow. KV cells
for a request's whole prompt and output are reserved at admission (no preemption), which is
conservative when outputs are long. A prefix cache of full blocks (LRU) lets a request skip
the prompt blocks a previous request on this replica already computed. With ``classes``,
priority requests wait and prefill ahead of the others, and a priority prompt may take the
whole step budget, as our engine serves service tiers (it does not run past ``max_running``
for them here). Each replica keeps the gateway's TTFT predictor
(``tokenmill.gateway.latency``), fed as the gateway feeds it.

Co-located replicas time-share their accelerator: a step costs ``active`` times its solo
cost while ``active`` replicas on the device have work.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from tokenmill.gateway.latency import TtftPredictor, Waiting
from tokenmill.protocol.tiers import ServiceTier
from tokenmill.sim.events import Event, EventLoop
from tokenmill.sim.perf import EngineProfile, ModelSpec
from tokenmill.sim.workload import SimRequest


class ReplicaState(StrEnum):
    LOADING = "loading"
    READY = "ready"
    DRAINING = "draining"
    STOPPED = "stopped"

    @classmethod
    def serving(cls) -> frozenset[ReplicaState]:
        return frozenset({cls.READY, cls.DRAINING})


@dataclass(slots=True)
class RequestRecord:
    """A request's life in the simulation; the metrics read these."""

    request: SimRequest
    slo_ttft_seconds: float
    cold_start: bool = False
    rejected: bool = False  # longer than the replica's whole KV cache: an error, never served
    asked: ServiceTier = ServiceTier.DEFAULT  # the service tier it asked for
    tier: ServiceTier = ServiceTier.DEFAULT  # the one it was served in
    refused: bool = False  # by the gateway: predicted to miss its tier's target (a 429)
    replica_id: str | None = None
    cached_tokens: int = 0
    first_token_seconds: float | None = None
    finish_seconds: float | None = None

    @property
    def ttft_seconds(self) -> float | None:
        if self.first_token_seconds is None:
            return None
        return self.first_token_seconds - self.request.arrival_seconds

    @property
    def tpot_seconds(self) -> float | None:
        if self.finish_seconds is None or self.first_token_seconds is None:
            return None
        if self.request.output_tokens <= 1:
            return 0.0
        return (self.finish_seconds - self.first_token_seconds) / (self.request.output_tokens - 1)


@dataclass(slots=True)
class _Seq:
    record: RequestRecord
    prompt_left_tokens: int
    output_left_tokens: int
    context_tokens: int
    reserved_tokens: int
    waiting: Waiting | None = None  # in the replica's TTFT prediction until its first token

    @property
    def urgent(self) -> bool:
        return self.record.tier is ServiceTier.PRIORITY


@dataclass(slots=True)
class Device:
    """One accelerator's time sharing and busy time."""

    accelerator_id: str
    replicas: list[SimReplica] = field(default_factory=list)
    active: int = 0
    busy_seconds: float = 0.0
    _since_seconds: float = 0.0

    def set_active(self, now_seconds: float, delta: int, changed: SimReplica) -> None:
        if self.active > 0:
            self.busy_seconds += now_seconds - self._since_seconds
        self._since_seconds = now_seconds
        self.active += delta
        for neighbour in self.replicas:
            if neighbour is not changed:
                neighbour.interrupt()

    def busy_until(self, now_seconds: float) -> float:
        extra = now_seconds - self._since_seconds if self.active > 0 else 0.0
        return self.busy_seconds + extra


@dataclass(slots=True)
class _Phase:
    start_seconds: float
    steps: int
    batched_tokens: int
    kv_tokens: int
    slowdown: int
    sampled: int
    chunks: list[tuple[_Seq, int]]
    event: Event


class SimReplica:
    def __init__(
        self,
        replica_id: str,
        model: ModelSpec,
        profile: EngineProfile,
        device: Device,
        loop: EventLoop,
        *,
        on_finished: Callable[[SimReplica, RequestRecord], None],
        prefix_block_tokens: int = 512,
        classes: bool = False,
    ) -> None:
        """``classes``: service tiers as our engine serves them (priority work waits and
        prefills first, its prompt not held to the limit that decoding sets); otherwise
        first come, first served."""
        self.replica_id = replica_id
        self.model = model
        self.profile = profile
        self.device = device
        self.loop = loop
        self.on_finished = on_finished
        self.state = ReplicaState.LOADING
        self.waiting: deque[_Seq] = deque()
        self.prefilling: list[_Seq] = []
        self.decoding: list[_Seq] = []
        self.reserved_tokens = 0
        self.outstanding_tokens = 0  # prompt plus output of every request not yet finished
        self.prefix_block_tokens = prefix_block_tokens
        self._prefix_capacity_blocks = int(
            profile.kv_capacity_tokens * profile.prefix_cache_share / prefix_block_tokens
        )
        self._prefix_blocks: OrderedDict[int, None] = OrderedDict()
        self._phase: _Phase | None = None
        self._active = False
        self.classes = classes
        self.latency = TtftPredictor()  # what a gateway in front of it would predict
        self.steps_run = 0
        device.replicas.append(self)

    @property
    def outstanding_requests(self) -> int:
        return len(self.waiting) + len(self.prefilling) + len(self.decoding)

    @property
    def running_requests(self) -> int:
        return len(self.prefilling) + len(self.decoding)

    def cached_prefix_blocks(self) -> frozenset[int]:
        return frozenset(self._prefix_blocks)

    def mark_ready(self) -> None:
        self.state = ReplicaState.READY
        self._start_phase()

    def submit(self, record: RequestRecord) -> None:
        request = record.request
        record.replica_id = self.replica_id
        needed = request.prompt_tokens + request.output_tokens
        if needed > self.profile.kv_capacity_tokens:
            record.rejected = True
            return
        seq = _Seq(record, request.prompt_tokens, request.output_tokens, 0, needed)
        seq.waiting = self.latency.sent(
            record.tier.priority, request.prompt_tokens, self.loop.now_seconds
        )
        self.outstanding_tokens += needed
        if self.classes and seq.urgent:
            _ahead_of_default(self.waiting, seq)
        else:
            self.waiting.append(seq)
        if self.state is ReplicaState.LOADING:
            return
        if self._phase is None:
            self._start_phase()
        elif self._can_admit(seq):
            self.interrupt()

    def interrupt(self) -> None:
        """Cut the current phase short at the end of the step in progress."""
        phase = self._phase
        if phase is None:
            return
        elapsed = (self.loop.now_seconds - phase.start_seconds) / phase.slowdown
        done = self.profile.cost.steps_within(
            elapsed, phase.batched_tokens, phase.kv_tokens, phase.sampled
        )
        steps = min(phase.steps, done + 1)
        if steps >= phase.steps:
            return
        phase.event.cancel()
        phase.steps = steps
        seconds = self.profile.cost.run_seconds(
            steps, phase.batched_tokens, phase.kv_tokens, phase.sampled
        )
        phase.event = self.loop.at(phase.start_seconds + phase.slowdown * seconds, self._end_phase)

    def _can_admit(self, seq: _Seq) -> bool:
        return (
            self.running_requests < self.profile.max_running
            and self.reserved_tokens + seq.reserved_tokens <= self.profile.kv_capacity_tokens
        )

    def _admit(self) -> None:
        while self.waiting and self._can_admit(self.waiting[0]):
            seq = self.waiting.popleft()
            self.reserved_tokens += seq.reserved_tokens
            cached = self._cached_tokens(seq.record.request)
            seq.record.cached_tokens = cached
            seq.prompt_left_tokens -= cached
            seq.context_tokens = cached
            if self.classes and seq.urgent:
                _ahead_of_default(self.prefilling, seq)
            else:
                self.prefilling.append(seq)

    def _cached_tokens(self, request: SimRequest) -> int:
        if not request.block_hashes or self._prefix_capacity_blocks == 0:
            return 0
        blocks = self._prefix_blocks
        hits = 0
        for block in request.block_hashes:
            if block not in blocks:
                break
            hits += 1
        for block in request.block_hashes:
            blocks[block] = None
            blocks.move_to_end(block)
        while len(blocks) > self._prefix_capacity_blocks:
            blocks.popitem(last=False)
        # the last prompt token is always computed: it yields the first output token
        return min(hits * self.prefix_block_tokens, request.prompt_tokens - 1)

    def _set_active(self, active: bool) -> None:
        if active != self._active:
            self._active = active
            self.device.set_active(self.loop.now_seconds, 1 if active else -1, self)

    def _start_phase(self) -> None:
        if self.state not in ReplicaState.serving():
            return
        self._admit()
        if not self.prefilling and not self.decoding:
            self._phase = None
            self._set_active(False)
            return
        self._set_active(True)
        decoding = len(self.decoding)
        budget = self.profile.prefill_budget_tokens(decoding)
        if self.classes and self.prefilling and self.prefilling[0].urgent:
            budget = max(budget, self.profile.max_step_tokens - decoding)
        chunks: list[tuple[_Seq, int]] = []
        steps = min((s.output_left_tokens for s in self.decoding), default=1 << 62)
        if self.prefilling and budget > 0:
            head = self.prefilling[0]
            if head.prompt_left_tokens >= budget:
                chunks.append((head, budget))
                steps = min(steps, head.prompt_left_tokens // budget)
            else:  # one step shares the budget among prompts, oldest first
                for seq in self.prefilling:
                    count = min(seq.prompt_left_tokens, budget)
                    chunks.append((seq, count))
                    budget -= count
                    if budget == 0:
                        break
                steps = 1
        batched = decoding + sum(count for _, count in chunks)
        kv = sum(s.context_tokens for s in self.decoding) + sum(
            s.context_tokens for s in self.prefilling
        )

        slowdown = max(1, self.device.active)
        seconds = slowdown * self.profile.cost.run_seconds(steps, batched, kv, decoding)
        event = self.loop.after(seconds, self._end_phase)
        self._phase = _Phase(
            self.loop.now_seconds, steps, batched, kv, slowdown, decoding, chunks, event
        )

    def _end_phase(self) -> None:
        phase = self._phase
        if phase is None:
            return
        self._phase = None
        now = self.loop.now_seconds
        steps = phase.steps
        self.steps_run += steps
        finished: list[_Seq] = []
        still: list[_Seq] = []
        for seq in self.decoding:
            seq.output_left_tokens -= steps
            seq.context_tokens += steps
            (finished if seq.output_left_tokens <= 0 else still).append(seq)
        for seq, count in phase.chunks:
            seq.prompt_left_tokens -= count * steps
            seq.context_tokens += count * steps
        remaining: list[_Seq] = []
        for seq in self.prefilling:
            if seq.prompt_left_tokens > 0:
                remaining.append(seq)
                continue
            seq.record.first_token_seconds = now
            if seq.waiting is not None:
                self.latency.first_token(seq.waiting, now)
            seq.output_left_tokens -= 1
            (finished if seq.output_left_tokens <= 0 else still).append(seq)
        self.prefilling = remaining
        self.decoding = still
        for seq in finished:
            seq.record.finish_seconds = now
            self.reserved_tokens -= seq.reserved_tokens
            self.outstanding_tokens -= seq.reserved_tokens
            self.on_finished(self, seq.record)
        self._start_phase()

    def stop(self) -> None:
        """Called once drained (or when a loading replica is cancelled)."""
        self.state = ReplicaState.STOPPED
        if self._phase is not None:
            self._phase.event.cancel()
            self._phase = None
        self._set_active(False)
        if self in self.device.replicas:
            self.device.replicas.remove(self)


def _ahead_of_default(queue: deque[_Seq] | list[_Seq], seq: _Seq) -> None:
    """Puts a priority sequence after the priority ones already there, before the rest."""
    index = next((i for i, other in enumerate(queue) if not other.urgent), len(queue))
    queue.insert(index, seq)
