"""Embeddings for vector stores, made the way a client's are: through the gateway's router.

``PlatformEmbedder.embed(tenant_id, key_id, texts)`` is called from worker threads (indexing,
and searches run off the event loop). It hands the call to the gateway's event loop, where it
leases a replica of the embeddings deployment from the router, posts ``/v1/embeddings`` in
batches, and records one usage event per batch for the tenant (endpoint ``embeddings``, the
model, its prompt tokens, priced by the price book), as the embeddings route's meter would.

``admit`` is the check before such work is accepted: a file added to a store (about a token
per 4 bytes of the file) or a search's queries must fit what the caller's credit, budget caps
and rate limits allow an embeddings call of that size, or the request is refused with the same
429. The embedding itself runs later (indexing) and is billed as it happens; a tenant whose
credit runs out while its files index is not stopped mid-file.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from datetime import datetime

import orjson

from tokenmill.billing.pricing import TokenUsage
from tokenmill.billing.usage import UsageEvent
from tokenmill.clock import Clock
from tokenmill.control.keys import Principal
from tokenmill.errors import ServiceUnavailable, UpstreamError
from tokenmill.gateway.admission import Admission
from tokenmill.gateway.directory import ModelDirectory
from tokenmill.gateway.metering import UsageSink
from tokenmill.gateway.relay import UpstreamClient
from tokenmill.gateway.routing import Router
from tokenmill.gateway.services import RequestIds

DEFAULT_MODEL = "all-minilm-l6-v2"
DEFAULT_BATCH = 32
CALL_TIMEOUT_SECONDS = 300.0

CostOf = Callable[[str, TokenUsage, datetime], int]


class PlatformEmbedder:
    def __init__(
        self,
        directory: ModelDirectory,
        router: Router,
        upstream: UpstreamClient,
        sink: Callable[[], UsageSink],
        clock: Clock,
        ids: RequestIds,
        cost_of: CostOf,
        *,
        model: str = DEFAULT_MODEL,
        batch_size: int = DEFAULT_BATCH,
    ) -> None:
        self._directory = directory
        self._router = router
        self._upstream = upstream
        self._sink = sink
        self._clock = clock
        self._ids = ids
        self._cost_of = cost_of
        self.model = model
        self.batch_size = batch_size
        self._loop: asyncio.AbstractEventLoop | None = None

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

    def embed(self, tenant_id: str, key_id: str, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order; from a thread other than the event loop's."""
        if self._loop is None:
            raise ServiceUnavailable("Embeddings for vector stores are not running yet.")
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            call = self.aembed(tenant_id, key_id, batch)
            future = asyncio.run_coroutine_threadsafe(call, self._loop)
            vectors.extend(future.result(CALL_TIMEOUT_SECONDS))
        return vectors

    async def admit(
        self, admission: Admission | None, principal: Principal, tokens: int, request_id: str
    ) -> None:
        """Refuses (429) embedding ``tokens`` for ``principal`` when an embeddings call of that
        size would be refused; reserves nothing (the work is billed as it runs)."""
        entry = self._directory.lookup(self.model)
        if admission is None or entry is None:
            return  # no admission here, or no model: the work itself will say so
        ticket = await admission.admit(
            principal, entry, 0, 1, 0, request_id, prompt_tokens=max(tokens, 1)
        )
        await ticket.release_now()

    async def aembed(self, tenant_id: str, key_id: str, texts: list[str]) -> list[list[float]]:
        """One batch, on the event loop: lease, post, read, release, meter."""
        entry = self._directory.lookup(self.model)
        if entry is None:
            raise ServiceUnavailable(f"The embeddings model '{self.model}' is not installed.")
        request_id = self._ids.new()
        started = self._clock.monotonic()
        payload = orjson.dumps({"model": entry.served_name, "input": texts})
        lease = await self._router.acquire(
            entry.served_name, tenant_id=tenant_id, tokens=sum(len(t) for t in texts) // 4
        )
        try:
            response = await self._upstream.post(lease.url + "/v1/embeddings", payload, request_id)
            try:
                body = await response.read(self._upstream.timeout_seconds)
            finally:
                response.release()
        finally:
            lease.release()
        if response.status != 200:
            raise UpstreamError(
                f"The embeddings deployment answered {response.status}: {body[:200]!r}"
            )
        reply = orjson.loads(body)
        data = sorted(reply["data"], key=lambda d: int(d["index"]))
        prompt_tokens = int((reply.get("usage") or {}).get("prompt_tokens") or 0)
        await self._record(tenant_id, key_id, entry.id, request_id, prompt_tokens, started)
        return [[float(v) for v in d["embedding"]] for d in data]

    async def _record(
        self,
        tenant_id: str,
        key_id: str,
        model: str,
        request_id: str,
        prompt_tokens: int,
        started_monotonic: float,
    ) -> None:
        created_at = self._clock.utcnow()
        cost = await asyncio.to_thread(
            self._cost_of, model, TokenUsage.clamped(prompt_tokens, 0, 0), created_at
        )
        durable = self._sink().record(
            UsageEvent(
                request_id=request_id,
                tenant_id=tenant_id,
                key_id=key_id,
                model=model,
                endpoint="embeddings",
                stream=False,
                prompt_tokens=prompt_tokens,
                cached_tokens=0,
                completion_tokens=0,
                ttft_seconds=None,
                duration_seconds=self._clock.monotonic() - started_monotonic,
                status="ok",
                http_status=200,
                error_code=None,
                created_at=created_at,
                cost_micros=cost,
            )
        )
        if inspect.isawaitable(durable):
            await durable
