"""Model calls the platform makes for a tenant, outside any client request: through the
gateway's router, metered to the tenant like the same call made by a client.

A ``PlatformCaller`` runs as one of the gateway's background loops, so it knows the gateway's
event loop (which owns the router and the upstream connections). Worker threads (indexing,
batches) hand it a coroutine with ``run``; on the loop, ``post`` leases a replica of the
model from the router, posts the body to an OpenAI path (``/v1/chat/completions``,
``/v1/completions``, ``/v1/embeddings``; never streamed), reads the whole reply, releases the
replica, and records one usage event for a 200 reply: the endpoint, the model, the tokens the
reply reports, and its cost from the price book times ``price_factor`` (1 for calls billed as
interactive ones, less for batch work), rounded up to a whole micro-unit.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Any, TypeVar

import orjson

from tokenmill.billing.pricing import TokenUsage
from tokenmill.billing.usage import UsageEvent
from tokenmill.clock import Clock
from tokenmill.errors import ServiceUnavailable
from tokenmill.gateway.directory import ModelDirectory, ModelEntry
from tokenmill.gateway.metering import TokenCounts, UsageSink
from tokenmill.gateway.relay import UpstreamClient
from tokenmill.gateway.routing import Router
from tokenmill.gateway.services import RequestIds
from tokenmill.protocol.tenancy import Priority, Tenancy
from tokenmill.protocol.tiers import ServiceTier

CALL_TIMEOUT_SECONDS = 300.0

CostOf = Callable[[str, TokenUsage, datetime], int]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PlatformReply:
    status: int
    body: bytes
    request_id: str


def endpoint_of(path: str) -> str:
    """``/v1/chat/completions`` → ``chat.completions``, the name usage events carry."""
    return path.removeprefix("/v1/").replace("/", ".")


def scaled_cost(cost_micros: int, factor: Fraction) -> int:
    """``cost_micros`` times ``factor``, rounded up: integers only, as money is."""
    return math.ceil(cost_micros * factor)


class PlatformCaller:
    def __init__(
        self,
        directory: ModelDirectory,
        router: Router,
        upstream: UpstreamClient,
        sink: Callable[[], UsageSink],
        clock: Clock,
        ids: RequestIds,
        cost_of: CostOf,
    ) -> None:
        self._directory = directory
        self._router = router
        self._upstream = upstream
        self._sink = sink
        self._clock = clock
        self._ids = ids
        self._cost_of = cost_of
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def directory(self) -> ModelDirectory:
        return self._directory

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The gateway's event loop, which owns the router and the upstream connections."""
        self._loop = loop

    async def run(self) -> None:
        """As a background loop: binds the gateway's event loop while the gateway runs."""
        self.bind(asyncio.get_running_loop())
        try:
            await asyncio.Event().wait()
        finally:
            self._loop = None

    def run_threadsafe(
        self, call: Coroutine[Any, Any, T], timeout_seconds: float = CALL_TIMEOUT_SECONDS
    ) -> T:
        """Runs ``call`` on the gateway's loop and waits for it, from another thread."""
        if self._loop is None:
            call.close()
            raise ServiceUnavailable("The platform's model calls are not running yet.")
        return asyncio.run_coroutine_threadsafe(call, self._loop).result(timeout_seconds)

    async def post(
        self,
        tenant_id: str,
        key_id: str,
        entry: ModelEntry,
        path: str,
        body: dict[str, Any],
        *,
        price_factor: Fraction = Fraction(1),
        priority: Priority = Priority.DEFAULT,
    ) -> PlatformReply:
        """One call, on the event loop: lease, post, read, release, meter (a 200 reply)."""
        request_id = self._ids.new()
        started = self._clock.monotonic()
        payload = orjson.dumps({**body, "model": entry.upstream_model})
        lease = await self._router.acquire(
            entry.runs_on, tenant_id=tenant_id, tokens=len(payload) // 4
        )
        try:
            response = await self._upstream.post(
                lease.url + path,
                payload,
                request_id,
                Tenancy(tenant_id, priority=priority, adapter=entry.adapter),
            )
            try:
                data = await response.read(self._upstream.timeout_seconds)
            finally:
                response.release()
        finally:
            lease.release()
        if response.status == 200:
            tokens = TokenCounts.from_openai(orjson.loads(data).get("usage")) or TokenCounts()
            event = UsageEvent(
                request_id=request_id,
                tenant_id=tenant_id,
                key_id=key_id,
                model=entry.id,
                endpoint=endpoint_of(path),
                stream=False,
                prompt_tokens=tokens.prompt_tokens,
                cached_tokens=tokens.cached_tokens,
                completion_tokens=tokens.completion_tokens,
                ttft_seconds=None,
                duration_seconds=self._clock.monotonic() - started,
                status="ok",
                http_status=200,
                error_code=None,
                created_at=self._clock.utcnow(),
                service_tier=ServiceTier.of(priority),
            )
            await self._record(event, price_factor)
        return PlatformReply(response.status, data, request_id)

    async def _record(self, event: UsageEvent, price_factor: Fraction) -> None:
        """Prices the event by the price book (times ``price_factor``) and records it."""
        usage = TokenUsage.clamped(
            event.prompt_tokens, event.cached_tokens, event.completion_tokens
        )
        cost = await asyncio.to_thread(self._cost_of, event.model, usage, event.created_at)
        durable = self._sink().record(event.with_cost(scaled_cost(cost, price_factor)))
        if inspect.isawaitable(durable):
            await durable
