"""Relays a request to an engine replica and its answer back, stream events as they arrive.

The gateway always asks the replica for usage; a streamed usage chunk is passed on only when
the client asked for it (``stream_options.include_usage``). When the client goes away, the
replica is told to stop and answers with the tokens it really generated, which are metered.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from tokenmill.errors import TokenmillError, UpstreamError
from tokenmill.gateway.metering import Meter, TokenCounts
from tokenmill.gateway.upstream import UpstreamPool, UpstreamResponse
from tokenmill.protocol.tenancy import Tenancy

log = logging.getLogger(__name__)

_DONE = b"[DONE]"


@dataclass(frozen=True, slots=True)
class UpstreamReply:
    status: int
    body: bytes
    content_type: str


class UpstreamClient:
    """Calls to replicas over one pool of keep-alive connections, owned by the lifespan."""

    def __init__(self, timeout_seconds: float) -> None:
        # An idle timeout between reads, not a total: a long stream that keeps producing
        # tokens is healthy however long it runs.
        self.timeout_seconds = timeout_seconds
        self._pool = UpstreamPool()

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self._pool.close()

    async def post(
        self,
        url: str,
        payload: bytes,
        request_id: str,
        tenancy: Tenancy | None = None,
    ) -> UpstreamResponse:
        """``tenancy``: whose work it is and how urgent, told to the replica for its queue."""
        headers = {"content-type": "application/json", "x-request-id": request_id}
        if tenancy is not None:
            headers.update(tenancy.headers())
        return await self._pool.request(
            "POST", url, payload, headers, timeout_seconds=self.timeout_seconds
        )

    async def abort(self, base_url: str, request_id: str) -> TokenCounts | None:
        """Cancels a request on its replica; returns the tokens it generated, if known."""
        try:
            response = await self._pool.request(
                "DELETE", f"{base_url}/v1/requests/{request_id}", timeout_seconds=5
            )
            try:
                body = await response.read(5)
            finally:
                response.release()
        except UpstreamError:
            log.warning("could not abort request %s on %s", request_id, base_url)
            return None
        if response.status != 200:
            return None
        return TokenCounts.from_openai(_loads(body).get("usage"))


async def read_reply(
    response: UpstreamResponse, meter: Meter, idle_timeout_seconds: float
) -> UpstreamReply:
    """A whole (non-streamed) answer; its usage goes to the meter."""
    try:
        body = await response.read(idle_timeout_seconds)
    finally:
        response.release()
    if response.status == 200:
        counts = TokenCounts.from_openai(_loads(body).get("usage"))
        if counts is not None:
            meter.tokens = counts
        meter.first_token()
    return UpstreamReply(response.status, body, response.content_type)


def error_code_of(body: bytes) -> str | None:
    error = _loads(body).get("error")
    return error.get("code") if isinstance(error, dict) else None


def _loads(body: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return obj if isinstance(obj, dict) else {}


class StreamRelay:
    """Turns the replica's SSE byte stream into the client's, event by event."""

    def __init__(self, meter: Meter, include_usage: bool) -> None:
        self._meter = meter
        self._include_usage = include_usage
        self._buffer = b""
        self.done = False
        # Set before the error event goes out: a client that leaves on reading it must not
        # turn a broken upstream into a cancellation.
        self.broken: TokenmillError | None = None

    def feed(self, data: bytes) -> bytes:
        """Takes bytes as they arrive; returns the complete events to pass on now."""
        self._buffer += data
        out: list[bytes] = []
        while (end := self._buffer.find(b"\n\n")) >= 0:
            event, self._buffer = self._buffer[: end + 2], self._buffer[end + 2 :]
            if self._keep(event):
                out.append(event)
        return b"".join(out)

    def _keep(self, event: bytes) -> bool:
        if not event.startswith(b"data:"):
            return True
        payload = event[5:].strip()
        if payload == _DONE:
            self.done = True
            return True
        self._meter.content_events += 1
        if self._meter.first_token_monotonic is not None and b'"usage"' not in payload:
            return True  # the common case, passed on without parsing
        chunk = _loads(payload)
        usage = TokenCounts.from_openai(chunk.get("usage"))
        if usage is not None:
            self._meter.tokens = usage
        choices = chunk.get("choices")
        if not choices:
            self._meter.content_events -= 1
            return usage is None or self._include_usage
        if self._meter.first_token_monotonic is None and _has_output(choices):
            self._meter.first_token()
        return True


def _has_output(choices: list[Any]) -> bool:
    for choice in choices:
        delta = choice.get("delta") or {}
        if choice.get("text") or delta.get("content") or delta.get("tool_calls"):
            return True
    return False


async def relay_stream(
    response: UpstreamResponse, relay: StreamRelay, idle_timeout_seconds: float
) -> AsyncIterator[bytes]:
    try:
        async for data in response.chunks(idle_timeout_seconds):
            out = relay.feed(data)
            if out:
                yield out
    except UpstreamError as error:
        relay.broken = error
        yield b"data: " + error.body_bytes() + b"\n\n"
        raise StreamBroken(error) from None
    finally:
        response.release()
    if not relay.done:
        early = UpstreamError("The model replica ended the stream early.")
        relay.broken = early
        yield b"data: " + early.body_bytes() + b"\n\n"
        raise StreamBroken(early)


class StreamBroken(Exception):
    def __init__(self, error: TokenmillError) -> None:
        super().__init__(error.message)
        self.error = error
