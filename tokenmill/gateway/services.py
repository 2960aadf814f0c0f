"""Everything the gateway's routes use, built once at start and held by the app's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
from dataclasses import dataclass, field
from typing import Protocol

from tokenmill.apps.repository import AppRepository
from tokenmill.batches.service import BatchService
from tokenmill.billing.journal import UsageJournal
from tokenmill.billing.usage import UsageEvent
from tokenmill.clock import Clock, SystemClock
from tokenmill.control.auth_throttle import AuthThrottle
from tokenmill.control.keys import Principal
from tokenmill.files.service import FileService
from tokenmill.gateway.admin import AdminApi
from tokenmill.gateway.admission import Admission
from tokenmill.gateway.directory import ModelDirectory
from tokenmill.gateway.metering import UsageSink
from tokenmill.gateway.metrics import GatewayMetrics, ObservedSink
from tokenmill.gateway.relay import UpstreamClient
from tokenmill.gateway.routing import Router
from tokenmill.knowledge.service import VectorStoreService
from tokenmill.plugins.service import McpService
from tokenmill.protocol.tiers import DEFAULT_TTFT_TARGETS
from tokenmill.responses.repository import ResponseRepository
from tokenmill.tuning.service import FineTuningService


class Authenticator(Protocol):
    async def authenticate(self, authorization: str | None) -> Principal: ...

    def known_valid(self, secret: str | None) -> bool: ...


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
    admission: Admission | None = None  # budgets and limits; None admits everything
    journal: UsageJournal | None = None  # durable usage, in front of ``recorder``
    admin: AdminApi | None = None  # the /admin/v1 API
    files: FileService | None = None  # the /v1/files API
    vector_stores: VectorStoreService | None = None  # the /v1/vector_stores API
    batches: BatchService | None = None  # the /v1/batches API
    fine_tuning: FineTuningService | None = None  # the /v1/fine_tuning API
    responses: ResponseRepository | None = None  # the /v1/responses API
    mcp: McpService | None = None  # tenants' MCP servers (registry, guard, client)
    apps: AppRepository | None = None  # tenants' Apps (/v1/apps, prompt on /v1/responses)
    metrics: GatewayMetrics | None = None  # GET /metrics
    auth_throttle: AuthThrottle | None = None  # failed authentication, per address and prefix
    ttft_targets: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TTFT_TARGETS))
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def sink(self) -> UsageSink:
        sink: UsageSink = self.journal if self.journal is not None else self.recorder
        return sink if self.metrics is None else ObservedSink(sink, self.metrics)

    async def start(self) -> None:
        await self.upstream.start()
        loops = list(self.loops)
        if self.admission is not None:
            await self.admission.start()
            loops.append(self.admission.sync)
        self._tasks = [asyncio.create_task(loop.run()) for loop in loops]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.upstream.close()
        if self.admission is not None:
            await self.admission.close()
        if self.journal is not None:
            await asyncio.to_thread(self.journal.close)
        await self.recorder.aflush()
