"""The gateway's HTTP client against real sockets, served by scripted raw HTTP servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tokenmill.errors import UpstreamError
from tokenmill.fleet.local import free_port
from tokenmill.gateway.upstream import UpstreamPool

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head, await reader.readexactly(length)


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        + extra
        + b"content-length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> str:
        port = free_port()
        servers.append(await asyncio.start_server(handler, "127.0.0.1", port))
        return f"http://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.close()


async def test_keep_alive_reuses_one_connection(serve) -> None:  # type: ignore[no-untyped-def]
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                head, body = await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            assert b"x-request-id: r1" in head
            writer.write(ok(b'{"echo": ' + body + b"}"))
            await writer.drain()

    base = await serve(handler)
    pool = UpstreamPool()
    for _ in range(3):
        response = await pool.request(
            "POST", f"{base}/v1/x", b"[1]", {"x-request-id": "r1"}, timeout_seconds=5
        )
        assert response.status == 200
        assert response.content_type == "application/json"
        assert await response.read(5) == b'{"echo": [1]}'
        response.release()
    assert connections == 1
    pool.close()


async def test_chunked_body_arrives_piece_by_piece(serve) -> None:  # type: ignore[no-untyped-def]
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        writer.write(b"5\r\nfirst\r\n")
        await writer.drain()
        await release.wait()
        writer.write(b"6\r\nsecond\r\n0\r\n\r\n")
        await writer.drain()

    base = await serve(handler)
    pool = UpstreamPool()
    response = await pool.request("POST", f"{base}/s", b"{}", timeout_seconds=5)
    chunks = response.chunks(5)
    assert await anext(chunks) == b"first"
    release.set()
    assert [c async for c in chunks] == [b"second"]
    response.release()
    pool.close()


async def test_a_closed_idle_connection_is_retried_on_a_new_one(serve) -> None:  # type: ignore[no-untyped-def]
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(ok(b"{}"))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()  # the server drops the keep-alive connection

    base = await serve(handler)
    pool = UpstreamPool()
    for _ in range(2):
        response = await pool.request("GET", f"{base}/", timeout_seconds=5)
        assert await response.read(5) == b"{}"
        response.release()
        await asyncio.sleep(0.1)
    pool.close()


async def test_unreachable_replica_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError, match="could not be reached"):
        await UpstreamPool().request("GET", f"http://127.0.0.1:{free_port()}/", timeout_seconds=5)


async def test_a_silent_replica_times_out(serve) -> None:  # type: ignore[no-untyped-def]
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(10)

    base = await serve(handler)
    with pytest.raises(UpstreamError, match="in time"):
        await UpstreamPool().request("GET", f"{base}/", timeout_seconds=0.2)


async def test_a_body_cut_short_is_an_upstream_error(serve) -> None:  # type: ignore[no-untyped-def]
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this")
        await writer.drain()
        writer.close()

    base = await serve(handler)
    response = await UpstreamPool().request("GET", f"{base}/", timeout_seconds=5)
    with pytest.raises(UpstreamError, match="closed the connection"):
        await response.read(5)
    response.release()


async def test_a_malformed_response_is_an_upstream_error(serve) -> None:  # type: ignore[no-untyped-def]
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()

    base = await serve(handler)
    with pytest.raises(UpstreamError):
        await UpstreamPool().request("GET", f"{base}/", timeout_seconds=5)


async def test_a_connection_closing_response_is_not_pooled(serve) -> None:  # type: ignore[no-untyped-def]
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_request(reader)
        writer.write(ok(b"{}", b"connection: close\r\n"))
        await writer.drain()
        writer.close()

    base = await serve(handler)
    pool = UpstreamPool()
    for _ in range(2):
        response = await pool.request("GET", f"{base}/", timeout_seconds=5)
        await response.read(5)
        response.release()
    assert connections == 2
    pool.close()
