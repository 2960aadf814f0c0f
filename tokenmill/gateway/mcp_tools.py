"""The ``mcp`` tools of a tenant's response: resolved against its registry, then run.

``resolve`` happens before the response starts (a 400 naming the tool otherwise): a label
alone must name one of the tenant's registered servers, whose allowed tools and approval
policy then join the request's; a ``server_url`` must pass the URL guard. Each listing and
call is a usage event of its own (endpoint ``responses.mcp``, model ``mcp:<label>``, no
tokens, no charge), so an operator sees every call a tenant's responses made. A response keeps
one session per server for all its listings and calls (``plugins.sessions``), ended with it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from tokenmill.control.keys import Principal
from tokenmill.errors import InvalidRequest, NotFound, TokenmillError
from tokenmill.gateway.metering import Meter
from tokenmill.gateway.services import Services
from tokenmill.plugins.client import Endpoint
from tokenmill.plugins.servers import ServerInfo
from tokenmill.plugins.service import McpService
from tokenmill.plugins.sessions import Sessions
from tokenmill.responses.mcp import McpTool

ENDPOINT = "responses.mcp"


class TenantPlugins:
    def __init__(self, services: Services, principal: Principal) -> None:
        self._services = services
        self._principal = principal
        self._registered: dict[str, ServerInfo] = {}
        self._meters: list[Meter] = []
        self._sessions: Sessions | None = None  # opened by the first listing or call
        self._endpoints: dict[str, tuple[Endpoint | None, str | None]] = {}  # by label
        self.app_id: str | None = None  # the App the response runs for

    async def resolve(self, tools: tuple[McpTool, ...], places: list[int]) -> tuple[McpTool, ...]:
        """The tools as this tenant may use them (``places``: where each is in the request's
        ``tools``, for the errors' ``param``)."""
        if not tools:
            return tools
        mcp = self._require()
        resolved = []
        for place, tool in zip(places, tools, strict=True):
            where = f"tools[{place}]"
            if tool.server_url is not None:
                await asyncio.to_thread(mcp.guard.check, tool.server_url, f"{where}.server_url")
                resolved.append(tool)
                continue
            server = await asyncio.to_thread(
                mcp.servers.by_label, self._principal.tenant_id, tool.server_label
            )
            if server is None:
                raise InvalidRequest(
                    f"'{where}.server_label': no MCP server labelled '{tool.server_label}' is "
                    "registered for this tenant; register it, or give its server_url.",
                    param=f"{where}.server_label",
                    code="mcp_server_not_found",
                )
            self._registered[tool.server_label] = server
            resolved.append(
                dataclasses.replace(
                    tool,
                    allowed=tool.allowed
                    + (() if server.allowed_tools is None else (server.allowed_tools,)),
                    approvals=(*tool.approvals, server.require_approval),
                )
            )
        return tuple(resolved)

    async def list_tools(self, tool: McpTool) -> tuple[list[dict[str, Any]], str | None]:
        meter = self._meter(tool)
        endpoint, error = await self._endpoint(tool)
        if endpoint is not None:
            listed = await self._require().client.list_tools(endpoint, self._open())
            error = listed.error
        self._finish(meter, error)
        return ([] if endpoint is None else listed.tools), error

    async def call(
        self, tool: McpTool, name: str, arguments: dict[str, Any]
    ) -> tuple[str | None, str | None]:
        meter = self._meter(tool)
        endpoint, error = await self._endpoint(tool)
        if endpoint is None:
            self._finish(meter, error)
            return None, error
        called = await self._require().client.call(endpoint, name, arguments, self._open())
        self._finish(meter, None if called.truncated else called.error)
        return called.output, called.error

    def _open(self) -> Sessions:
        if self._sessions is None:
            self._sessions = Sessions(self._require().client)
        return self._sessions

    async def close(self) -> None:
        """Ends the response's sessions with its servers (a no-op when none was opened)."""
        if self._sessions is not None:
            await self._sessions.close()

    async def durable(self) -> None:
        for meter in self._meters:
            await meter.durable()

    async def _endpoint(self, tool: McpTool) -> tuple[Endpoint | None, str | None]:
        """Where to reach the server, found once per response as its session is opened once
        (its URL checked again, since names move; its headers unsealed)."""
        if tool.server_label not in self._endpoints:
            self._endpoints[tool.server_label] = await self._find(tool)
        return self._endpoints[tool.server_label]

    async def _find(self, tool: McpTool) -> tuple[Endpoint | None, str | None]:
        mcp = self._require()
        server = self._registered.get(tool.server_label)
        try:
            if server is None:
                assert tool.server_url is not None
                addresses = await asyncio.to_thread(mcp.guard.check, tool.server_url, "server_url")
                endpoint = Endpoint(tool.server_label, tool.server_url, headers=tool.headers)
                return dataclasses.replace(endpoint, addresses=addresses), None
            addresses = ()
            if server.url is not None:
                addresses = await asyncio.to_thread(
                    mcp.guard.check, server.url, "server_url", trusted=server.trusted
                )
            headers = await asyncio.to_thread(
                mcp.servers.headers, self._principal.tenant_id, server.id
            )
        except TokenmillError as error:
            return None, f"The MCP server '{tool.server_label}' may not be called: {error.message}"
        label = tool.server_label
        return Endpoint(label, server.url, server.command, headers, addresses), None

    def _meter(self, tool: McpTool) -> Meter:
        services = self._services
        meter = Meter(services.clock, services.sink, self._principal, services.ids.new(), ENDPOINT)
        meter.model = f"mcp:{tool.server_label}"
        meter.app_id = self.app_id
        self._meters.append(meter)
        return meter

    @staticmethod
    def _finish(meter: Meter, error: str | None) -> None:
        if error is None:
            meter.finish("ok", 200)
        else:
            meter.finish("error", 502, "mcp_error")

    def _require(self) -> McpService:
        if self._services.mcp is None:
            raise NotFound("MCP tools are not enabled on this gateway.", param="tools")
        return self._services.mcp
