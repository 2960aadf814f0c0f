"""The ``file_search`` tool of the Responses API, run by the platform over a tenant's stores.

A search embeds its query for the tenant (metered and limited like the vector store search
route: refused with the 429 an embeddings call would get) and searches each store the tool
names; the results of all stores are merged by score and cut to the tool's
``max_num_results``.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from tokenmill.control.keys import Principal
from tokenmill.errors import NotFound
from tokenmill.gateway.vector_stores import BYTES_PER_TOKEN
from tokenmill.knowledge.search import SearchOptions
from tokenmill.knowledge.service import VectorStoreService
from tokenmill.responses.request import FileSearchTool


class TenantSearch:
    def __init__(self, service: VectorStoreService | None, principal: Principal) -> None:
        self._service = service
        self._principal = principal

    async def check(self, tool: FileSearchTool, param: str) -> None:
        """Every store the tool names is the tenant's (else a 404 naming ``param``)."""
        service = self._require(param)
        for store_id in tool.vector_store_ids:
            try:
                await asyncio.to_thread(
                    service.repository.get_store, self._principal.tenant_id, store_id
                )
            except NotFound:
                raise NotFound(
                    f"No vector store found with id '{store_id}'.", param=param, code="not_found"
                ) from None

    async def search(self, tool: FileSearchTool, query: str) -> list[dict[str, Any]]:
        service = self._require("tools")
        principal = self._principal
        if service.admit is not None:
            tokens = -(-len(query.encode()) // BYTES_PER_TOKEN)
            await service.admit(principal, max(tokens, 1), f"fs-{secrets.token_hex(8)}")
        options = SearchOptions(
            queries=(query,), filters=tool.filters, max_num_results=tool.max_num_results
        )
        results: list[dict[str, Any]] = []
        for store_id in tool.vector_store_ids:
            page = await asyncio.to_thread(
                service.search, principal.tenant_id, principal.key_id, store_id, options
            )
            results.extend(
                {
                    "file_id": r.file_id,
                    "filename": r.filename,
                    "score": r.score,
                    "text": r.text,
                    "attributes": dict(r.attributes),
                }
                for r in page.results
            )
        results.sort(key=lambda r: -r["score"])
        return results[: tool.max_num_results]

    def _require(self, param: str) -> VectorStoreService:
        if self._service is None:
            raise NotFound("Vector stores are not enabled on this gateway.", param=param)
        return self._service
