"""Runs embedding forward passes on one worker thread, off the event loop.

Requests that arrive while a pass runs wait together and go into the next pass as one batch
(up to ``max_batch_inputs`` inputs, and always at least one whole request), so a burst of small
requests costs a few forward passes rather than one each.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tokenmill.engine.embed.model import Vectors

log = logging.getLogger(__name__)

EmbedFn = Callable[[Sequence[Sequence[int]]], Vectors]


@dataclass(slots=True)
class _Job:
    tokens: list[list[int]]
    future: asyncio.Future[Vectors]
    loop: asyncio.AbstractEventLoop


class Batcher:
    def __init__(self, embed: EmbedFn, *, max_batch_inputs: int) -> None:
        if max_batch_inputs < 1:
            raise ValueError("max_batch_inputs must be at least 1")
        self._embed = embed
        self._max_batch_inputs = max_batch_inputs
        self._jobs: deque[_Job] = deque()
        self._wakeup = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.running = 0  # requests in the forward pass under way

    @property
    def waiting(self) -> int:
        return len(self._jobs)

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="embed-batcher", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Finishes the pass under way; requests still waiting fail as cancelled."""
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        while self._jobs:
            job = self._jobs.popleft()
            job.loop.call_soon_threadsafe(job.future.cancel)

    async def submit(self, tokens: list[list[int]]) -> Vectors:
        if self._thread is None:
            raise RuntimeError("the batcher is not running")
        loop = asyncio.get_running_loop()
        job = _Job(tokens, loop.create_future(), loop)
        with self._wakeup:
            self._jobs.append(job)
            self._wakeup.notify()
        return await job.future

    def _take(self) -> list[_Job] | None:
        with self._wakeup:
            while not self._jobs and not self._stopping:
                self._wakeup.wait()
            if self._stopping:
                return None
            batch = [self._jobs.popleft()]
            inputs = len(batch[0].tokens)
            while self._jobs and inputs + len(self._jobs[0].tokens) <= self._max_batch_inputs:
                job = self._jobs.popleft()
                batch.append(job)
                inputs += len(job.tokens)
            self.running = len(batch)
            return batch

    def _work(self) -> None:
        while (batch := self._take()) is not None:
            live = [job for job in batch if not job.future.cancelled()]  # clients gone
            try:
                if live:
                    self._run(live)
            finally:
                self.running = 0

    def _run(self, batch: list[_Job]) -> None:
        try:
            vectors = self._embed([ids for job in batch for ids in job.tokens])
        except Exception as exc:
            log.exception("an embedding forward pass failed")
            for job in batch:
                job.loop.call_soon_threadsafe(_fail, job.future, exc)
            return
        start = 0
        for job in batch:
            end = start + len(job.tokens)
            job.loop.call_soon_threadsafe(_resolve, job.future, vectors[start:end])
            start = end


def _resolve(future: asyncio.Future[Vectors], vectors: Vectors) -> None:
    if not future.done():
        future.set_result(vectors)


def _fail(future: asyncio.Future[Vectors], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)
