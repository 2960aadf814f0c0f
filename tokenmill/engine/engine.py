"""The async face of the engine: requests in, events out, one worker thread doing the work.

The worker takes waiting requests in arrival order and runs each to its end (this walking
skeleton decodes one sequence at a time; a batching scheduler replaces ``_generate`` later).
Events cross to the submitter's event loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from tokenmill.clock import Clock, SystemClock
from tokenmill.engine.chat_template import ChatTemplate
from tokenmill.engine.metrics import EngineMetrics
from tokenmill.engine.prompt import PromptBuilder
from tokenmill.engine.request import (
    EngineEvent,
    EngineRequest,
    Finished,
    FinishReason,
    RequestOutcome,
    TextDelta,
)
from tokenmill.engine.sequence import Sequence as EngineSequence
from tokenmill.engine.sequence import SequenceStatus
from tokenmill.errors import InvalidRequest, ServiceUnavailable
from tokenmill.protocol.requests import SamplingParams

logger = logging.getLogger(__name__)

RECENT_OUTCOMES = 1000


class Sampler(contextlib.AbstractContextManager["Sampler"], Protocol):
    def sample(self) -> int: ...


class Runner(Protocol):
    """What the engine needs from a model runner (``LlamaRunner`` in production)."""

    @property
    def context_tokens(self) -> int: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def kv_used_cells(self) -> int: ...
    @property
    def chat_template(self) -> str | None: ...
    @property
    def bos_token(self) -> str: ...
    @property
    def eos_token(self) -> str: ...

    def tokenize(self, text: str) -> list[int]: ...
    def detokenize(self, tokens: Sequence[int]) -> str: ...
    def piece(self, token: int) -> bytes: ...
    def is_eog(self, token: int) -> bool: ...
    def reuse_prefix(self, tokens: Sequence[int]) -> int: ...
    def prefill_batches(self, tokens: Sequence[int], start: int) -> Iterator[Sequence[int]]: ...
    def decode(self, tokens: Sequence[int]) -> None: ...
    def sampler(self, sampling: SamplingParams, *, max_tokens: int) -> Sampler: ...


@dataclass(slots=True)
class _Handle:
    """A sequence plus the way back to the event loop that submitted it."""

    sequence: EngineSequence
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue[EngineEvent]
    outcome: asyncio.Future[RequestOutcome]

    def emit(self, event: EngineEvent) -> None:
        self._call(self.events.put_nowait, event)

    def resolve(self, outcome: RequestOutcome) -> None:
        def settle() -> None:
            if not self.outcome.done():
                self.outcome.set_result(outcome)

        self._call(settle)

    def _call(self, fn: Callable[..., object], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is listening
            self.loop.call_soon_threadsafe(fn, *args)


class Engine:
    def __init__(self, runner: Runner, *, clock: Clock | None = None) -> None:
        self._runner = runner
        self._clock = clock or SystemClock()
        template = runner.chat_template
        self.prompts = PromptBuilder(
            runner,
            ChatTemplate(template, bos_token=runner.bos_token, eos_token=runner.eos_token)
            if template
            else None,
        )
        self._lock = threading.Condition()
        self._waiting: deque[_Handle] = deque()
        self._active: dict[str, _Handle] = {}
        self._recent: OrderedDict[str, RequestOutcome] = OrderedDict()
        self._running = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.metrics = EngineMetrics(
            running=lambda: self._running,
            waiting=lambda: len(self._waiting),
            kv_used_cells=lambda: runner.kv_used_cells,
            kv_total_cells=lambda: runner.context_tokens,
        )

    @property
    def context_tokens(self) -> int:
        return self._runner.context_tokens

    @property
    def clock(self) -> Clock:
        return self._clock

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
            for handle in self._active.values():
                handle.sequence.abort_requested = True
            self._lock.notify_all()
        if thread is not None:
            await asyncio.to_thread(thread.join)

    def submit(self, request: EngineRequest) -> AsyncGenerator[EngineEvent, None]:
        """Queue a request; its iterator yields text deltas and, last, a ``Finished``.

        Call from a coroutine. Closing the iterator early (a client that went away) cancels
        the request.
        """
        loop = asyncio.get_running_loop()
        handle = _Handle(
            sequence=EngineSequence(request, arrival_seconds=self._clock.monotonic()),
            loop=loop,
            events=asyncio.Queue(),
            outcome=loop.create_future(),
        )
        with self._lock:
            if self._stopping or self._thread is None:
                raise ServiceUnavailable("The engine is not running.")
            if request.request_id in self._active:
                raise InvalidRequest(
                    f"A request with id {request.request_id!r} is already in progress.",
                    code="duplicate_request_id",
                )
            self._active[request.request_id] = handle
            self._waiting.append(handle)
            self._lock.notify_all()
        return self._events(handle)

    def abort(self, request_id: str) -> None:
        """Ask for a request to end, without waiting; a no-op for an unknown or ended one."""
        with self._lock:
            handle = self._active.get(request_id)
            if handle is None:
                return
            if handle.sequence.status is SequenceStatus.WAITING:
                self._waiting.remove(handle)
                self._finish(handle, "cancelled")
            else:
                handle.sequence.abort_requested = True

    async def cancel(self, request_id: str) -> RequestOutcome | None:
        """Cancel a request and wait until it has stopped; report its usage.

        A request that already ended reports how it ended; an unknown one gives None.
        """
        with self._lock:
            if request_id in self._recent:
                return self._recent[request_id]
            handle = self._active.get(request_id)
            if handle is None:
                return None
        self.abort(request_id)
        return await asyncio.shield(handle.outcome)

    async def _events(self, handle: _Handle) -> AsyncGenerator[EngineEvent, None]:
        try:
            while True:
                event = await handle.events.get()
                yield event
                if isinstance(event, Finished):
                    return
        finally:
            self.abort(handle.sequence.request_id)

    # The worker thread.

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._waiting and not self._stopping:
                    self._lock.wait()
                if self._stopping:
                    for handle in list(self._waiting):
                        self._finish(handle, "cancelled")
                    self._waiting.clear()
                    return
                handle = self._waiting.popleft()
                handle.sequence.status = SequenceStatus.RUNNING
                self._running = 1
            try:
                reason = self._generate(handle.sequence, handle.emit)
                error = None
            except Exception as exc:
                logger.exception("generation failed for request %s", handle.sequence.request_id)
                reason, error = "error", f"The engine failed while generating: {exc}"
            with self._lock:
                self._running = 0
                self._finish(handle, reason, error)

    def _generate(self, seq: EngineSequence, emit: Callable[[EngineEvent], None]) -> FinishReason:
        runner, request = self._runner, seq.request
        prompt = request.prompt_tokens
        seq.cached_tokens = runner.reuse_prefix(prompt)
        self.metrics.prompt_started(prompt_tokens=len(prompt), cached_tokens=seq.cached_tokens)
        for batch in runner.prefill_batches(prompt, seq.cached_tokens):
            if seq.abort_requested:
                return "cancelled"
            runner.decode(batch)
        with runner.sampler(request.sampling, max_tokens=request.max_tokens) as sampler:
            while True:
                if seq.abort_requested:
                    return "cancelled"
                token = sampler.sample()
                now_seconds = self._clock.monotonic()
                previous_seconds = seq.last_token_seconds
                text = seq.append(
                    runner.piece(token), is_eog=runner.is_eog(token), now_seconds=now_seconds
                )
                self.metrics.token_generated(
                    arrival_seconds=seq.arrival_seconds,
                    previous_seconds=previous_seconds,
                    now_seconds=now_seconds,
                )
                if text:
                    emit(TextDelta(text))
                if seq.finish_reason is not None:
                    return seq.finish_reason
                runner.decode([token])

    def _finish(self, handle: _Handle, reason: FinishReason, error: str | None = None) -> None:
        """End a request: record its outcome, tell its listeners. Called holding the lock."""
        seq = handle.sequence
        seq.finish(reason)
        outcome = RequestOutcome(
            request_id=seq.request_id,
            status="cancelled" if reason == "cancelled" else "finished",
            usage=seq.usage,
        )
        self._active.pop(seq.request_id, None)
        self._recent[seq.request_id] = outcome
        self._recent.move_to_end(seq.request_id)
        while len(self._recent) > RECENT_OUTCOMES:
            self._recent.popitem(last=False)
        self.metrics.request_finished(reason)
        handle.emit(Finished(finish_reason=reason, usage=seq.usage, error=error))
        handle.resolve(outcome)
