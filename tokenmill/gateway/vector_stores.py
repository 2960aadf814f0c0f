"""The Vector Stores API family (OpenAI's shapes).

    POST   /v1/vector_stores                          name, metadata, expires_after, file_ids,
                                                      chunking_strategy
    GET    /v1/vector_stores?limit=&order=&after=&before=
    GET    /v1/vector_stores/{id}
    POST   /v1/vector_stores/{id}                     name, metadata, expires_after
    DELETE /v1/vector_stores/{id}
    POST   /v1/vector_stores/{id}/files               file_id, attributes, chunking_strategy
    GET    /v1/vector_stores/{id}/files?filter=&limit=&order=&after=&before=
    GET    /v1/vector_stores/{id}/files/{file_id}
    GET    /v1/vector_stores/{id}/files/{file_id}/content
    GET    /v1/vector_stores/{id}/files/{file_id}/chunks?limit=&after=   (tokenmill's own)
    POST   /v1/vector_stores/{id}/files/{file_id}     attributes
    DELETE /v1/vector_stores/{id}/files/{file_id}
    POST   /v1/vector_stores/{id}/file_batches        file_ids, attributes, chunking_strategy
    GET    /v1/vector_stores/{id}/file_batches/{batch_id}
    POST   /v1/vector_stores/{id}/file_batches/{batch_id}/cancel
    GET    /v1/vector_stores/{id}/file_batches/{batch_id}/files?filter=&...
    POST   /v1/vector_stores/{id}/search              query, filters, max_num_results, ...

Any key may use vector stores; a key sees only its tenant's stores, files and batches, and
another tenant's id is answered as if it did not exist (404). Adding a file enqueues its
indexing; a worker does it in the background. A file's chunks (tokenmill's extension) are
listed in position order, ``after`` a position. Database work runs in threads. Adding files
and searching embed text for the tenant: they are refused with the 429 an embeddings call of
that size would get (``insufficient_quota``, ``rate_limit_exceeded``) before anything is
recorded.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from tokenmill.control.keys import Principal
from tokenmill.errors import InvalidRequest, NotFound
from tokenmill.gateway.http import AUTHORIZATION, HttpRequest, Response, json_response
from tokenmill.gateway.listing import parse_limit, parse_position
from tokenmill.gateway.services import Services
from tokenmill.knowledge.chunking import check_fits, parse_chunking_strategy
from tokenmill.knowledge.filters import parse_attributes
from tokenmill.knowledge.pages import DEFAULT_LIST_LIMIT
from tokenmill.knowledge.repository import UNSET
from tokenmill.knowledge.search import parse_search
from tokenmill.knowledge.service import VectorStoreService
from tokenmill.knowledge.stores import (
    FILE_STATUSES,
    parse_expires_after,
    parse_metadata,
    parse_name,
)
from tokenmill.protocol.requests import parse_json_body

PATH_PARAM = "vector_store_path"
CREATE_FIELDS = frozenset(
    {"name", "metadata", "expires_after", "file_ids", "chunking_strategy", "description"}
)
MODIFY_FIELDS = frozenset({"name", "metadata", "expires_after"})
ADD_FILE_FIELDS = frozenset({"file_id", "attributes", "chunking_strategy"})
BATCH_FIELDS = frozenset({"file_ids", "attributes", "chunking_strategy"})
MAX_BATCH_FILES = 500
BYTES_PER_TOKEN = 4

Caller = tuple[Principal, VectorStoreService]
Action = Callable[[Caller, HttpRequest, list[str]], Awaitable[Response]]


async def _caller(services: Services, request: HttpRequest) -> Caller:
    principal = await services.keys.authenticate(request.header(AUTHORIZATION))
    if services.vector_stores is None:
        raise NotFound("The Vector Stores API is not enabled on this gateway.", code="not_found")
    return principal, services.vector_stores


async def _body(request: HttpRequest, allowed: frozenset[str]) -> dict[str, Any]:
    body = parse_json_body(await request.body())
    extra = sorted(k for k in body if k not in allowed)
    if extra:
        raise InvalidRequest(f"Unknown parameter: {extra[0]}.", param=extra[0])
    return body


def _page_args(request: HttpRequest) -> dict[str, Any]:
    query = request.query()
    return {
        "limit": parse_limit(query, DEFAULT_LIST_LIMIT),
        "order": query.get("order") or "desc",
        "after": query.get("after") or None,
        "before": query.get("before") or None,
    }


def _status_filter(request: HttpRequest) -> str | None:
    status = request.query().get("filter") or None
    if status is not None and status not in FILE_STATUSES:
        raise InvalidRequest(
            f"Invalid 'filter': {status!r}; expected one of {', '.join(FILE_STATUSES)}.",
            param="filter",
        )
    return status


async def _afford(
    service: VectorStoreService,
    principal: Principal,
    request: HttpRequest,
    *,
    file_ids: list[str] | None = None,
    texts: tuple[str, ...] = (),
) -> None:
    """Refuses (429) work that embeds more than the caller can afford: the files' text (about
    a token per ``BYTES_PER_TOKEN`` bytes of each file) or the search's queries."""
    if service.admit is None:
        return
    size = sum(len(t.encode()) for t in texts)
    if file_ids:
        size += await asyncio.to_thread(service.upload_bytes, principal.tenant_id, file_ids)
    if size:
        request_id = request.request_id or f"vs-{secrets.token_hex(8)}"
        await service.admit(principal, -(-size // BYTES_PER_TOKEN), request_id)


def _file_ids(raw: object) -> list[str]:
    if (
        not isinstance(raw, list)
        or not 1 <= len(raw) <= MAX_BATCH_FILES
        or not all(isinstance(f, str) and f for f in raw)
    ):
        raise InvalidRequest(
            f"file_ids must be a list of 1 to {MAX_BATCH_FILES} file ids.", param="file_ids"
        )
    return list(raw)


def _strategy(service: VectorStoreService, raw: object) -> Any:
    strategy = parse_chunking_strategy(raw, service.auto)
    check_fits(strategy, service.auto, "chunking_strategy")
    return strategy


# ---- the collection -----------------------------------------------------------------------


async def create_store(services: Services, request: HttpRequest) -> Response:
    principal, service = await _caller(services, request)
    body = await _body(request, CREATE_FIELDS)
    name = parse_name(body.get("name"))
    metadata = parse_metadata(body.get("metadata"))
    expires_after = parse_expires_after(body.get("expires_after"))
    file_ids = _file_ids(body["file_ids"]) if body.get("file_ids") is not None else []
    strategy = _strategy(service, body.get("chunking_strategy"))
    tenant_id, key_id = principal.tenant_id, principal.key_id
    await _afford(service, principal, request, file_ids=file_ids)

    def create() -> dict[str, Any]:
        store = service.repository.create_store(
            tenant_id, name=name, metadata=metadata, expires_after=expires_after
        )
        if not file_ids:
            return store.as_openai()
        try:
            service.create_batch(tenant_id, key_id, store.id, file_ids, {}, strategy)
        except BaseException:
            service.repository.delete_store(tenant_id, store.id)
            raise
        return service.repository.get_store(tenant_id, store.id).as_openai()

    return json_response(await asyncio.to_thread(create))


async def list_stores(services: Services, request: HttpRequest) -> Response:
    principal, service = await _caller(services, request)
    page = await asyncio.to_thread(
        service.repository.list_stores, principal.tenant_id, **_page_args(request)
    )
    return json_response(page.as_openai())


# ---- one store and what is under it -------------------------------------------------------


async def store_get(services: Services, request: HttpRequest) -> Response:
    return await _dispatch(services, request, GET)


async def store_post(services: Services, request: HttpRequest) -> Response:
    return await _dispatch(services, request, POST)


async def store_delete(services: Services, request: HttpRequest) -> Response:
    return await _dispatch(services, request, DELETE)


async def _dispatch(
    services: Services, request: HttpRequest, table: dict[tuple[str, ...], Action]
) -> Response:
    """Matches the path under ``/v1/vector_stores/`` against a shape such as
    ``("files", "*")`` (``*`` is an id) and runs its action with the ids in the path."""
    caller = await _caller(services, request)
    parts = request.path_params[PATH_PARAM].split("/")
    shape = tuple("*" if i % 2 else p for i, p in enumerate(parts[1:]))
    action = table.get(shape) if all(parts) else None
    if action is None:
        raise NotFound(f"No route {request.method} {request.path}.", code="not_found")
    return await action(caller, request, [parts[0], *parts[2::2]])


async def _get_store(caller: Caller, request: HttpRequest, ids: list[str]) -> Response:
    principal, service = caller
    info = await asyncio.to_thread(service.repository.get_store, principal.tenant_id, ids[0])
    return json_response(info.as_openai())


async def _modify_store(caller: Caller, request: HttpRequest, ids: list[str]) -> Response:
    principal, service = caller
    body = await _body(request, MODIFY_FIELDS)
    changes: dict[str, Any] = {
        "name": parse_name(body["name"]) if "name" in body else UNSET,
        "metadata": parse_metadata(body["metadata"]) if "metadata" in body else UNSET,
        "expires_after": (
            parse_expires_after(body["expires_after"]) if "expires_after" in body else UNSET
        ),
    }
    info = await asyncio.to_thread(
        lambda: service.repository.modify_store(principal.tenant_id, ids[0], **changes)
    )
    return json_response(info.as_openai())


async def _delete_store(caller: Caller, request: HttpRequest, ids: list[str]) -> Response:
    principal, service = caller
    gone = await asyncio.to_thread(service.repository.delete_store, principal.tenant_id, ids[0])
    return json_response(gone)


async def _add_file(caller: Caller, request: HttpRequest, ids: list[str]) -> Response:
    principal, service = caller
    body = await _body(request, ADD_FILE_FIELDS)
    file_id = body.get("file_id")
    if not isinstance(file_id, str) or not file_id:
        raise InvalidRequest("Missing required parameter: 'file_id'.", param="file_id")
    attributes = parse_attributes(body.get("attributes"))
    strategy = _strategy(service, body.get("chunking_strategy"))
    await _afford(service, principal, request, file_ids=[file_id])
    info = await asyncio.to_thread(
        service.add_file,
        principal.tenant_id,
        principal.key_id,
        ids[0],
        file_id,
        dict(attributes),
        strategy,
    )
    return json_response(info.as_openai())


async def _list_files(caller: Caller, request: HttpRequest, ids: list[str]) -> Response:
    principal, service = caller
    args = _page_args(request)
    status = _status_filter(request)
    batch_id = ids[1] if len(ids) > 1 else None
    tenant_id = principal.tenant_id

    def listing() -> dict[str, Any]:
        if batch_id is not None:
            service.repository.get_batch(tenant_id, ids[0], batch_id)
        page = service.repository.list_files(
            tenant_id, ids[0], status=status, batch_id=batch_id, **args
        )
        return page.as_openai()

    return json_response(await asyncio.to_thread(listing))


async def _get_file(caller: Caller, request: HttpRequest, ids: list[str]) -> Response:
    principal, service = caller
    info = await asyncio.to_thread(service.repository.get_file, principal.tenant_id, ids[0], ids[1])
    return json_response(info.as_openai())


async def _file_content(caller: Caller, request: HttpRequest, ids: list[str]) -> Response:
    """The file's indexed text as one text part (empty until it is indexed)."""
    principal, service = caller
    text = await asyncio.to_thread(service.chunks.file_text, principal.tenant_id, ids[0], ids[1])
    data = [{"type": "text", "text": text}] if text else []
    return json_response(
        {
            "object": "vector_store.file_content.page",
            "data": data,
            "has_more": False,
            "next_page": None,
        }
    )


async def _file_chunks(caller: Caller, request: HttpRequest, ids: list[str]) -> Response:
    """The file's chunks in position order, a page of them (none until it is indexed)."""
    principal, service = caller
    query = request.query()
    limit, after = parse_limit(query, DEFAULT_LIST_LIMIT), parse_position(query, "after")
    page = await asyncio.to_thread(
        lambda: service.chunks.file_chunks(
            principal.tenant_id, ids[0], ids[1], limit=limit, after=after
        )
    )
    return json_response(page.as_openai())


async def _update_file(caller: Caller, request: HttpRequest, ids: list[str]) -> Response:
    principal, service = caller
    body = await _body(request, frozenset({"attributes"}))
    if "attributes" not in body:
        raise InvalidRequest("Missing required parameter: 'attributes'.", param="attributes")
    attributes = dict(parse_attributes(body["attributes"]))
    info = await asyncio.to_thread(
        service.repository.update_attributes, principal.tenant_id, ids[0], ids[1], attributes
    )
    return json_response(info.as_openai())


async def _delete_file(caller: Caller, request: HttpRequest, ids: list[str]) -> Response:
    principal, service = caller
    gone = await asyncio.to_thread(
        service.repository.delete_file, principal.tenant_id, ids[0], ids[1]
    )
    return json_response(gone)


async def _create_batch(caller: Caller, request: HttpRequest, ids: list[str]) -> Response:
    principal, service = caller
    body = await _body(request, BATCH_FIELDS)
    file_ids = _file_ids(body.get("file_ids"))
    attributes = dict(parse_attributes(body.get("attributes")))
    strategy = _strategy(service, body.get("chunking_strategy"))
    await _afford(service, principal, request, file_ids=file_ids)
    info = await asyncio.to_thread(
        service.create_batch,
        principal.tenant_id,
        principal.key_id,
        ids[0],
        file_ids,
        attributes,
        strategy,
    )
    return json_response(info.as_openai())


async def _get_batch(caller: Caller, request: HttpRequest, ids: list[str]) -> Response:
    principal, service = caller
    info = await asyncio.to_thread(
        service.repository.get_batch, principal.tenant_id, ids[0], ids[1]
    )
    return json_response(info.as_openai())


async def _cancel_batch(caller: Caller, request: HttpRequest, ids: list[str]) -> Response:
    principal, service = caller
    info = await asyncio.to_thread(
        service.repository.cancel_batch, principal.tenant_id, ids[0], ids[1]
    )
    return json_response(info.as_openai())


async def _search(caller: Caller, request: HttpRequest, ids: list[str]) -> Response:
    principal, service = caller
    options = parse_search(parse_json_body(await request.body()))
    await asyncio.to_thread(service.repository.get_store, principal.tenant_id, ids[0])  # or 404
    await _afford(service, principal, request, texts=options.queries)
    page = await asyncio.to_thread(
        service.search, principal.tenant_id, principal.key_id, ids[0], options
    )
    return json_response(page.as_openai())


GET: dict[tuple[str, ...], Action] = {
    (): _get_store,
    ("files",): _list_files,
    ("files", "*"): _get_file,
    ("files", "*", "content"): _file_content,
    ("files", "*", "chunks"): _file_chunks,
    ("file_batches", "*"): _get_batch,
    ("file_batches", "*", "files"): _list_files,
}
POST: dict[tuple[str, ...], Action] = {
    (): _modify_store,
    ("files",): _add_file,
    ("files", "*"): _update_file,
    ("file_batches",): _create_batch,
    ("file_batches", "*", "cancel"): _cancel_batch,
    ("search",): _search,
}
DELETE: dict[tuple[str, ...], Action] = {
    (): _delete_store,
    ("files", "*"): _delete_file,
}
