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

import aiohttp
import orjson

from tokenmill.errors import TokenmillError, UpstreamError
from tokenmill.gateway.metering import Meter, TokenCounts

log = logging.getLogger(__name__)

_DONE = b"[DONE]"


@dataclass(frozen=True, slots=True)
class UpstreamReply:
    status: int
    body: bytes
    content_type: str


class UpstreamClient:
    """One pooled HTTP client for all replicas, owned by the gateway's lifespan."""

    def __init__(self, timeout_seconds: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds, sock_connect=5)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, enable_cleanup_closed=True)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            json_serialize=lambda o: orjson.dumps(o).decode(),
            skip_auto_headers=("User-Agent",),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("UpstreamClient.start() was not awaited")
        return self._session

    async def post(self, url: str, payload: bytes, request_id: str) -> aiohttp.ClientResponse:
        try:
            return await self.session.post(
                url,
                data=payload,
                headers={"content-type": "application/json", "x-request-id": request_id},
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise UpstreamError(f"The model replica could not be reached: {exc}.") from None

    async def abort(self, base_url: str, request_id: str) -> TokenCounts | None:
        """Cancels a request on its replica; returns the tokens it generated, if known."""
        try:
            async with self.session.delete(
                f"{base_url}/v1/requests/{request_id}", timeout=aiohttp.ClientTimeout(total=5)
            ) as resp:
                if resp.status != 200:
                    return None
                return TokenCounts.from_openai(orjson.loads(await resp.read()).get("usage"))
        except (TimeoutError, aiohttp.ClientError, OSError, orjson.JSONDecodeError):
            log.warning("could not abort request %s on %s", request_id, base_url)
            return None


async def read_reply(response: aiohttp.ClientResponse, meter: Meter) -> UpstreamReply:
    """A whole (non-streamed) answer; its usage goes to the meter."""
    try:
        body = await response.read()
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise UpstreamError(f"The model replica failed while answering: {exc}.") from None
    finally:
        response.release()
    if response.status == 200:
        counts = TokenCounts.from_openai(_loads(body).get("usage"))
        if counts is not None:
            meter.tokens = counts
        meter.first_token()
    return UpstreamReply(
        response.status, body, response.headers.get("content-type", "application/json")
    )


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
        if choice.get("text") or (choice.get("delta") or {}).get("content"):
            return True
    return False


async def relay_stream(
    response: aiohttp.ClientResponse,
    relay: StreamRelay,
) -> AsyncIterator[bytes]:
    try:
        async for data in response.content.iter_any():
            out = relay.feed(data)
            if out:
                yield out
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        error = UpstreamError(f"The model replica failed mid-stream: {exc}.")
        yield b"data: " + error.body_bytes() + b"\n\n"
        raise StreamBroken(error) from None
    finally:
        response.release()
    if not relay.done:
        error = UpstreamError("The model replica ended the stream early.")
        yield b"data: " + error.body_bytes() + b"\n\n"
        raise StreamBroken(error)


class StreamBroken(Exception):
    def __init__(self, error: TokenmillError) -> None:
        super().__init__(error.message)
        self.error = error
