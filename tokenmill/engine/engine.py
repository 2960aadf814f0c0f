"""The engine and its step loop (its async face, ``submit`` and ``cancel``, is ``face.py``).

One worker thread runs the loop: take new requests and cancellations, let the scheduler plan
a step, apply its cell operations, run one ``llama_decode`` over every scheduled sequence of
each LoRA adapter (the base model's too), or one for all when the runner can mix their
adapters, sample, and hand text to the submitters' event loop (``call_soon_threadsafe``). A
request's adapter stays pinned from submission until it ends.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from typing import Any

from tokenmill.clock import Clock, SystemClock
from tokenmill.engine.adapters import AdapterCache
from tokenmill.engine.blocks import BLOCK_TOKENS, BlockManager, CellRemoval
from tokenmill.engine.chat_template import ChatTemplate
from tokenmill.engine.echo import echo_event, echo_offsets, record_echo
from tokenmill.engine.face import EngineFace
from tokenmill.engine.logprobs import token_logprob
from tokenmill.engine.metrics import EngineMetrics
from tokenmill.engine.prompt import PromptBuilder
from tokenmill.engine.request import (
    Finished,
    FinishReason,
    RequestOutcome,
    TokenLogprob,
)
from tokenmill.engine.runner import SCRATCH_CELLS, DecodeEntry, DecodeError
from tokenmill.engine.scheduler import Chunk, Scheduler, StepPlan, adapter_groups
from tokenmill.engine.seams import EngineSettings, Handle, Runner
from tokenmill.engine.sequence import Sequence, SequenceStatus
from tokenmill.engine.speculation import propose

logger = logging.getLogger(__name__)

RECENT_OUTCOMES = 1000


class Engine(EngineFace):
    def __init__(
        self,
        runner: Runner,
        settings: EngineSettings | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self._runner = runner
        self._clock = clock or SystemClock()
        settings = settings or EngineSettings(max_step_tokens=runner.max_step_tokens)
        template = runner.chat_template
        self.prompts = PromptBuilder(
            runner,
            ChatTemplate(template, bos_token=runner.bos_token, eos_token=runner.eos_token)
            if template
            else None,
        )
        runner.clear()  # the block ledger below starts empty; so must the cells
        self._settings = settings
        total_blocks = (
            settings.kv_cache_blocks or (runner.kv_cache_tokens - SCRATCH_CELLS) // BLOCK_TOKENS
        )
        blocks = BlockManager(
            total_blocks,
            settings.slots,
            max_cached_blocks=int(total_blocks * settings.prefix_cache_share),
        )
        self._scheduler = Scheduler(
            blocks,
            max_running=settings.max_running,
            max_step_tokens=min(settings.max_step_tokens, runner.max_step_tokens),
            prefill_tokens_while_decoding=settings.prefill_tokens_while_decoding,
            fair=settings.scheduling == "fair",
        )
        self._lock = threading.Condition()
        self._incoming: list[Handle] = []
        self._aborts: set[str] = set()
        self._active: dict[str, Handle] = {}
        self._recent: OrderedDict[str, RequestOutcome] = OrderedDict()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._adapter: str | None = None  # the adapter of the last decode, and its handle
        self._adapter_handle: Any = None
        self.adapters = AdapterCache(
            settings.adapters_dir,
            runner.load_adapter,
            capacity=settings.max_loaded_adapters,
            on_load=lambda: self.metrics.adapter_loads.inc(),
        )
        self.metrics = EngineMetrics(
            running=lambda: len(self._scheduler.running),
            waiting=lambda: len(self._scheduler.waiting) + len(self._incoming),
            kv_used_cells=lambda: blocks.used_blocks * blocks.block_tokens,
            kv_total_cells=lambda: runner.kv_cache_tokens,
            adapters_loaded=lambda: len(self.adapters),
        )

    @property
    def context_tokens(self) -> int:
        return self._runner.context_tokens

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def scheduler(self) -> Scheduler:
        return self._scheduler

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._work, name="engine-worker", daemon=True)
            self._thread.start()

    async def stop(self) -> None:
        """Cancel everything in flight and wait for the worker to end."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stopping = True
            self._lock.notify_all()
        if thread is not None:
            await asyncio.to_thread(thread.join)

    # The worker thread.

    def _work(self) -> None:
        try:
            self._loop()
        finally:
            self._free_adapters(self.adapters.clear())

    def _loop(self) -> None:
        scheduler = self._scheduler
        while True:
            with self._lock:
                while not (self._incoming or self._aborts or scheduler.has_work()):
                    if self._stopping:
                        return
                    self._lock.wait()
                if self._stopping:
                    self._abandon_all()
                    return
                incoming, self._incoming = self._incoming, []
                aborts, self._aborts = self._aborts, set()
                cancelled = [self._active[rid] for rid in aborts if rid in self._active]
            for handle in incoming:
                scheduler.add(handle.sequence)
            for handle in cancelled:
                self._end(handle, "cancelled")
            self._free_adapters(self.adapters.drain())
            if scheduler.has_work():
                started = self._clock.monotonic()
                self._draft()
                self._step(scheduler.schedule(started))
                self.metrics.busy_seconds.inc(self._clock.monotonic() - started)

    def _draft(self) -> None:
        """Propose prompt-lookup drafts for greedy streams while few streams decode."""
        limit = self._settings.speculative_tokens
        if not limit:
            return
        decoding = [s for s in self._scheduler.running if not s.in_prefill]
        if len(decoding) > self._settings.speculative_max_decoding:
            return
        for seq in decoding:
            room = min(
                seq.request.max_tokens - seq.completion_tokens - 1,
                self._runner.context_tokens - len(seq.tokens),
                limit,
            )
            if seq.request.sampling.temperature == 0.0 and room > 0:
                seq.drafts = propose(seq.tokens, room)

    def _step(self, plan: StepPlan) -> None:
        runner = self._runner
        for seq in plan.admitted:
            if seq.sampler is None:
                seq.sampler = runner.sampler(
                    seq.request.sampling,
                    max_tokens=seq.request.max_tokens,
                    grammar=seq.request.grammar,
                    grammar_trigger=seq.request.grammar_trigger,
                )
                self.metrics.prompt_started(
                    prompt_tokens=seq.prompt_len, cached_tokens=seq.cached_tokens
                )
        runner.apply(plan.ops)
        if plan.preempted:
            self.metrics.preemptions.inc(len(plan.preempted))
        for adapter, chunks in self._groups(plan.chunks):
            if not self._run(chunks, adapter):
                return  # the other groups are planned again next step

    def _groups(self, chunks: list[Chunk]) -> list[tuple[str | None, list[Chunk]]]:
        """The step's decodes: one for every chunk when the runner can mix their adapters (no
        adapter is set on its context then), else one per adapter."""
        adapters = {c.seq.adapter for c in chunks}
        if self._settings.mix_adapters and len(adapters) > 1:
            handles = [self.adapters.handle(a) for a in adapters if a is not None]
            if self._runner.can_mix(handles):
                return [(None, chunks)]
        return adapter_groups(chunks, self._adapter)

    def _run(self, chunks: list[Chunk], adapter: str | None) -> bool:
        """Decode chunks (each with its adapter) and sample; False when the decode failed.
        ``adapter``: the one set on the runner's context for them."""
        runner = self._runner
        entries: list[DecodeEntry] = []
        echoes: list[tuple[int, ...]] = []
        for c in chunks:
            drafts = c.seq.drafts if c.sample else []
            real = c.count - len(drafts)
            echo = echo_offsets(c.seq, c.start, real)  # before the sampled rows: lower offsets
            sampled = c.sample and c.seq.request.max_tokens > 0
            entries.append(
                DecodeEntry(
                    c.seq.slot if c.seq.slot is not None else -1,
                    [*c.seq.tokens[c.start : c.start + real], *drafts],
                    c.start,
                    (*echo, *range(real - 1, c.count)) if sampled else echo,
                    None if c.seq.adapter is None else self.adapters.handle(c.seq.adapter),
                )
            )
            echoes.append(echo)
        handle = None if adapter is None else self.adapters.handle(adapter)
        if handle is not self._adapter_handle:
            self.metrics.adapter_switches.inc()
        try:
            rows = runner.decode(entries)
        except DecodeError as error:
            self._decode_failed(chunks, error)
            return False
        self._adapter, self._adapter_handle = adapter, handle
        now = self._clock.monotonic()
        for chunk, echo, chunk_rows in zip(chunks, echoes, rows, strict=True):
            seq = chunk.seq
            if echo:
                rows_read, chunk_rows = chunk_rows[: len(echo)], chunk_rows[len(echo) :]
                record_echo(seq, chunk.start, echo, rows_read, runner.logits, runner.prompt_piece)
            if chunk.sample and self._prompt_done(chunk):
                continue
            if not chunk.sample:
                seq.num_computed = chunk.start + chunk.count
                self._scheduler.blocks.computed(seq)
                continue
            drafts, seq.drafts = seq.drafts, []
            seq.num_computed = chunk.start + chunk.count - len(drafts)
            accepted = self._verify(seq, drafts, chunk_rows, now)
            seq.num_computed += accepted
            if drafts:
                self.metrics.spec_draft_tokens.inc(len(drafts))
                self.metrics.spec_accepted_tokens.inc(accepted)
            if drafts and seq.slot is not None and seq.status is SequenceStatus.RUNNING:
                runner.apply([CellRemoval(seq.slot, seq.num_computed, -1)])
            if seq.status is SequenceStatus.RUNNING:
                self._scheduler.blocks.computed(seq)
        return True

    def _prompt_done(self, chunk: Chunk) -> bool:
        """The prompt is computed: its logprobs go out (once, when asked); a request for no
        tokens (``echo`` with ``max_tokens`` 0) ends here. True when it ended."""
        seq = chunk.seq
        handle = self._active.get(seq.request_id)
        if seq.request.prompt_logprobs and not seq.echoed:
            seq.echoed = True
            if handle is not None:
                handle.emit(echo_event(seq, self._runner.prompt_piece))
        if seq.request.max_tokens > 0:
            return False
        seq.num_computed = chunk.start + chunk.count
        if handle is not None:
            self._end(handle, "length")
        return True

    def _free_adapters(self, handles: list[Any]) -> None:
        for handle in handles:
            self._runner.free_adapter(handle)  # taken off the context first if it is on
            if handle is self._adapter_handle:
                self._adapter, self._adapter_handle = None, None

    def _verify(self, seq: Sequence, drafts: list[int], rows: list[int], now: float) -> int:
        """Sample at each position in turn; keep going while the samples equal the drafts.

        Returns how many drafts were accepted. Every sample is appended (the last one is the
        model's own next token), so the output is exactly what decoding one at a time gives.
        """
        for accepted, row in enumerate(rows):
            token = self._runner.sample(seq.sampler, row)
            self._sampled(seq, token, now, self._logprob(seq, token, row))
            if seq.status is not SequenceStatus.RUNNING:
                return accepted
            if accepted >= len(drafts) or token != drafts[accepted]:
                return accepted
        return len(drafts)

    def _logprob(self, seq: Sequence, token: int, row: int) -> TokenLogprob | None:
        """Read from the row's logits before the next decode overwrites them; only if asked."""
        sampling = seq.request.sampling
        if not sampling.logprobs:
            return None
        runner = self._runner
        return token_logprob(runner.logits(row), token, sampling.top_logprobs, runner.piece)

    def _sampled(self, seq: Sequence, token: int, now: float, logprob: TokenLogprob | None) -> None:
        runner = self._runner
        previous = seq.last_token_seconds
        piece, is_eog = runner.piece(token), runner.is_eog(token)
        text = seq.append(token, piece, is_eog=is_eog, now_seconds=now, logprob=logprob)
        self._scheduler.sampled(seq)
        self.metrics.token_generated(
            arrival_seconds=seq.arrival_seconds, previous_seconds=previous, now_seconds=now
        )
        handle = self._active.get(seq.request_id)
        if handle is None:
            return
        delta = seq.delta(text)
        if delta is not None:
            handle.emit(delta)
        if seq.finish_reason is not None:
            self._end(handle, seq.finish_reason)

    def _decode_failed(self, chunks: list[Chunk], error: DecodeError) -> None:
        """No room in llama.cpp's cache (fragmentation): preempt the newest and go on; any
        other failure ends the step's sequences with an error."""
        if error.no_space and len(self._scheduler.running) > 1:
            scheduler = self._scheduler
            self._runner.apply(scheduler.evict(scheduler.waiting.victim(scheduler.running)))
            self.metrics.preemptions.inc()
            return
        logger.error("decode failed: %s", error)
        for chunk in chunks:
            handle = self._active.get(chunk.seq.request_id)
            if handle is not None:
                self._end(handle, "error", f"The engine failed while generating: {error}")

    def _end(self, handle: Handle, reason: FinishReason, error: str | None = None) -> None:
        """End a request: free its cells and sampler, record its outcome, tell its listener."""
        seq = handle.sequence
        if seq.status is SequenceStatus.FINISHED:
            return
        self._runner.apply(self._scheduler.remove(seq))
        if seq.sampler is not None:
            self._runner.free_sampler(seq.sampler)
            seq.sampler = None
        seq.finish(reason)
        if seq.adapter is not None:
            self.adapters.unpin(seq.adapter)
        outcome = RequestOutcome(
            request_id=seq.request_id,
            status="cancelled" if reason == "cancelled" else "finished",
            usage=seq.usage,
        )
        with self._lock:
            self._active.pop(seq.request_id, None)
            self._recent[seq.request_id] = outcome
            self._recent.move_to_end(seq.request_id)
            while len(self._recent) > RECENT_OUTCOMES:
                self._recent.popitem(last=False)
        self.metrics.request_finished(reason)
        handle.emit(Finished(finish_reason=reason, usage=seq.usage, error=error))
        handle.resolve(outcome)

    def _abandon_all(self) -> None:
        """Stopping: every request still here ends as cancelled. Called holding the lock."""
        handles = list(self._active.values())
        self._lock.release()
        try:
            for handle in handles:
                self._end(handle, "cancelled")
        finally:
            self._lock.acquire()
