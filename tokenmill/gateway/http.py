"""Minimal ASGI request and response types for the gateway's hot path.

A framework's middleware stack wraps every ``send`` in several closures; on a streaming relay
that is paid per chunk. bench/gateway.py measured the difference, so the gateway speaks
ASGI directly with these few types.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

AUTHORIZATION = b"authorization"
JSON = b"application/json"
EVENT_STREAM = b"text/event-stream"
WATCH_AFTER_SECONDS = 0.05
MAX_BODY_BYTES = 32 * 1024 * 1024


class ClientDisconnected(Exception):
    """The client went away before the request was read; there is no one to answer."""


class HttpRequest:
    __slots__ = ("_receive", "method", "path", "path_params", "request_id", "scope")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self._receive = receive
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.path_params: dict[str, str] = {}
        self.request_id: str | None = None

    @property
    def client_address(self) -> str | None:
        client = self.scope.get("client")
        return str(client[0]) if client else None

    def header(self, name: bytes) -> str | None:
        """A header by its lower-case name."""
        for key, value in self.scope["headers"]:
            if key == name:
                return str(value.decode("latin-1"))
        return None

    def query(self) -> dict[str, str]:
        """The query string's parameters (the last of a repeated name; blank values kept)."""
        raw = self.scope.get("query_string", b"").decode("latin-1")
        return dict(parse_qsl(raw, keep_blank_values=True))

    def query_values(self, *names: str) -> list[str]:
        """Every value of the query string's parameters named ``names``, in order."""
        raw = self.scope.get("query_string", b"").decode("latin-1")
        return [value for name, value in parse_qsl(raw, keep_blank_values=True) if name in names]

    async def body(self) -> bytes:
        from tokenmill.errors import InvalidRequest

        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise InvalidRequest(f"The request body is larger than {MAX_BODY_BYTES} bytes.")
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    @property
    def receive(self) -> Receive:
        return self._receive


def _raw_headers(media_type: bytes, headers: dict[str, str] | None) -> list[tuple[bytes, bytes]]:
    raw = [(b"content-type", media_type)]
    if headers:
        raw.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())
    return raw


class Response:
    __slots__ = ("body", "headers", "media_type", "status")

    def __init__(
        self,
        body: bytes,
        status: int = 200,
        media_type: bytes = JSON,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.body = body
        self.status = status
        self.media_type = media_type
        self.headers = headers

    async def __call__(self, receive: Receive, send: Send) -> None:
        raw = _raw_headers(self.media_type, self.headers)
        raw.append((b"content-length", str(len(self.body)).encode()))
        await send({"type": "http.response.start", "status": self.status, "headers": raw})
        await send({"type": "http.response.body", "body": self.body})


def json_response(
    content: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(content), status, JSON, headers)


class StreamResponse:
    """Sends chunks as the iterator yields them; a client disconnect cancels the iterator.

    The iterator sees the disconnect as ``CancelledError`` at its current ``await`` and runs
    its ``finally`` blocks, which is where the relay stops the replica and meters the request.
    An iterator that never started has no ``finally`` to run: ``on_close`` is called last,
    on every path, so what the request holds is released even then.
    """

    __slots__ = ("chunks", "headers", "media_type", "on_close", "status")

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        status: int = 200,
        media_type: bytes = EVENT_STREAM,
        headers: dict[str, str] | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.chunks = chunks
        self.status = status
        self.media_type = media_type
        self.headers = headers
        self.on_close = on_close

    async def __call__(self, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        running = True
        gone = False

        async def watch() -> None:
            nonlocal gone
            while (await receive())["type"] != "http.disconnect":
                pass
            if running:
                gone = True
                task.cancel()

        loop = asyncio.get_running_loop()
        watcher: asyncio.Task[None] | None = None

        def start_watching() -> None:
            nonlocal watcher
            if running:
                watcher = loop.create_task(watch())

        # A stream that ends within moments never needs a watcher (a task costs this hot
        # path about 7% of its throughput); a client gone meanwhile is noticed just as well
        # once it starts, since the disconnect waits in ``receive``.
        timer = loop.call_later(WATCH_AFTER_SECONDS, start_watching)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status,
                    "headers": _raw_headers(self.media_type, self.headers),
                }
            )
            async for chunk in self.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except asyncio.CancelledError:
            if not gone:
                raise
            task.uncancel()
        finally:
            running = False
            timer.cancel()
            if watcher is not None:
                watcher.cancel()
            try:
                await _close(self.chunks)
            finally:
                if self.on_close is not None:
                    self.on_close()


async def _close(chunks: AsyncIterator[bytes]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()
