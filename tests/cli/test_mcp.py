"""``tokenmill mcp`` against a fresh data directory: servers registered, listed, shown and
removed through the registry the admin API uses, and their tools asked of the test MCP server
(``tests.plugins.mcp_server``) over streamable HTTP and over stdio."""

from __future__ import annotations

import shlex
import sys

import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from tests.plugins.mcp_server import running
from tokenmill.cli.main import main
from tokenmill.clock import SystemClock
from tokenmill.fleet.local import free_port
from tokenmill.plugins.service import McpService
from tokenmill.settings import Settings
from tokenmill.store.app_tables import McpServer
from tokenmill.store.db import Database

SECRET = "sk-mcp-7f3a9c"
TOOLS = {
    "add": "Adds two integers.",
    "capital": "The capital city of a country.",
    "fail": "Always fails with the message given.",
    "hang": "Never answers in time.",
    "huge": "Returns n bytes of text.",
    "whoami": "The X-Api-Key header this call carried.",
}
STDIO_SERVER = "from tests.plugins.mcp_server import build; build().run('stdio')"


def add(cli: CliRunner, *args: str, tenant: str = "acme") -> str:
    """Registers a server with ``tokenmill mcp add``; its id."""
    added = cli.invoke(main, ["mcp", "add", "--tenant", tenant, *args])
    assert added.exit_code == 0, added.output
    assert added.output.startswith("Registered mcpsrv_")
    return added.output.split()[1]


def test_add_list_show_and_remove(cli: CliRunner, acme: str) -> None:
    docs = add(
        cli, "docs", "--url", "https://mcp.example.com/mcp", "--header", f"X-Api-Key={SECRET}",
        "--header", "X-Team=a=b", "--allow", "search", "--allow", "fetch",
        "--approval", "never", "--description", "The handbook's search.",
    )  # fmt: skip
    local = add(cli, "local", "--command", "python -m my_server --root '/srv/my docs'")

    listed = cli.invoke(main, ["mcp", "list", "--tenant", "acme"])
    assert listed.exit_code == 0, listed.output
    header, *rows = listed.output.splitlines()
    assert header.split() == ["ID", "LABEL", "TRANSPORT", "WHERE", "HEADERS", "TOOLS", "APPROVAL"]
    assert [row.split("  ")[0] for row in rows] == [docs, local]  # by label
    assert rows[0].split()[1:] == [
        "docs", "streamable_http", "https://mcp.example.com/mcp", "X-Api-Key,", "X-Team",
        "search,", "fetch", "never",
    ]  # fmt: skip
    assert rows[1].split()[1:4] == ["local", "stdio", "python"]
    assert "'/srv/my docs'" in rows[1] and rows[1].split()[-3:] == ["-", "all", "always"]
    assert SECRET not in listed.output
    assert cli.invoke(main, ["mcp", "list", "--tenant", "other"]).output.splitlines()[1:] == []

    shown = cli.invoke(main, ["mcp", "show", docs, "--tenant", "acme"])
    assert shown.exit_code == 0, shown.output
    assert shown.output.splitlines()[:6] == [
        f"{docs}  docs  streamable_http",
        "description: The handbook's search.",
        "url: https://mcp.example.com/mcp",
        "headers: X-Api-Key, X-Team (sealed)",
        "allowed tools: search, fetch",
        "approval: never",
    ]
    assert shown.output.splitlines()[6].startswith("created: ")
    whole = cli.invoke(main, ["mcp", "show", local, "--json", "--tenant", "acme"])
    body = orjson.loads(whole.output)
    assert body["object"] == "mcp_server" and body["tenant_id"] == acme
    assert body["command"] == ["python", "-m", "my_server", "--root", "/srv/my docs"]
    assert body["server_url"] is None and body["headers"] == {} and body["allowed_tools"] is None

    # The headers are sealed at rest, and open again for the connection only.
    db = Database.from_settings(Settings())
    try:
        with db.session() as session:
            sealed = session.scalars(select(McpServer.sealed_headers)).all()
        assert all(SECRET.encode() not in (value or b"") for value in sealed)
        service = McpService.build(Settings(), db, SystemClock())
        opened = service.servers.headers(acme, docs)
        assert opened == {"X-Api-Key": SECRET, "X-Team": "a=b"}
        assert service.servers.get(acme, local).trusted  # the operator's registration
    finally:
        db.dispose()

    removed = cli.invoke(main, ["mcp", "remove", docs, "--tenant", "acme"])
    assert removed.exit_code == 0 and removed.output.strip() == f"Removed {docs} (docs)."
    listed = cli.invoke(main, ["mcp", "list", "--tenant", "acme"]).output
    assert docs not in listed and local in listed


def test_tools_lists_what_the_server_offers_now(cli: CliRunner, acme: str) -> None:
    with running() as url:
        server_id = add(cli, "calc", "--url", url, "--allow", "add", "--allow", "capital")
        asked = cli.invoke(main, ["mcp", "tools", server_id, "--tenant", "acme"])
    assert asked.exit_code == 0, asked.output
    header, *rows = asked.output.splitlines()
    assert header.split() == ["NAME", "ALLOWED", "DESCRIPTION"]
    found = {row.split()[0]: (row.split()[1], row.split(None, 2)[2]) for row in rows}
    assert found == {
        name: ("yes" if name in ("add", "capital") else "no", description)
        for name, description in TOOLS.items()
    }


def test_tools_of_a_stdio_server(cli: CliRunner, acme: str) -> None:
    command = shlex.join([sys.executable, "-c", STDIO_SERVER])
    server_id = add(cli, "stdio-calc", "--command", command)
    asked = cli.invoke(main, ["mcp", "tools", server_id, "--tenant", "acme"])
    assert asked.exit_code == 0, asked.output
    assert sorted(row.split()[0] for row in asked.output.splitlines()[1:]) == sorted(TOOLS)


def test_tools_of_a_server_that_does_not_answer_is_its_error(cli: CliRunner, acme: str) -> None:
    server_id = add(cli, "gone", "--url", f"http://127.0.0.1:{free_port()}/mcp")
    asked = cli.invoke(main, ["mcp", "tools", server_id, "--tenant", "acme"])
    assert asked.exit_code == 1
    assert "Error: The MCP server 'gone' failed: " in asked.output
    assert "Traceback" not in asked.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["x"], "Give either --url or --command."),
        (["x", "--url", "https://a.example/mcp", "--command", "srv"], "Give either"),
        (["x", "--url", "https://a.example/mcp", "--header", "X-Key"], "is not NAME=VALUE"),
        (["x", "--command", "srv 'unclosed"], "No closing quotation"),
        (["x", "--url", "ftp://a.example/mcp"], "must be an http:// or https:// URL"),
        (["no spaces", "--url", "https://a.example/mcp"], "'label' must be 1 to 64 letters"),
        (["x", "--url", "https://a.example/mcp", "--header", "Bad Name=1"], "a header name"),
    ],
)
def test_a_refused_registration_is_one_clear_error(
    cli: CliRunner, acme: str, args: list[str], message: str
) -> None:
    refused = cli.invoke(main, ["mcp", "add", "--tenant", "acme", *args])
    assert refused.exit_code in (1, 2) and message in refused.output, refused.output
    assert "Traceback" not in refused.output
    assert cli.invoke(main, ["mcp", "list", "--tenant", "acme"]).output.splitlines()[1:] == []


def test_a_label_is_taken_once_per_tenant(cli: CliRunner, acme: str) -> None:
    add(cli, "docs", "--url", "https://a.example/mcp")
    again = cli.invoke(main, ["mcp", "add", "docs", "--url", "https://b.example/mcp",
                              "--tenant", "acme"])  # fmt: skip
    assert again.exit_code == 1
    assert "This tenant already has an MCP server labelled 'docs'." in again.output
    add(cli, "docs", "--url", "https://b.example/mcp", tenant="other")


@pytest.mark.parametrize("command", ["show", "remove", "tools"])
def test_an_unknown_id_or_tenant_is_one_clear_error(
    cli: CliRunner, acme: str, command: str
) -> None:
    server_id = add(cli, "docs", "--url", "https://a.example/mcp")
    missing = cli.invoke(main, ["mcp", command, "mcpsrv_nope", "--tenant", "acme"])
    assert missing.exit_code == 1
    assert "No MCP server found with id 'mcpsrv_nope'." in missing.output
    theirs = cli.invoke(main, ["mcp", command, server_id, "--tenant", "other"])
    assert theirs.exit_code == 1
    assert f"No MCP server found with id '{server_id}'." in theirs.output
    ghost = cli.invoke(main, ["mcp", command, server_id, "--tenant", "ghost"])
    assert ghost.exit_code == 1 and "No tenant named 'ghost'." in ghost.output
    assert "Traceback" not in missing.output + theirs.output + ghost.output
    still = cli.invoke(main, ["mcp", "show", server_id, "--tenant", "acme"])
    assert still.exit_code == 0 and "docs" in still.output
