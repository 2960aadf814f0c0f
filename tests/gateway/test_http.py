from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tokenmill.gateway.http import HttpRequest, Response, StreamResponse


class Peer:
    """The client side of one ASGI connection."""

    def __init__(self, body: bytes = b"", disconnect: asyncio.Event | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self._body = [{"type": "http.request", "body": body, "more_body": False}]
        self._disconnect = disconnect or asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        if self._body:
            return self._body.pop()
        await self._disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


async def test_response_sends_status_headers_and_body() -> None:
    peer = Peer()
    await Response(b'{"a":1}', 201, headers={"X-Request-Id": "r1"})(peer.receive, peer.send)
    start, body = peer.sent
    assert start["status"] == 201
    assert (b"x-request-id", b"r1") in start["headers"]
    assert (b"content-length", b"7") in start["headers"]
    assert body["body"] == b'{"a":1}'


async def test_stream_sends_every_chunk_then_ends() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        yield b"data: 2\n\n"

    peer = Peer()
    await StreamResponse(chunks())(peer.receive, peer.send)
    bodies = [m.get("body") for m in peer.sent[1:]]
    assert bodies == [b"data: 1\n\n", b"data: 2\n\n", b""]
    assert peer.sent[-1].get("more_body", False) is False


async def test_client_disconnect_cancels_the_stream_and_runs_its_cleanup() -> None:
    gone = asyncio.Event()
    cleaned = asyncio.Event()
    forever = asyncio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        try:
            yield b"data: first\n\n"
            gone.set()
            await forever.wait()
            yield b"never"
        finally:
            cleaned.set()

    peer = Peer(disconnect=gone)
    await asyncio.wait_for(StreamResponse(chunks())(peer.receive, peer.send), timeout=5)
    assert cleaned.is_set()
    assert [m.get("body") for m in peer.sent[1:]] == [b"data: first\n\n"]
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_request_reads_a_body_in_parts_and_finds_headers() -> None:
    parts = [
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": False},
    ]

    async def receive() -> dict[str, Any]:
        return parts.pop(0)

    scope = {"method": "POST", "path": "/x", "headers": [(b"authorization", b"Bearer k")]}
    request = HttpRequest(scope, receive)
    assert await request.body() == b"abcd"
    assert request.header(b"authorization") == "Bearer k"
    assert request.header(b"absent") is None


async def test_a_stream_that_never_starts_still_runs_its_close_callback() -> None:
    closed: list[bool] = []

    async def chunks() -> AsyncIterator[bytes]:
        yield b"never"

    async def send(message: dict[str, Any]) -> None:
        raise OSError("the client is gone")

    response = StreamResponse(chunks(), on_close=lambda: closed.append(True))
    with pytest.raises(OSError):
        await response(Peer().receive, send)
    assert closed == [True]
