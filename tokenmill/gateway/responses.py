"""The Responses API (OpenAI's shapes).

    POST   /v1/responses                     model, input, instructions, tools, stream, ...
    GET    /v1/responses/{id}                ?include[]=file_search_call.results
    DELETE /v1/responses/{id}
    GET    /v1/responses/{id}/input_items    ?limit=&after=&order=
    GET    /v1/responses                     ?limit=&after=  (a tokenmill extension)

A response runs the agent loop (``responses.loop``) on the tenant's behalf: each model call is
admitted, routed and metered like a chat call of the same key, each file search like a search of
the tenant's stores, each MCP call as its own usage event (``gateway.mcp_tools``). A stored
response (``store``, on by default) can be read back, continued with ``previous_response_id``
and deleted; another tenant's response is answered as if it did not exist (404). Streamed
responses send OpenAI's events, each with its ``sequence_number``; the response is stored before
its last event goes out, so a client that has read ``response.completed`` can continue from it
at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import orjson

from tokenmill.control.keys import Principal
from tokenmill.errors import InvalidRequest, NotFound, TokenmillError
from tokenmill.gateway.app_prompts import apply_prompt, rewriter
from tokenmill.gateway.file_search import TenantSearch
from tokenmill.gateway.http import (
    AUTHORIZATION,
    HttpRequest,
    Response,
    StreamResponse,
    json_response,
)
from tokenmill.gateway.listing import parse_limit
from tokenmill.gateway.mcp_tools import TenantPlugins
from tokenmill.gateway.metering import Meter
from tokenmill.gateway.model_calls import ENDPOINT, TenantModels
from tokenmill.gateway.services import Services
from tokenmill.gateway.tiers import choose_tier
from tokenmill.protocol.requests import parse_json_body
from tokenmill.protocol.tiers import parse_service_tier
from tokenmill.responses.items import new_id
from tokenmill.responses.loop import AgentLoop
from tokenmill.responses.mcp import MCP, check_approvals
from tokenmill.responses.objects import new_response, shown
from tokenmill.responses.repository import (
    DEFAULT_LIST_LIMIT,
    ItemPage,
    Order,
    ResponseRepository,
)
from tokenmill.responses.request import ResponseRequest, parse_response_request

PATH_PARAM = "response_path"
TERMINAL = frozenset({"response.completed", "response.failed", "response.incomplete"})


async def caller(services: Services, request: HttpRequest) -> tuple[Principal, ResponseRepository]:
    principal = await services.keys.authenticate(request.header(AUTHORIZATION))
    if services.responses is None:
        raise NotFound("The Responses API is not enabled on this gateway.", code="not_found")
    return principal, services.responses


async def create_response(services: Services, request: HttpRequest) -> Response | StreamResponse:
    principal, repository = await caller(services, request)
    started = await start_response(services, principal, repository, request)
    headers = {"x-request-id": started.response["id"]}
    if not started.parsed.stream:
        await started.complete()
        return json_response(started.shown(), headers=headers)
    events = started.events
    first = await anext(events)  # the first model call is admitted and sent, or this raises
    return StreamResponse(
        started.run.stream(first, events),
        headers={**headers, "cache-control": "no-cache"},
        on_close=lambda: _close_later(events, started.run.plugins),
    )


@dataclass(slots=True)
class Started:
    """A response whose loop is ready to run (``events``), nothing of it sent yet."""

    parsed: ResponseRequest
    response: dict[str, Any]
    events: AsyncIterator[dict[str, Any]]
    run: _Run

    async def complete(self) -> None:
        try:
            async for _ in self.events:
                pass
        finally:
            await self.run.plugins.close()
        await self.run.finish()

    def shown(self) -> dict[str, Any]:
        return shown(self.response, self.parsed.include)


async def start_response(
    services: Services,
    principal: Principal,
    repository: ResponseRepository,
    request: HttpRequest,
    given: dict[str, Any] | None = None,
) -> Started:
    """Checks a request (the body of ``request``, or ``given``) and readies its loop.

    A request refused here is recorded as one (at no cost), as the chat route records its
    refusals; each model call is then metered on its own."""
    meter = Meter(services.clock, services.sink, principal, services.ids.new(), ENDPOINT)
    request.request_id = meter.request_id
    try:
        body = given if given is not None else parse_json_body(await request.body())
        body, app = await apply_prompt(services, principal, body, meter)
        if isinstance(body.get("model"), str):
            meter.model = body["model"]
        parsed = parse_response_request(body)
        entry = services.directory.resolve(parsed.model, principal)
        meter.model = entry.id
        if entry.task != "chat":
            raise InvalidRequest(
                f"The model '{parsed.model}' is a {entry.task} model; it does not serve "
                "/v1/responses.",
                param="model",
                code="model_not_supported",
            )
        tier = choose_tier(parse_service_tier(body), principal)
        search = TenantSearch(services.vector_stores, principal)
        if parsed.file_search is not None:
            await search.check(parsed.file_search, "tools")
        plugins = TenantPlugins(services, principal)
        places = [i for i, t in enumerate(body.get("tools") or ()) if t.get("type") == MCP]
        parsed = dataclasses.replace(parsed, mcp=await plugins.resolve(parsed.mcp, places))
        history: list[dict[str, Any]] = []
        if parsed.previous_response_id is not None:
            history = await asyncio.to_thread(
                repository.conversation,
                principal.tenant_id,
                parsed.previous_response_id,
                principal.app_id,
            )
        check_approvals(parsed.items, history, parsed.mcp)
        rewrite = rewriter(services, principal, app, tier)
    except TokenmillError as error:
        meter.finish_error(error)
        raise
    response = new_response(
        new_id("resp"), parsed, parsed.model, int(services.clock.utcnow().timestamp()), tier.value
    )
    if app is not None:
        response["prompt"] = app.prompt
    request.request_id = response["id"]
    models = TenantModels(services, principal, entry, tier)
    models.app_id = plugins.app_id = meter.app_id
    loop = AgentLoop(
        parsed, response, history, models, search, services.clock, plugins=plugins,
        rewrite=rewrite,
    )  # fmt: skip
    run = _Run(services, repository, principal, parsed, response, models, plugins)
    return Started(parsed, response, loop.run(), run)


def _close_later(events: AsyncIterator[dict[str, Any]], plugins: TenantPlugins) -> None:
    """A stream that never started still holds its first model call (and maybe sessions with
    MCP servers): stop them."""

    async def close() -> None:
        try:
            await cast(Any, events).aclose()
        finally:
            await plugins.close()

    asyncio.get_running_loop().create_task(close())


@dataclass(slots=True)
class _Run:
    services: Services
    repository: ResponseRepository
    principal: Principal
    parsed: ResponseRequest
    response: dict[str, Any]
    models: TenantModels
    plugins: TenantPlugins

    async def stream(
        self, first: dict[str, Any], events: AsyncIterator[dict[str, Any]]
    ) -> AsyncIterator[bytes]:
        sequence = 0

        def frame(event: dict[str, Any]) -> bytes:
            nonlocal sequence
            data = orjson.dumps({**event, "sequence_number": sequence})
            sequence += 1
            return b"event: " + str(event["type"]).encode() + b"\ndata: " + data + b"\n\n"

        try:
            yield frame(first)
            async for event in events:
                if event["type"] in TERMINAL:
                    await self.finish()
                yield frame(event)
        finally:
            await cast(Any, events).aclose()
            await self.plugins.close()

    async def finish(self) -> None:
        """Once the loop is done: every call's usage on disk, then the response stored."""
        await self.plugins.close()
        self.response["service_tier"] = self.models.served_tier.value
        await self.models.durable()
        await self.plugins.durable()
        if self.parsed.store:
            await asyncio.to_thread(
                self.repository.save,
                self.principal.tenant_id,
                self.principal.key_id,
                self.response,
                self.parsed.items,
                self.parsed.include,
                self.services.clock.utcnow(),
            )


async def list_responses(services: Services, request: HttpRequest) -> Response:
    """``GET /v1/responses?limit=&after=``: the tenant's stored responses, newest first (a
    tokenmill extension; OpenAI's API has no such list)."""
    principal, repository = await caller(services, request)
    query = request.query()
    page = await asyncio.to_thread(
        lambda: repository.list(
            principal.tenant_id,
            limit=parse_limit(query, DEFAULT_LIST_LIMIT),
            after=query.get("after") or None,
        )
    )
    include = frozenset(request.query_values("include[]", "include"))
    return json_response(
        ItemPage([shown(b, include) for b in page.data], page.has_more).as_openai()
    )


async def response_get(services: Services, request: HttpRequest) -> Response:
    """``GET /v1/responses/{id}`` and ``GET /v1/responses/{id}/input_items``."""
    principal, repository = await caller(services, request)
    response_id, _, rest = request.path_params[PATH_PARAM].partition("/")
    query = request.query()
    if rest == "input_items":
        order = query.get("order") or "desc"
        if order not in ("asc", "desc"):
            raise InvalidRequest("'order' must be 'asc' or 'desc'.", param="order")
        page = await asyncio.to_thread(
            lambda: repository.input_items(
                principal.tenant_id,
                response_id,
                limit=parse_limit(query, DEFAULT_LIST_LIMIT),
                after=query.get("after") or None,
                order=cast(Order, order),
            )
        )
        return json_response(page.as_openai())
    if rest:
        raise NotFound(f"No route GET {request.path}.", code="not_found")
    saved = await asyncio.to_thread(repository.get, principal.tenant_id, response_id)
    include = frozenset(request.query_values("include[]", "include"))
    return json_response(shown(saved.body, include))


async def response_delete(services: Services, request: HttpRequest) -> Response:
    principal, repository = await caller(services, request)
    response_id = request.path_params[PATH_PARAM]
    if "/" in response_id:
        raise NotFound(f"No route DELETE {request.path}.", code="not_found")
    await asyncio.to_thread(repository.delete, principal.tenant_id, response_id)
    return json_response({"id": response_id, "object": "response", "deleted": True})
