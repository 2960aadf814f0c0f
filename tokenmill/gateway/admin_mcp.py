"""Admin routes for a tenant's MCP servers (``plugins.servers``).

    GET    /admin/v1/tenants/{id}/mcp_servers            POST (register)
    GET    /admin/v1/tenants/{id}/mcp_servers/{sid}      PATCH, DELETE
    GET    /admin/v1/tenants/{id}/mcp_servers/{sid}/tools    the server's tools, asked now

A tenant admin manages its own tenant's servers (streamable HTTP, on public addresses); a
platform admin any tenant's, including stdio servers and servers on private networks. A
server's headers are never shown again after they are set, only their names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from tokenmill.control.access import require_tenant
from tokenmill.control.keys import Role
from tokenmill.errors import NotFound
from tokenmill.plugins.client import Endpoint
from tokenmill.plugins.service import McpService

if TYPE_CHECKING:
    from tokenmill.gateway.admin import AdminApi, Call, Handler


def _mcp(admin: AdminApi, call: Call) -> McpService:
    require_tenant(call.principal, call.params[0])
    if admin.tenants.get(call.params[0]) is None:
        raise NotFound(f"No tenant with id {call.params[0]!r}.", param="tenant_id")
    if admin.mcp is None:
        raise NotFound("MCP servers are not enabled on this gateway.", code="not_found")
    return admin.mcp


def list_servers(admin: AdminApi, call: Call) -> Any:
    servers = _mcp(admin, call).servers.list(call.params[0])
    return {"object": "list", "data": [s.as_json() for s in servers]}


def create_server(admin: AdminApi, call: Call) -> Any:
    mcp = _mcp(admin, call)
    platform_admin = call.principal.role == Role.PLATFORM_ADMIN
    created = mcp.servers.create(
        call.params[0], call.body, platform_admin=platform_admin, created_by=call.principal.key_id
    )
    return created.as_json()


def get_server(admin: AdminApi, call: Call) -> Any:
    return _mcp(admin, call).servers.get(call.params[0], call.params[1]).as_json()


def update_server(admin: AdminApi, call: Call) -> Any:
    platform_admin = call.principal.role == Role.PLATFORM_ADMIN
    servers = _mcp(admin, call).servers
    return servers.update(
        call.params[0], call.params[1], call.body, platform_admin=platform_admin
    ).as_json()


def delete_server(admin: AdminApi, call: Call) -> Any:
    _mcp(admin, call).servers.delete(call.params[0], call.params[1])
    return {"object": "mcp_server.deleted", "id": call.params[1], "deleted": True}


def server_tools(admin: AdminApi, call: Call) -> Awaitable[Any]:
    """The tools the server offers now (a connection test), or the error it gives."""
    mcp = _mcp(admin, call)
    server = mcp.servers.get(call.params[0], call.params[1])
    headers = mcp.servers.headers(call.params[0], server.id)

    async def ask() -> Any:
        addresses: tuple[str, ...] = ()
        if server.url is not None:
            addresses = await asyncio.to_thread(
                mcp.guard.check, server.url, "url", trusted=server.trusted
            )
        endpoint = Endpoint(server.label, server.url, server.command, headers, addresses)
        listed = await mcp.client.list_tools(endpoint)
        return {
            "object": "mcp_list_tools",
            "server_label": server.label,
            "tools": listed.tools,
            "error": listed.error,
        }

    return ask()


SERVERS = ("tenants", "*", "mcp_servers")
ROUTES: list[tuple[str, tuple[str, ...], Handler]] = [
    ("GET", SERVERS, list_servers),
    ("POST", SERVERS, create_server),
    ("GET", (*SERVERS, "*"), get_server),
    ("PATCH", (*SERVERS, "*"), update_server),
    ("DELETE", (*SERVERS, "*"), delete_server),
    ("GET", (*SERVERS, "*", "tools"), server_tools),
]
