"""Everything the gateway's routes use, built once at start and held by the app's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
from dataclasses import dataclass, field
from typing import Protocol

from tokenmill.billing.usage import UsageEvent
from tokenmill.clock import Clock, SystemClock
from tokenmill.control.keys import Principal
from tokenmill.gateway.directory import ModelDirectory
from tokenmill.gateway.relay import UpstreamClient
from tokenmill.gateway.routing import Router


class Authenticator(Protocol):
    async def authenticate(self, authorization: str | None) -> Principal: ...


class BackgroundLoop(Protocol):
    async def run(self) -> None: ...


class UsageRecorder(Protocol):
    def record(self, event: UsageEvent) -> None: ...

    async def aflush(self, timeout_seconds: float | None = None) -> bool: ...


class RequestIds:
    """Unique across processes (a random prefix per process) and cheap (a counter)."""

    def __init__(self) -> None:
        self._prefix = f"req_{secrets.token_hex(8)}"
        self._counter = itertools.count(1)

    def new(self) -> str:
        return f"{self._prefix}{next(self._counter):012x}"


@dataclass(slots=True)
class Services:
    keys: Authenticator
    recorder: UsageRecorder
    directory: ModelDirectory
    router: Router
    upstream: UpstreamClient
    clock: Clock = field(default_factory=SystemClock)
    loops: list[BackgroundLoop] = field(default_factory=list)
    ids: RequestIds = field(default_factory=RequestIds)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        await self.upstream.start()
        self._tasks = [asyncio.create_task(loop.run()) for loop in self.loops]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.upstream.close()
        await self.recorder.aflush()
