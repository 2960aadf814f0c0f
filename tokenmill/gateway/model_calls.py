"""The model calls of a Responses API request, each one a tenant's streamed chat call.

``TenantModels.open`` admits, routes and sends one call exactly as the chat route does
(``gateway.dispatch``) and meters it as its own usage event (endpoint ``responses``): the
response's usage is the sum of its calls', and each is billed and counted against the tenant's
limits as it happens. ``StreamedCall.chunks`` yields the replica's chat chunks as dicts;
``close`` stops a call that was not read to its end (client gone, loop failed) and meters the
tokens the replica really made.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson

from tokenmill.control.keys import Principal
from tokenmill.errors import (
    EngineOverloaded,
    InvalidRequest,
    NotFound,
    RateLimited,
    TokenmillError,
    UpstreamError,
)
from tokenmill.gateway.directory import ModelEntry
from tokenmill.gateway.dispatch import Call, dispatch
from tokenmill.gateway.http import ClientDisconnected
from tokenmill.gateway.metering import Meter
from tokenmill.gateway.relay import StreamBroken, StreamRelay, read_reply, relay_stream
from tokenmill.gateway.routing import Lease
from tokenmill.gateway.services import Services
from tokenmill.gateway.upstream import UpstreamResponse
from tokenmill.protocol.requests import parse_chat, parse_completion
from tokenmill.protocol.tiers import ServiceTier

CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
ENDPOINT = "responses"
ERROR_CLASSES: dict[int, type[TokenmillError]] = {
    400: InvalidRequest,
    404: NotFound,
    429: RateLimited,
    503: EngineOverloaded,
}


def relayed_error(status: int, body: bytes) -> TokenmillError:
    """A replica's error reply as the error the client would have had from the chat route."""
    try:
        reply = orjson.loads(body)
    except orjson.JSONDecodeError:
        reply = None
    error = reply.get("error") if isinstance(reply, dict) else None
    if not isinstance(error, dict):
        error = {"message": error} if isinstance(error, str) else {}
    kind = ERROR_CLASSES.get(status, UpstreamError)
    message = str(error.get("message") or f"The model replica answered {status}.")
    return kind(message, param=error.get("param"), code=error.get("code"))


class TenantModels:
    def __init__(
        self, services: Services, principal: Principal, entry: ModelEntry, tier: ServiceTier
    ) -> None:
        self._services = services
        self._principal = principal
        self._entry = entry
        self._tier = tier
        self._meters: list[Meter] = []
        self.served_tier = tier
        self.app_id: str | None = None  # the App the response runs for, on each usage event

    async def open(self, body: dict[str, Any]) -> StreamedCall:
        """A streamed chat call (``/v1/chat/completions``), or, for a model that only
        completes text, a streamed ``/v1/completions`` call when ``body`` has a ``prompt``."""
        services = self._services
        meter = Meter(services.clock, services.sink, self._principal, services.ids.new(), ENDPOINT)
        meter.model = self._entry.id
        meter.stream = True
        meter.app_id = self.app_id
        self._meters.append(meter)
        try:
            plain = "prompt" in body
            parsed = parse_completion(body) if plain else parse_chat(body)
            call = Call(
                self._principal,
                self._entry,
                COMPLETIONS_PATH if plain else CHAT_PATH,
                body,
                len(orjson.dumps(body)),
                parsed.sampling,
                True,
                self._tier,
            )
            upstream, lease = await dispatch(services, call, meter)
        except TokenmillError as error:
            meter.finish_error(error)
            raise
        except BaseException as error:
            if isinstance(error, ClientDisconnected | asyncio.CancelledError):
                meter.finish("cancelled", 499, "client_disconnected")
            else:
                meter.finish("error", 500, "server_error")
            raise
        self.served_tier = ServiceTier(meter.service_tier)
        if upstream.status != 200:
            try:
                reply = await read_reply(upstream, meter, services.upstream.timeout_seconds)
            finally:
                lease.release()
            refused = relayed_error(reply.status, reply.body)
            meter.finish("error", reply.status, refused.code)
            raise refused
        return StreamedCall(services, upstream, lease, meter)

    async def durable(self) -> None:
        """Returns once every call's usage event is on disk."""
        for meter in self._meters:
            await meter.durable()


class StreamedCall:
    def __init__(
        self, services: Services, upstream: UpstreamResponse, lease: Lease, meter: Meter
    ) -> None:
        self._services = services
        self._upstream = upstream
        self._lease = lease
        self._meter = meter
        self._relay = StreamRelay(meter, include_usage=True)

    async def chunks(self) -> AsyncIterator[dict[str, Any]]:
        timeout = self._services.upstream.timeout_seconds
        try:
            async for data in relay_stream(self._upstream, self._relay, timeout):
                if self._meter.first_token_monotonic is not None:
                    self._lease.first_token(self._meter.first_token_monotonic)
                for event in data.split(b"\n\n"):
                    payload = event.removeprefix(b"data:").strip()
                    if not event.startswith(b"data:") or payload == b"[DONE]":
                        continue
                    chunk = orjson.loads(payload)
                    if "error" not in chunk:
                        yield chunk
        except StreamBroken as broken:
            raise broken.error from None
        self._meter.finish("ok", 200)
        self._lease.release()

    async def close(self) -> None:
        if self._meter.finished:
            return
        if self._relay.done:  # read to its last event; the reader stopped just after it
            self._meter.finish("ok", 200)
            self._lease.release()
            self._upstream.release()
            return
        try:
            url, request_id = self._lease.url, self._meter.request_id
            self._meter.cut_off(await self._services.upstream.abort(url, request_id))
        finally:
            if self._relay.broken is None:
                self._meter.finish("cancelled", 499, "client_disconnected")
            else:
                self._meter.finish("error", 502, self._relay.broken.code or "upstream_error")
            self._lease.release()
            self._upstream.release()
