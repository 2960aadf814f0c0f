"""An MCP server written for the tests with the ``mcp`` SDK, served over streamable HTTP on a
free local port in a thread of its own: tools that answer, fail, hang, answer too much, and
report the headers they were sent."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Kenya": "Nairobi", "Peru": "Lima"}


def build() -> MCPServer:
    server: MCPServer = MCPServer("tokenmill-tests")

    @server.tool(description="Adds two integers.")
    def add(a: int, b: int) -> int:
        return a + b

    @server.tool(description="The capital city of a country.")
    def capital(country: str) -> str:
        return CAPITALS.get(country.strip().title(), f"No capital known for {country!r}.")

    @server.tool(description="The X-Api-Key header this call carried.")
    def whoami(ctx: Context) -> str:
        headers = ctx.headers or {}
        return str(headers.get("x-api-key") or "anonymous")

    @server.tool(description="Never answers in time.")
    async def hang(seconds: float = 3600.0) -> str:
        await anyio.sleep(seconds)
        return "woke up"

    @server.tool(description="Always fails with the message given.")
    def fail(message: str) -> str:
        raise ToolError(message)  # the SDK hides any other exception's message

    @server.tool(description="Returns n bytes of text.")
    def huge(n: int) -> str:
        return "x" * n

    return server


OPENINGS: dict[str, int] = {}  # by endpoint URL: the sessions clients opened (handshakes)
HANDSHAKES = (b'"server/discover"', b'"initialize"')


def counting(app: Any, url: list[str]) -> Any:
    """``app``, counting in ``OPENINGS`` the requests that open a session."""

    async def counted(scope: Any, receive: Any, send: Any) -> None:
        async def peek() -> Any:
            message = await receive()
            body = message.get("body", b"")
            if any(handshake in body for handshake in HANDSHAKES):
                OPENINGS[url[0]] = OPENINGS.get(url[0], 0) + 1
            return message

        await app(scope, peek if scope["type"] == "http" else receive, send)

    return counted


@contextmanager
def running(server: MCPServer | None = None) -> Iterator[str]:
    """Serves ``server`` (``build()`` by default); yields its endpoint URL."""
    where: list[str] = [""]
    app = counting((server or build()).streamable_http_app(), where)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1)
    uvicorn_server = uvicorn.Server(config)
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            uvicorn_server.run(sockets=[sock])
        except BaseException as error:  # reported to the test below
            failure.append(error)

    thread = threading.Thread(target=serve, name="mcp-test-server", daemon=True)
    thread.start()
    while not uvicorn_server.started:
        if failure or not thread.is_alive():
            raise RuntimeError(f"the test MCP server did not start: {failure}")
        threading.Event().wait(0.01)
    where[0] = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
    try:
        yield where[0]
    finally:
        uvicorn_server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def tool_names(tools: list[dict[str, Any]]) -> list[str]:
    return sorted(tool["name"] for tool in tools)
