"""The Batch API family (OpenAI's shapes).

    POST /v1/batches                  input_file_id, endpoint, completion_window, metadata
    GET  /v1/batches?limit=&after=
    GET  /v1/batches/{id}
    POST /v1/batches/{id}/cancel

Any key may run batches; a key sees only its tenant's batches, and another tenant's batch id
is answered as if it did not exist (404). Creating a batch checks the request and the input
file (the tenant's, purpose ``batch``) and enqueues its run; a worker runs it in the
background (``batches.execution``). Database work runs in threads.
"""

from __future__ import annotations

import asyncio

from tokenmill.batches.objects import parse_completion_window, parse_endpoint
from tokenmill.batches.repository import DEFAULT_LIST_LIMIT
from tokenmill.batches.service import BatchService
from tokenmill.control.keys import Principal
from tokenmill.errors import InvalidRequest, NotFound
from tokenmill.gateway.http import AUTHORIZATION, HttpRequest, Response, json_response
from tokenmill.gateway.listing import parse_limit
from tokenmill.gateway.services import Services
from tokenmill.knowledge.stores import parse_metadata
from tokenmill.protocol.requests import parse_json_body

PATH_PARAM = "batch_path"
CREATE_FIELDS = frozenset({"input_file_id", "endpoint", "completion_window", "metadata"})


async def _caller(services: Services, request: HttpRequest) -> tuple[Principal, BatchService]:
    principal = await services.keys.authenticate(request.header(AUTHORIZATION))
    if services.batches is None:
        raise NotFound("The Batch API is not enabled on this gateway.", code="not_found")
    return principal, services.batches


async def create_batch(services: Services, request: HttpRequest) -> Response:
    principal, service = await _caller(services, request)
    body = parse_json_body(await request.body())
    unknown = sorted(set(body) - CREATE_FIELDS)
    if unknown:
        raise InvalidRequest(f"Unknown parameter: {unknown[0]}.", param=unknown[0])
    file_id = body.get("input_file_id")
    if not isinstance(file_id, str) or not file_id:
        raise InvalidRequest("Missing required parameter: 'input_file_id'.", param="input_file_id")
    endpoint = parse_endpoint(body.get("endpoint"))
    window = parse_completion_window(body.get("completion_window"))
    metadata = parse_metadata(body.get("metadata"))
    info = await asyncio.to_thread(
        lambda: service.create(
            principal.tenant_id,
            principal.key_id,
            input_file_id=file_id,
            endpoint=endpoint,
            completion_window=str(body["completion_window"]),
            window=window,
            metadata=metadata,
        )
    )
    return json_response(info.as_openai())


async def list_batches(services: Services, request: HttpRequest) -> Response:
    principal, service = await _caller(services, request)
    query = request.query()
    limit = parse_limit(query, DEFAULT_LIST_LIMIT)
    page = await asyncio.to_thread(
        lambda: service.list(principal.tenant_id, limit=limit, after=query.get("after") or None)
    )
    return json_response(page.as_openai())


async def batch_get(services: Services, request: HttpRequest) -> Response:
    principal, service = await _caller(services, request)
    batch_id = request.path_params[PATH_PARAM]
    if "/" in batch_id:
        raise NotFound(f"No route GET {request.path}.", code="not_found")
    info = await asyncio.to_thread(service.get, principal.tenant_id, batch_id)
    return json_response(info.as_openai())


async def batch_post(services: Services, request: HttpRequest) -> Response:
    """``POST /v1/batches/{id}/cancel``."""
    principal, service = await _caller(services, request)
    batch_id, _, action = request.path_params[PATH_PARAM].partition("/")
    if action != "cancel" or not batch_id:
        raise NotFound(f"No route POST {request.path}.", code="not_found")
    info = await asyncio.to_thread(service.cancel, principal.tenant_id, batch_id)
    return json_response(info.as_openai())
