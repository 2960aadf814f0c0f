"""OpenAI-compatible routes: auth, validate, admit, route, relay, meter, in that order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from tokenmill.errors import InvalidRequest, NotFound, TokenmillError
from tokenmill.gateway import admin
from tokenmill.gateway.admin_evals import card_evaluations
from tokenmill.gateway.admission import Ticket
from tokenmill.gateway.dispatch import Call, dispatch
from tokenmill.gateway.http import (
    AUTHORIZATION,
    ClientDisconnected,
    HttpRequest,
    Response,
    StreamResponse,
    json_response,
)
from tokenmill.gateway.metering import Meter
from tokenmill.gateway.relay import (
    StreamBroken,
    StreamRelay,
    error_code_of,
    read_reply,
    relay_stream,
)
from tokenmill.gateway.routing import Lease
from tokenmill.gateway.services import Services
from tokenmill.gateway.tiers import choose_tier
from tokenmill.gateway.upstream import UpstreamResponse
from tokenmill.protocol.embeddings import parse_embeddings
from tokenmill.protocol.requests import parse_chat, parse_completion, parse_json_body
from tokenmill.protocol.tiers import parse_service_tier

TIERED = frozenset({"chat.completions", "completions"})
TASKS_OF = {
    "chat.completions": ("chat",),
    "completions": ("chat", "completion"),
    "embeddings": ("embeddings",),
}


async def health(services: Services, request: HttpRequest) -> Response:
    return json_response({"status": "ok"})


async def metrics(services: Services, request: HttpRequest) -> Response:
    if services.metrics is None:
        raise NotFound("Metrics are not enabled on this gateway.", code="not_found")
    content_type = services.metrics.content_type.encode()
    return Response(await asyncio.to_thread(services.metrics.render), 200, content_type)


async def list_models(services: Services, request: HttpRequest) -> Response:
    principal = await services.keys.authenticate(request.header(AUTHORIZATION))
    data = [entry.as_openai(name) for name, entry in services.directory.visible(principal)]
    return json_response({"object": "list", "data": data})


async def get_model(services: Services, request: HttpRequest) -> Response:
    principal = await services.keys.authenticate(request.header(AUTHORIZATION))
    name = request.path_params["model"]
    entry = services.directory.resolve(name, principal)
    body = entry.as_openai(name, card=True)
    if services.admin is not None:  # the latest evaluations the caller may see
        found = await asyncio.to_thread(
            card_evaluations, services.admin, entry.id, entry.version, principal
        )
        body["card"]["evaluations"] = found
    return json_response(body)


async def admin_api(services: Services, request: HttpRequest) -> Response:
    principal = await services.keys.authenticate(request.header(AUTHORIZATION))
    if services.admin is None:
        raise NotFound("The admin API is not enabled on this gateway.", code="not_found")
    return await admin.handle(services.admin, principal, request)


async def chat_completions(services: Services, request: HttpRequest) -> Response | StreamResponse:
    return await _inference(services, request, "chat.completions", parse_chat)


async def completions(services: Services, request: HttpRequest) -> Response | StreamResponse:
    return await _inference(services, request, "completions", parse_completion)


async def embeddings(services: Services, request: HttpRequest) -> Response | StreamResponse:
    return await _inference(services, request, "embeddings", parse_embeddings)


async def _inference(
    services: Services,
    request: HttpRequest,
    endpoint: str,
    parse: Callable[[dict[str, Any]], Any],
) -> Response | StreamResponse:
    principal = await services.keys.authenticate(request.header(AUTHORIZATION))
    request.request_id = services.ids.new()
    meter = Meter(services.clock, services.sink, principal, request.request_id, endpoint)
    try:
        raw = await request.body()
        body = parse_json_body(raw)
        if isinstance(body.get("model"), str):
            meter.model = body["model"]
        parsed = parse(body)
        meter.stream = parsed.stream
        entry = services.directory.resolve(parsed.model, principal)
        meter.model = entry.id
        if entry.task not in TASKS_OF[endpoint]:
            raise InvalidRequest(
                f"The model '{parsed.model}' is a {entry.task} model; it does not serve "
                f"/v1/{endpoint.replace('.', '/')}.",
                param="model",
                code="model_not_supported",
            )
        tier = choose_tier(parse_service_tier(body), principal) if endpoint in TIERED else None
        call = Call(
            principal, entry, request.path, body, len(raw), parsed.sampling, parsed.stream, tier
        )
        upstream, sent = await dispatch(services, call, meter)
    except TokenmillError as error:
        meter.finish_error(error)
        raise
    except BaseException as error:  # a client gone mid-request, or a bug: still metered
        if isinstance(error, ClientDisconnected | asyncio.CancelledError):
            meter.finish("cancelled", 499, "client_disconnected")
        else:
            meter.finish("error", 500, "server_error")
        raise
    headers = {"x-request-id": request.request_id}
    if isinstance(meter.ticket, Ticket):
        headers.update(meter.ticket.headers)
    if not parsed.stream or upstream.status != 200:
        return await _whole(services, upstream, sent, meter, headers)
    relay = StreamRelay(meter, include_usage=parsed.include_usage)

    def close() -> None:  # all no-ops unless the stream never started (client gone at once)
        upstream.release()
        sent.release()
        meter.finish("cancelled", 499, "client_disconnected")

    return StreamResponse(
        _stream(services, relay, upstream, sent, meter),
        headers={**headers, "cache-control": "no-cache"},
        on_close=close,
    )


async def _whole(
    services: Services,
    upstream: UpstreamResponse,
    lease: Lease,
    meter: Meter,
    headers: dict[str, str],
) -> Response:
    try:
        reply = await read_reply(upstream, meter, services.upstream.timeout_seconds)
    except TokenmillError as error:
        meter.finish_error(error)
        raise
    finally:
        lease.release()
    if reply.status == 200:
        meter.finish("ok", 200)
    else:
        meter.finish("error", reply.status, error_code_of(reply.body))
    await meter.durable()
    return Response(reply.body, reply.status, reply.content_type.encode(), headers)


async def _stream(
    services: Services,
    relay: StreamRelay,
    upstream: UpstreamResponse,
    lease: Lease,
    meter: Meter,
) -> AsyncIterator[bytes]:
    """Ends one of three ways, each metered: completed, broken upstream, or client gone.

    A client that leaves after the last event (``[DONE]``) has had everything: that is a
    completed request, not a cancelled one.
    """
    error_code = "client_disconnected"
    completed = False
    try:
        async for data in relay_stream(upstream, relay, services.upstream.timeout_seconds):
            if meter.first_token_monotonic is not None:
                lease.first_token(meter.first_token_monotonic)
            if relay.done:  # the last bytes: they go out once the usage is journaled
                meter.finish("ok", 200)
                await meter.durable()
            yield data
        completed = True
    except StreamBroken as broken:
        error_code = broken.error.code or "upstream_error"
    finally:
        if relay.broken is not None:
            error_code = relay.broken.code or "upstream_error"
        if completed or relay.done:
            meter.finish("ok", 200)
            lease.release()
        else:
            cancelled = error_code == "client_disconnected"
            try:
                meter.cut_off(await services.upstream.abort(lease.url, meter.request_id))
            finally:  # also when the client leaves during the abort, having read the error
                meter.finish(
                    "cancelled" if cancelled else "error", 499 if cancelled else 502, error_code
                )
                lease.release()
