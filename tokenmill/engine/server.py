"""The engine replica API over HTTP: OpenAI-compatible routes, health, metrics, cancellation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tokenmill.engine.adapters import parse_adapter
from tokenmill.engine.assembly import collect, sse
from tokenmill.engine.choices import ChoiceGroups, choice_requests, merge
from tokenmill.engine.engine import Engine
from tokenmill.engine.http import (
    replica_app,
)
from tokenmill.engine.request import EngineEvent, EngineRequest, choices_usage
from tokenmill.engine.responses import ChatFormat, CompletionFormat, ResponseFormat, usage_json
from tokenmill.engine.tool_calls import tool_events
from tokenmill.errors import (
    ModelNotFound,
    NotFound,
    TokenmillError,
)
from tokenmill.protocol.requests import parse_chat, parse_completion, parse_json_body
from tokenmill.protocol.tenancy import PROMPT_TOKENS_HEADER, Tenancy, parse_tenancy
from tokenmill.protocol.tiers import ServiceTier

logger = logging.getLogger(__name__)


def build_app(engine: Engine, served_name: str) -> Starlette:
    routes = _Routes(engine, served_name)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine.start()
        try:
            yield
        finally:
            await engine.stop()

    return replica_app(
        [
            Route("/v1/chat/completions", routes.chat, methods=["POST"]),
            Route("/v1/completions", routes.completion, methods=["POST"]),
            Route("/v1/requests/{request_id}", routes.cancel, methods=["DELETE"]),
            Route("/v1/models", routes.models, methods=["GET"]),
            Route("/health", routes.health, methods=["GET"]),
            Route("/metrics", routes.metrics, methods=["GET"]),
        ],
        lifespan,
    )


class _Routes:
    def __init__(self, engine: Engine, served_name: str) -> None:
        self._engine = engine
        self._served_name = served_name
        self._created = self._now()
        self._groups = ChoiceGroups()

    async def chat(self, request: Request) -> Response:
        parsed = parse_chat(parse_json_body(await request.body()))
        name = self._answering_name(request, parsed.model)
        request_id: str = request.state.request_id
        engine_request = self._engine.prompts.chat(parsed, request_id)
        tenancy = parse_tenancy(request.headers)
        fmt = ChatFormat(
            request_id,
            self._now(),
            name,
            logprobs=parsed.sampling.logprobs,
            service_tier=ServiceTier.of(tenancy.priority),
        )
        names = [tool.name for tool in parsed.tools.callable] if parsed.tools else []
        return await self._respond(
            request, engine_request, fmt, tenancy, stream=parsed.stream, tool_names=names
        )

    async def completion(self, request: Request) -> Response:
        parsed = parse_completion(parse_json_body(await request.body()))
        name = self._answering_name(request, parsed.model)
        request_id: str = request.state.request_id
        engine_request = self._engine.prompts.completion(parsed, request_id)
        echo = self._engine.prompts.prompt_text(parsed) if parsed.echo else None
        tenancy = parse_tenancy(request.headers)
        fmt = CompletionFormat(
            request_id,
            self._now(),
            name,
            echo=echo,
            logprobs=parsed.sampling.logprobs,
            service_tier=ServiceTier.of(tenancy.priority),
        )
        return await self._respond(request, engine_request, fmt, tenancy, stream=parsed.stream)

    async def cancel(self, request: Request) -> Response:
        request_id: str = request.path_params["request_id"]
        members = self._groups.members(request_id)
        found = await asyncio.gather(*(self._engine.cancel(member) for member in members))
        outcomes = [outcome for outcome in found if outcome is not None]
        if not outcomes:
            raise NotFound(
                f"No request with id {request_id!r} is running or finished recently.",
                param="request_id",
                code="request_not_found",
            )
        cancelled = any(outcome.status == "cancelled" for outcome in outcomes)
        usage = choices_usage([outcome.usage for outcome in outcomes])
        return _json(
            {
                "id": request_id,
                "status": "cancelled" if cancelled else "finished",
                "usage": usage_json(usage),
            }
        )

    async def models(self, request: Request) -> Response:
        model = {
            "id": self._served_name,
            "object": "model",
            "created": self._created,
            "owned_by": "tokenmill",
            "max_model_len": self._engine.context_tokens,
        }
        return _json({"object": "list", "data": [model]})

    async def health(self, request: Request) -> Response:
        """The adapters loaded now, on a replica that serves adapters."""
        body: dict[str, Any] = {"status": "ok", "model": self._served_name}
        if self._engine.adapters.enabled:
            body["adapters"] = self._engine.adapters.loaded()
        return _json(body)

    async def metrics(self, request: Request) -> Response:
        return Response(
            self._engine.metrics.render(),
            headers={"content-type": self._engine.metrics.content_type},
        )

    def _answering_name(self, request: Request, model: str) -> str:
        """The model a response names: this replica's, or for a request with an adapter the
        name the gateway gave it (the fine-tune's, which this replica knows only as a file)."""
        if parse_adapter(request.headers) is not None:
            return model
        self._check_model(model)
        return self._served_name

    def _check_model(self, model: str) -> None:
        if model != self._served_name:
            raise ModelNotFound(
                f"The model {model!r} is not served here; this replica serves "
                f"{self._served_name!r}.",
                param="model",
            )

    def _now(self) -> int:
        return int(self._engine.clock.utcnow().timestamp())

    async def _respond(
        self,
        request: Request,
        engine_request: EngineRequest,
        fmt: ResponseFormat,
        tenancy: Tenancy,
        *,
        stream: bool,
        tool_names: Sequence[str] = (),
    ) -> Response:
        """``tool_names``: the functions the model may call, parsed out of its output."""
        adapter = parse_adapter(request.headers)
        choices = choice_requests(
            replace(
                engine_request,
                tenant=tenancy.tenant,
                weight=tenancy.weight,
                priority=tenancy.priority,
                adapter=adapter,
            )
        )
        streams: list[AsyncIterator[EngineEvent]] = []
        ids = [choice.request_id for choice in choices]

        def abort_all() -> None:
            for member in ids:
                self._engine.abort(member)

        adapters = self._engine.adapters
        if adapter is not None:  # loaded off the event loop; each choice pins it again
            await asyncio.to_thread(adapters.pin, adapter)
        try:
            for choice in choices:
                streams.append(self._engine.submit(choice))
        except TokenmillError:
            abort_all()  # the choices already queued
            raise
        finally:
            if adapter is not None:
                adapters.unpin(adapter)
        self._groups.record(engine_request.request_id, ids)
        merged = merge(streams)
        events = tool_events(merged, tool_names, len(choices)) if tool_names else merged
        if stream:
            prompt = str(len(engine_request.prompt_tokens))
            return _EventStream(sse(events, fmt, len(choices)), on_close=abort_all, prompt=prompt)
        return _json(await self._collect(request, collect(events, fmt, len(choices)), abort_all))

    @staticmethod
    async def _collect(
        request: Request, body: Coroutine[Any, Any, dict[str, Any]], abort: Callable[[], None]
    ) -> dict[str, Any]:
        """Wait for a whole response, cancelling it if the client goes away meanwhile."""
        consumer = asyncio.ensure_future(body)
        watcher = asyncio.ensure_future(_wait_for_disconnect(request.receive))
        try:
            done, _ = await asyncio.wait({consumer, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if watcher in done:
                abort()
            return await consumer
        finally:
            watcher.cancel()
            if not consumer.done():
                consumer.cancel()
                abort()


class _EventStream(StreamingResponse):
    """Server-sent events that cancel their request however the response ends.

    Starlette cancels the body iterator when the client disconnects, possibly before it ever
    started, so the abort lives here rather than in the iterator.
    """

    def __init__(
        self, content: AsyncIterator[bytes], *, on_close: Callable[[], None], prompt: str
    ) -> None:
        """``prompt``: its tokens, in ``PROMPT_TOKENS_HEADER``, so a gateway can bill them if
        the replica dies before the stream's usage comes."""
        headers = {"cache-control": "no-cache", PROMPT_TOKENS_HEADER: prompt}
        super().__init__(content, media_type="text/event-stream", headers=headers)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _json(data: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(data), status_code=status_code, headers=headers, media_type="application/json"
    )
