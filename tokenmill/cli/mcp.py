"""``tokenmill mcp``: a tenant's registered MCP servers, against the database.

The same registry as ``/admin/v1/tenants/{id}/mcp_servers``, so a server added here is used by
a running ``tokenmill serve`` at once. The CLI runs as the operator: what it registers is
trusted like a platform admin's (a stdio server, an address on a private network).
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

import click

from tokenmill.cli.library import clear_errors

if TYPE_CHECKING:
    from tokenmill.plugins.servers import ServerInfo
    from tokenmill.plugins.service import McpService

CLI_KEY_ID = "cli"  # what the registry records as the registering key

tenant_option = click.option(
    "--tenant", default="admin", show_default=True, help="The tenant's name."
)


def _service_and_tenant(tenant: str) -> tuple[McpService, str]:
    from tokenmill.cli.admin import _tenant
    from tokenmill.cli.main import _open_db
    from tokenmill.plugins.service import McpService
    from tokenmill.settings import Settings

    db, clock = _open_db()
    return McpService.build(Settings(), db, clock), _tenant(db, clock, tenant).id


def parse_header(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` as a pair; the value may hold further ``=``."""
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
        raise click.BadParameter(f"{text!r} is not NAME=VALUE.", param_hint="'--header'")
    return name.strip(), value


def _argv(command_line: str) -> list[str]:
    try:
        argv = shlex.split(command_line)
    except ValueError as error:
        raise click.BadParameter(f"{error}.", param_hint="'--command'") from None
    if not argv:
        raise click.BadParameter("the command line is empty.", param_hint="'--command'")
    return argv


def approval_text(policy: Any) -> str:
    """``always``, ``never``, or ``never: a, b; always: c`` for the per-tool form."""
    if isinstance(policy, str):
        return policy
    return "; ".join(f"{key}: {', '.join(value['tool_names'])}" for key, value in policy.items())


def _where(server: ServerInfo) -> str:
    if server.command is not None:
        return shlex.join(server.command)
    return server.url or "-"


def _tools(server: ServerInfo) -> str:
    return ", ".join(server.allowed_tools) if server.allowed_tools is not None else "all"


@click.group()
def mcp() -> None:
    """Register, list, inspect and remove a tenant's MCP servers."""


@mcp.command("list")
@tenant_option
@clear_errors
def list_servers(tenant: str) -> None:
    """List the tenant's MCP servers by label."""
    from tokenmill.cli.main import format_table

    service, tenant_id = _service_and_tenant(tenant)
    rows = [
        [
            s.id,
            s.label,
            s.transport,
            _where(s),
            ", ".join(s.header_names) or "-",
            _tools(s),
            approval_text(s.require_approval),
        ]
        for s in service.servers.list(tenant_id)
    ]
    headers = ["ID", "LABEL", "TRANSPORT", "WHERE", "HEADERS", "TOOLS", "APPROVAL"]
    click.echo(format_table(headers, rows))


@mcp.command("add")
@click.argument("label")
@click.option("--url", help="The server's streamable HTTP endpoint.")
@click.option(
    "--command",
    "command_line",
    metavar="ARGV",
    help="Or a stdio server's command line, split as a shell would: 'python -m my_server'.",
)
@click.option(
    "--header",
    "header_pairs",
    multiple=True,
    metavar="NAME=VALUE",
    help="A header sent with every request to it (repeatable); sealed, never shown again.",
)
@click.option(
    "--allow",
    "allowed",
    multiple=True,
    metavar="TOOL",
    help="A tool its responses may use (repeatable; default: all).",
)
@click.option(
    "--approval",
    type=click.Choice(["always", "never"]),
    help="Whether its tool calls wait for the client's approval [default: always].",
)
@click.option("--description", help="What it is for, shown to the model.")
@tenant_option
@clear_errors
def add(
    label: str,
    url: str | None,
    command_line: str | None,
    header_pairs: tuple[str, ...],
    allowed: tuple[str, ...],
    approval: str | None,
    description: str | None,
    tenant: str,
) -> None:
    """Register an MCP server as LABEL, at --url or run with --command; prints its id."""
    if (url is None) == (command_line is None):
        raise click.UsageError("Give either --url or --command.")
    body: dict[str, Any] = {"label": label}
    if command_line is not None:
        body["command"] = _argv(command_line)
    else:
        body["url"] = url
    if header_pairs:
        body["headers"] = dict(parse_header(pair) for pair in header_pairs)
    if allowed:
        body["allowed_tools"] = list(allowed)
    if approval is not None:
        body["require_approval"] = approval
    if description is not None:
        body["description"] = description
    service, tenant_id = _service_and_tenant(tenant)
    server = service.servers.create(tenant_id, body, platform_admin=True, created_by=CLI_KEY_ID)
    click.echo(f"Registered {server.id} ({server.label}, {server.transport}) for tenant {tenant}.")


@mcp.command("show")
@click.argument("server_id")
@click.option("--json", "as_json", is_flag=True, help="The server as the admin API returns it.")
@tenant_option
@clear_errors
def show(server_id: str, as_json: bool, tenant: str) -> None:
    """Show one server: where it is, its header names, its tools and approval policy."""
    from tokenmill.cli.main import _when

    service, tenant_id = _service_and_tenant(tenant)
    server = service.servers.get(tenant_id, server_id)
    if as_json:
        import orjson

        click.echo(orjson.dumps(server.as_json(), option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(f"{server.id}  {server.label}  {server.transport}")
    if server.description:
        click.echo(f"description: {server.description}")
    click.echo(f"{'command' if server.command is not None else 'url'}: {_where(server)}")
    names = ", ".join(server.header_names)
    click.echo(f"headers: {names} (sealed)" if names else "headers: none")
    click.echo(f"allowed tools: {_tools(server)}")
    click.echo(f"approval: {approval_text(server.require_approval)}")
    click.echo(f"created: {_when(server.created_at)}, updated: {_when(server.updated_at)}")


@mcp.command("remove")
@click.argument("server_id")
@tenant_option
@clear_errors
def remove(server_id: str, tenant: str) -> None:
    """Remove a server; responses can no longer name it."""
    service, tenant_id = _service_and_tenant(tenant)
    server = service.servers.get(tenant_id, server_id)
    service.servers.delete(tenant_id, server_id)
    click.echo(f"Removed {server.id} ({server.label}).")


@mcp.command("tools")
@click.argument("server_id")
@tenant_option
@clear_errors
def tools(server_id: str, tenant: str) -> None:
    """Ask the server for its tools now (a connection test); exits 1 with its error."""
    import asyncio

    from tokenmill.cli.main import format_table
    from tokenmill.plugins.client import Endpoint

    service, tenant_id = _service_and_tenant(tenant)
    server = service.servers.get(tenant_id, server_id)
    headers = service.servers.headers(tenant_id, server.id)
    if server.url is not None:
        service.guard.check(server.url, "url", trusted=server.trusted)
    endpoint = Endpoint(server.label, server.url, server.command, headers)
    listed = asyncio.run(service.client.list_tools(endpoint))
    if listed.error is not None:
        raise click.ClickException(listed.error)
    allowed = set(server.allowed_tools) if server.allowed_tools is not None else None
    rows = [
        [
            tool["name"],
            "yes" if allowed is None or tool["name"] in allowed else "no",
            " ".join((tool.get("description") or "-").split()),
        ]
        for tool in listed.tools
    ]
    click.echo(format_table(["NAME", "ALLOWED", "DESCRIPTION"], rows))
