"""The MCP sessions of one response: one per server, opened by its first operation (listing
its tools) and kept for the calls that follow, until the response ends (``close``).

Opening a session is most of what an operation costs (the SDK discovers the protocol version,
initializes, and later terminates: about 75 ms on a local server against about 12 ms for a
call within a session). The SDK's contexts must be left in the task that entered them, and a
response's rounds may run in different tasks (a stream is sent by another), so each session
lives in a task of its own and takes its operations one at a time from a queue. An operation
that runs past ``timeout_seconds`` ends its session (the next one opens a new session); an
error of one call leaves the session to the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from mcp.client.client import Client

from tokenmill.plugins.client import Endpoint, McpClient, McpFailure

CLOSE_SECONDS = 5.0
Work = Callable[[Client], Awaitable[Any]]


class Sessions:
    def __init__(self, client: McpClient) -> None:
        self._client = client
        self._open: dict[str, _Session] = {}

    async def run(self, endpoint: Endpoint, work: Work) -> Any:
        """``work`` in the server's session (opened now if it is not); raises ``McpFailure``."""
        session = self._open.get(endpoint.label)
        if session is None or session.ended:
            session = self._open[endpoint.label] = _Session(self._client, endpoint)
        return await session.run(work)

    async def close(self) -> None:
        """Ends every session (politely: each is told, and given a moment to say goodbye)."""
        sessions, self._open = list(self._open.values()), {}
        for session in sessions:
            await session.close()


class _Session:
    def __init__(self, client: McpClient, endpoint: Endpoint) -> None:
        self._client = client
        self._endpoint = endpoint
        self._queue: asyncio.Queue[tuple[Work, asyncio.Future[Any]] | None] = asyncio.Queue()
        self.ended = False
        self._task = asyncio.create_task(self._serve())

    async def run(self, work: Work) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((work, future))
        return await future

    async def close(self) -> None:
        self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._task), CLOSE_SECONDS)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _serve(self) -> None:
        pending: asyncio.Future[Any] | None = None
        timeout = self._client.timeout_seconds
        try:
            with anyio.CancelScope() as scope:
                scope.deadline = anyio.current_time() + timeout  # to open the session
                async with self._client.connected(self._endpoint) as client:
                    while True:
                        scope.deadline = math.inf  # idle between the loop's rounds
                        entry = await self._queue.get()
                        if entry is None:
                            self.ended = True
                            return
                        work, pending = entry
                        scope.deadline = anyio.current_time() + timeout
                        try:
                            result = await work(client)
                        except Exception as error:  # this call's; the session goes on
                            pending.set_exception(self._client.failed(self._endpoint, error))
                        else:
                            pending.set_result(result)
                        pending = None
            failure = self._client.timed_out(self._endpoint)  # the deadline cancelled it
        except Exception as error:  # could not open, or the connection broke
            failure = self._client.failed(self._endpoint, error)
        self.ended = True
        if pending is not None and not pending.done():
            pending.set_exception(failure)
        while not self._queue.empty():
            entry = self._queue.get_nowait()
            if entry is not None and not entry[1].done():
                entry[1].set_exception(McpFailure(str(failure)))
