"""Embeddings for vector stores, made the way a client's are: through the gateway's router.

``PlatformEmbedder.embed(tenant_id, key_id, texts)`` is called from worker threads (indexing,
and searches run off the event loop). It is a ``PlatformCaller``: it hands each batch of texts
to the gateway's event loop, which posts ``/v1/embeddings`` to a replica of the embeddings
deployment and records one usage event per batch for the tenant (endpoint ``embeddings``, the
model, its prompt tokens, priced by the price book), as the embeddings route's meter would.

``admit`` is the check before such work is accepted: a file added to a store (about a token
per 4 bytes of the file) or a search's queries must fit what the caller's credit, budget caps
and rate limits allow an embeddings call of that size, or the request is refused with the same
429. The embedding itself runs later (indexing) and is billed as it happens; a tenant whose
credit runs out while its files index is not stopped mid-file.
"""

from __future__ import annotations

from typing import Any

import orjson

from tokenmill.control.keys import Principal
from tokenmill.errors import ServiceUnavailable, UpstreamError
from tokenmill.gateway.admission import Admission
from tokenmill.gateway.platform_calls import PlatformCaller

DEFAULT_MODEL = "all-minilm-l6-v2"
DEFAULT_BATCH = 32


class PlatformEmbedder(PlatformCaller):
    """A ``PlatformCaller`` (same arguments) that embeds texts ``batch_size`` at a time."""

    def __init__(
        self, *caller: Any, model: str = DEFAULT_MODEL, batch_size: int = DEFAULT_BATCH
    ) -> None:
        super().__init__(*caller)
        self.model = model
        self.batch_size = batch_size

    def embed(self, tenant_id: str, key_id: str, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order; from a thread other than the event loop's."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            vectors.extend(self.run_threadsafe(self.aembed(tenant_id, key_id, batch)))
        return vectors

    async def admit(
        self, admission: Admission | None, principal: Principal, tokens: int, request_id: str
    ) -> None:
        """Refuses (429) embedding ``tokens`` for ``principal`` when an embeddings call of that
        size would be refused; reserves nothing (the work is billed as it runs)."""
        entry = self.directory.lookup(self.model)
        if admission is None or entry is None:
            return  # no admission here, or no model: the work itself will say so
        ticket = await admission.admit(
            principal, entry, 0, 1, 0, request_id, prompt_tokens=max(tokens, 1)
        )
        await ticket.release_now()

    async def aembed(self, tenant_id: str, key_id: str, texts: list[str]) -> list[list[float]]:
        """One batch, on the event loop: one metered call of the embeddings deployment."""
        entry = self.directory.lookup(self.model)
        if entry is None:
            raise ServiceUnavailable(f"The embeddings model '{self.model}' is not installed.")
        reply = await self.post(tenant_id, key_id, entry, "/v1/embeddings", {"input": texts})
        if reply.status != 200:
            raise UpstreamError(
                f"The embeddings deployment answered {reply.status}: {reply.body[:200]!r}"
            )
        data = sorted(orjson.loads(reply.body)["data"], key=lambda d: int(d["index"]))
        return [[float(v) for v in d["embedding"]] for d in data]
