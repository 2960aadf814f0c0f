"""A request's ``n`` choices: one engine sequence each, their events merged into one stream.

Choice ``i`` of request ``r`` runs as ``r/i`` (``/`` never appears in a caller's request id)
with seed ``seed + i``, so that seeded choices differ from each other yet reproduce.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator
from collections.abc import Sequence as SequenceOf
from dataclasses import replace

from tokenmill.engine.request import EngineEvent, EngineRequest

RECENT_GROUPS = 1000


def choice_requests(request: EngineRequest) -> list[EngineRequest]:
    n = request.sampling.n
    if n == 1:
        return [request]
    seed = request.sampling.seed
    return [
        replace(
            request,
            request_id=f"{request.request_id}/{i}",
            sampling=replace(request.sampling, seed=None if seed is None else seed + i),
        )
        for i in range(n)
    ]


class ChoiceGroups:
    """Which engine requests a caller's request id stands for, for cancelling them all.

    Only requests with more than one choice are kept (the most recent ``limit``); any other
    id stands for itself.
    """

    def __init__(self, limit: int = RECENT_GROUPS) -> None:
        self._limit = limit
        self._members: OrderedDict[str, tuple[str, ...]] = OrderedDict()

    def record(self, request_id: str, members: SequenceOf[str]) -> None:
        if tuple(members) == (request_id,):
            self._members.pop(request_id, None)  # a reused id no longer names the old group
            return
        self._members[request_id] = tuple(members)
        self._members.move_to_end(request_id)
        while len(self._members) > self._limit:
            self._members.popitem(last=False)

    def members(self, request_id: str) -> tuple[str, ...]:
        return self._members.get(request_id, (request_id,))


async def merge(
    streams: SequenceOf[AsyncIterator[EngineEvent]],
) -> AsyncGenerator[tuple[int, EngineEvent], None]:
    """Events of all choices as they come, each with its choice's index, until all have ended.

    Closing this iterator early cancels the readers, and so (through the engine's iterators)
    the choices.
    """
    queue: asyncio.Queue[tuple[int, EngineEvent | None]] = asyncio.Queue()

    async def read(index: int, events: AsyncIterator[EngineEvent]) -> None:
        try:
            async for event in events:
                queue.put_nowait((index, event))
        finally:
            queue.put_nowait((index, None))

    readers = [asyncio.ensure_future(read(i, events)) for i, events in enumerate(streams)]
    try:
        remaining = len(readers)
        while remaining:
            index, event = await queue.get()
            if event is None:
                remaining -= 1
            else:
                yield index, event
    finally:
        for reader in readers:
            reader.cancel()
