"""The async face of the engine: requests in, events out (the step loop is ``Engine``'s).

``submit`` queues a request for the worker thread and hands back its events; ``abort`` and
``cancel`` ask for one to end. Both sides meet under ``_lock``: ``_incoming`` and ``_aborts``
are what the worker takes at its next step, ``_active`` what it is working on, ``_recent``
how the last requests ended.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import AsyncGenerator

from tokenmill.clock import Clock
from tokenmill.engine.adapters import AdapterCache
from tokenmill.engine.blocks import BLOCK_TOKENS
from tokenmill.engine.request import EngineEvent, EngineRequest, Finished, RequestOutcome
from tokenmill.engine.scheduler import Scheduler
from tokenmill.engine.seams import Handle
from tokenmill.engine.sequence import Sequence
from tokenmill.errors import ContextLengthExceeded, InvalidRequest, ServiceUnavailable


class EngineFace:
    _clock: Clock
    _scheduler: Scheduler
    _lock: threading.Condition
    _incoming: list[Handle]
    _aborts: set[str]
    _active: dict[str, Handle]
    _recent: OrderedDict[str, RequestOutcome]
    _stopping: bool
    _thread: threading.Thread | None
    adapters: AdapterCache

    def submit(self, request: EngineRequest) -> AsyncGenerator[EngineEvent, None]:
        """Queue a request; its iterator yields text deltas and, last, a ``Finished``.

        Call from a coroutine. Closing the iterator early (a client that went away) cancels
        the request. A request's adapter is loaded here if it is not yet (pin it beforehand,
        off the event loop, to keep this quick).
        """
        loop = asyncio.get_running_loop()
        handle = Handle(
            sequence=Sequence(request, arrival_seconds=self._clock.monotonic()),
            loop=loop,
            events=asyncio.Queue(),
            outcome=loop.create_future(),
        )
        needed = len(request.prompt_tokens) + request.max_tokens
        if not self._scheduler.can_ever_fit(needed):
            raise ContextLengthExceeded(
                f"The request needs {needed} KV cache cells (prompt plus max_tokens); this "
                f"engine's cache holds {self._scheduler.blocks.total_blocks * BLOCK_TOKENS}.",
                param="max_tokens",
            )
        if request.adapter is not None:
            self.adapters.pin(request.adapter)
        try:
            self._enqueue(handle)
        except BaseException:
            if request.adapter is not None:
                self.adapters.unpin(request.adapter)
            raise
        return self._events(handle)

    def _enqueue(self, handle: Handle) -> None:
        request_id = handle.sequence.request_id
        with self._lock:
            if self._stopping or self._thread is None:
                raise ServiceUnavailable("The engine is not running.")
            if request_id in self._active:
                raise InvalidRequest(
                    f"A request with id {request_id!r} is already in progress.",
                    code="duplicate_request_id",
                )
            self._active[request_id] = handle
            self._incoming.append(handle)
            self._lock.notify_all()

    def abort(self, request_id: str) -> None:
        """Ask for a request to end at the next step; a no-op for an unknown or ended one."""
        with self._lock:
            if request_id in self._active:
                self._aborts.add(request_id)
                self._lock.notify_all()

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

    async def _events(self, handle: Handle) -> AsyncGenerator[EngineEvent, None]:
        try:
            while True:
                event = await handle.events.get()
                yield event
                if isinstance(event, Finished):
                    return
        finally:
            self.abort(handle.sequence.request_id)
