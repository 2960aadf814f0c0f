"""Talking to one MCP server with the ``mcp`` SDK: list its tools, call one.

An operation opens its own session (streamable HTTP, or a stdio server's process) and closes
it, all within ``timeout_seconds``; or, given the ``Sessions`` of a response, it runs in the
session that response keeps open with the server (``plugins.sessions``).
Whatever goes wrong (unreachable, a protocol error, a hang, a tool's own error) comes back as
a message for the item the client sees, never as an exception; an output past
``max_output_bytes`` is cut there and says so.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import httpcore2
import httpx2
import mcp_types
import orjson
from httpcore2 import AsyncNetworkStream
from httpcore2._backends.auto import AutoBackend
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

if TYPE_CHECKING:
    from tokenmill.plugins.sessions import Sessions

DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024
MAX_TOOL_PAGES = 20
CLIENT_INFO = mcp_types.Implementation(name="tokenmill", version="0.1.0")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where one server is and what to send it."""

    label: str
    url: str | None = None
    command: tuple[str, ...] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Where the URL's host is reached: the addresses the guard checked (none: by its name).
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Listed:
    tools: list[dict[str, Any]]  # OpenAI's mcp_list_tools shape: name, description, ...
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Called:
    output: str | None
    error: str | None = None
    truncated: bool = False


class McpFailure(Exception):
    """Why an operation on a server failed, in words for the response's item."""


class McpClient:
    def __init__(
        self,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    ) -> None:
        self.timeout_seconds = timeout_seconds
        self.max_output_bytes = max_output_bytes

    async def list_tools(self, endpoint: Endpoint, sessions: Sessions | None = None) -> Listed:
        async def work(client: Client) -> list[dict[str, Any]]:
            tools: list[dict[str, Any]] = []
            cursor: str | None = None
            for _ in range(MAX_TOOL_PAGES):
                page = await client.list_tools(cursor=cursor)
                tools.extend(_tool(tool) for tool in page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
            return tools

        try:
            return Listed(await self._run(endpoint, work, sessions))
        except McpFailure as failure:
            return Listed([], str(failure))

    async def call(
        self,
        endpoint: Endpoint,
        name: str,
        arguments: dict[str, Any],
        sessions: Sessions | None = None,
    ) -> Called:
        async def work(client: Client) -> mcp_types.CallToolResult:
            return await client.call_tool(name, arguments)

        try:
            result = await self._run(endpoint, work, sessions)
        except McpFailure as failure:
            return Called(None, str(failure))
        text = _text(result)
        data = text.encode()
        if result.is_error:
            message = data[: self.max_output_bytes].decode(errors="ignore")
            return Called(None, message or "The tool reported an error without a message.")
        if len(data) > self.max_output_bytes:
            kept = data[: self.max_output_bytes].decode(errors="ignore")
            return Called(
                kept,
                f"The tool's output was {len(data):,} bytes; only the first "
                f"{self.max_output_bytes:,} are kept.",
                truncated=True,
            )
        return Called(text)

    async def _run(self, endpoint: Endpoint, work: Any, sessions: Sessions | None) -> Any:
        if sessions is not None:
            return await sessions.run(endpoint, work)
        try:
            with anyio.fail_after(self.timeout_seconds):
                async with self.connected(endpoint) as client:
                    return await work(client)
        except TimeoutError:
            raise self.timed_out(endpoint) from None
        except Exception as error:  # the SDK raises many kinds, often inside a group
            raise self.failed(endpoint, error) from None

    @asynccontextmanager
    async def connected(self, endpoint: Endpoint) -> AsyncIterator[Client]:
        """A session with the server (streamable HTTP, or a stdio server's process)."""
        if endpoint.command is not None:
            command, *args = endpoint.command
            server: Any = StdioServerParameters(command=command, args=args)
            async with Client(server, client_info=CLIENT_INFO) as client:
                yield client
            return
        assert endpoint.url is not None
        http = httpx2.AsyncClient(
            headers=endpoint.headers,
            timeout=httpx2.Timeout(self.timeout_seconds),
            follow_redirects=False,
            transport=pinned_transport(endpoint.url, endpoint.addresses),
        )
        async with http:
            transport = streamable_http_client(endpoint.url, http_client=http)
            async with Client(transport, client_info=CLIENT_INFO) as client:
                yield client

    def timed_out(self, endpoint: Endpoint) -> McpFailure:
        return McpFailure(
            f"The MCP server '{endpoint.label}' did not answer within "
            f"{_seconds(self.timeout_seconds)}."
        )

    @staticmethod
    def failed(endpoint: Endpoint, error: BaseException) -> McpFailure:
        return McpFailure(f"The MCP server '{endpoint.label}' failed: {_reason(error)}")


class PinnedBackend(AutoBackend):
    """Connects ``host`` only at ``addresses``, and no other host at all."""

    def __init__(self, host: str, addresses: tuple[str, ...]) -> None:
        self._host = host
        self._addresses = addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> AsyncNetworkStream:
        if host.lower().rstrip(".") != self._host:
            raise httpcore2.ConnectError(f"{host} is not the MCP server's host")
        failure: Exception = httpcore2.ConnectError(f"{host} has no address to connect to")
        for address in self._addresses:
            try:
                return await super().connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as error:
                failure = error
        raise failure


def pinned_transport(url: str, addresses: tuple[str, ...]) -> httpx2.AsyncHTTPTransport | None:
    """A transport that reaches ``url``'s host at ``addresses`` only (TLS still checks the
    certificate against the name); None, to connect by name, when there are none."""
    host = urlsplit(url).hostname
    if not addresses or host is None:
        return None
    transport = httpx2.AsyncHTTPTransport()
    # httpx2 takes no network backend; its pool reads this one for each new connection
    transport._pool._network_backend = PinnedBackend(host.lower().rstrip("."), addresses)
    return transport


def _tool(tool: mcp_types.Tool) -> dict[str, Any]:
    annotations = tool.annotations.model_dump(exclude_none=True) if tool.annotations else None
    return {
        "name": tool.name,
        "description": tool.description,
        "input_schema": tool.input_schema,
        "annotations": annotations or None,
    }


def _text(result: mcp_types.CallToolResult) -> str:
    parts: list[str] = []
    for block in result.content:
        if isinstance(block, mcp_types.TextContent):
            parts.append(block.text)
        else:
            kind = getattr(block, "mime_type", None) or block.type
            parts.append(f"[{kind} content not shown]")
    if not parts and result.structured_content is not None:
        parts.append(orjson.dumps(result.structured_content).decode())
    return "\n".join(parts)


def _reason(error: BaseException) -> str:
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    message = str(error) or type(error).__name__
    return message[:500]


def _seconds(value: float) -> str:
    return f"{value:g} s" if value != math.floor(value) else f"{int(value)} s"
