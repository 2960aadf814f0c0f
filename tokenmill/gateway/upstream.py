"""A lean keep-alive HTTP/1.1 client for the gateway's calls to its replicas.

Replicas are ours (or engines speaking the same API) on a trusted network, so this client
does only what a relay needs: one request per connection at a time, pooled connections,
a body read whole or chunk by chunk as it arrives. bench/gateway.py measured general-purpose
clients spending more per request than the whole rest of the gateway.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import cast
from urllib.parse import urlsplit

import httptools

from tokenmill.errors import UpstreamError
from tokenmill.protocol.tenancy import PROMPT_TOKENS_HEADER

PROMPT_TOKENS = PROMPT_TOKENS_HEADER.encode()

Address = tuple[str, int]


class _Connection(asyncio.Protocol):
    """One TCP connection; httptools parses the responses that arrive on it."""

    def __init__(self, pool: UpstreamPool, address: Address) -> None:
        self._pool = pool
        self.address = address
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self._parser = httptools.HttpResponseParser(self)
        self._response: UpstreamResponse | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"The model replica sent a malformed response: {exc}."))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(UpstreamError("The model replica closed the connection."))

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._response is None:
            return
        lowered = name.lower()
        if lowered == b"content-type":
            self._response.content_type = value.decode("latin-1")
        elif lowered == PROMPT_TOKENS and value.isdigit():
            self._response.prompt_tokens = int(value)

    def on_headers_complete(self) -> None:
        if self._response is not None:
            self._response._headers_done(self._parser.get_status_code())

    def on_body(self, body: bytes) -> None:
        if self._response is not None:
            self._response._push(body)

    def on_message_complete(self) -> None:
        response, self._response = self._response, None
        if response is not None:
            response._complete(keep_alive=self._parser.should_keep_alive())

    # used by the pool and the response

    def send(self, response: UpstreamResponse, request: bytes) -> None:
        if self.transport is None or self.closed:
            raise UpstreamError("The connection to the model replica is closed.")
        self._response = response
        self.transport.write(request)

    def _fail(self, error: UpstreamError) -> None:
        response, self._response = self._response, None
        if response is not None:
            response._fail(error)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class UpstreamResponse:
    __slots__ = (
        "_chunks",
        "_connection",
        "_done",
        "_error",
        "_headers",
        "_keep_alive",
        "_received",
        "_waiter",
        "content_type",
        "prompt_tokens",
        "status",
    )

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection
        self._headers: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._chunks: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._done = False
        self._keep_alive = False
        self._received = False
        self._error: UpstreamError | None = None
        self.status = 0
        self.content_type = "application/json"
        self.prompt_tokens: int | None = None  # what the replica said the prompt is, early

    async def _wait_headers(self, timeout_seconds: float) -> None:
        async with asyncio.timeout(timeout_seconds):
            await self._headers

    async def chunks(self, idle_timeout_seconds: float) -> AsyncIterator[bytes]:
        """The body as it arrives; raises ``UpstreamError`` if it breaks off."""
        while True:
            if self._chunks:
                yield self._chunks.popleft()
                continue
            if self._done:
                return
            if self._error is not None:
                raise self._error
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(idle_timeout_seconds):
                    await self._waiter
            except TimeoutError:
                raise UpstreamError("The model replica stopped answering.") from None
            finally:
                self._waiter = None

    async def read(self, idle_timeout_seconds: float) -> bytes:
        return b"".join([chunk async for chunk in self.chunks(idle_timeout_seconds)])

    def release(self) -> None:
        """Give the connection back for reuse if the response ended cleanly, else close it."""
        connection, self._connection = self._connection, None  # type: ignore[assignment]
        if connection is None:
            return
        if self._done and self._keep_alive and not connection.closed:
            connection.reused = True
            connection._pool._put(connection)
        else:
            connection.close()

    def _headers_done(self, status: int) -> None:
        self._received = True
        self.status = status
        if not self._headers.done():
            self._headers.set_result(None)

    def _push(self, body: bytes) -> None:
        self._chunks.append(body)
        self._wake()

    def _complete(self, *, keep_alive: bool) -> None:
        self._done = True
        self._keep_alive = keep_alive
        self._wake()

    def _fail(self, error: UpstreamError) -> None:
        if self._done:
            return
        self._error = error
        if not self._headers.done():
            self._headers.set_exception(error)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class UpstreamPool:
    """Idle connections per replica address; a new one is opened whenever none is idle."""

    def __init__(self, connect_timeout_seconds: float = 5.0) -> None:
        self._connect_timeout_seconds = connect_timeout_seconds
        self._idle: dict[Address, list[_Connection]] = {}

    async def request(
        self,
        method: str,
        url: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        timeout_seconds: float,
    ) -> UpstreamResponse:
        """Sends a request and waits for the response's status line and headers.

        A reused connection that the replica had already closed is retried once on a new
        one, but only when nothing of a response had arrived.
        """
        parts = urlsplit(url)
        address = (parts.hostname or "127.0.0.1", parts.port or 80)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        head = [f"{method} {target} HTTP/1.1", f"host: {parts.netloc}"]
        if headers:
            head.extend(f"{name}: {value}" for name, value in headers.items())
        head.append(f"content-length: {len(body)}")
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        for attempt in (1, 2):
            connection = await self._get(address)
            response = UpstreamResponse(connection)
            try:
                connection.send(response, request)
                await response._wait_headers(timeout_seconds)
                return response
            except UpstreamError:
                response.release()
                if not (attempt == 1 and connection.reused and not response._received):
                    raise
            except TimeoutError:
                response.release()
                raise UpstreamError("The model replica did not answer in time.") from None
        raise AssertionError("unreachable")

    async def _get(self, address: Address) -> _Connection:
        idle = self._idle.get(address)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout_seconds):
                _, protocol = await loop.create_connection(
                    lambda: _Connection(self, address), *address
                )
        except (OSError, TimeoutError) as exc:
            raise UpstreamError(
                f"The model replica at {address[0]}:{address[1]} could not be reached: {exc}."
            ) from None
        return protocol

    def _put(self, connection: _Connection) -> None:
        self._idle.setdefault(connection.address, []).append(connection)

    def close(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
