"""The MCP client against the test server: tools listed with their schemas, calls answered,
headers sent, and every failure (a hang, a tool's error, too much output, nobody listening)
an item with a message, never an exception. A stdio server is spoken to the same way."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp.server.mcpserver.exceptions import ToolError

from tests.plugins.mcp_server import build, running, tool_names
from tokenmill.plugins.client import Called, Endpoint, McpClient

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS = ["add", "capital", "fail", "hang", "huge", "whoami"]
STDIO = (
    sys.executable,
    "-c",
    "from tests.plugins.mcp_server import build; build().run('stdio')",
)


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with running() as url:
        yield url


@pytest.fixture
def wiki(server_url: str) -> Endpoint:
    return Endpoint("wiki", url=server_url)


async def test_list_tools_gives_their_names_and_input_schemas(wiki: Endpoint) -> None:
    listed = await McpClient().list_tools(wiki)

    assert listed.error is None
    assert tool_names(listed.tools) == TOOLS
    add = next(tool for tool in listed.tools if tool["name"] == "add")
    assert add["description"] == "Adds two integers."
    schema = add["input_schema"]
    assert schema["type"] == "object"
    assert {name: spec["type"] for name, spec in schema["properties"].items()} == {
        "a": "integer",
        "b": "integer",
    }
    assert sorted(schema["required"]) == ["a", "b"]


async def test_a_call_returns_the_tool_s_text(wiki: Endpoint) -> None:
    client = McpClient()

    assert await client.call(wiki, "add", {"a": 2, "b": 3}) == Called("5")
    assert await client.call(wiki, "capital", {"country": "peru"}) == Called("Lima")


async def test_the_endpoint_s_headers_go_with_the_call(server_url: str) -> None:
    client = McpClient()
    keyed = Endpoint("wiki", url=server_url, headers={"X-Api-Key": "k1"})

    assert (await client.call(keyed, "whoami", {})).output == "k1"
    assert (await client.call(Endpoint("wiki", url=server_url), "whoami", {})).output == (
        "anonymous"
    )


async def test_a_hanging_tool_comes_back_as_an_error_after_the_timeout(wiki: Endpoint) -> None:
    started = time.monotonic()

    called = await McpClient(timeout_seconds=1).call(wiki, "hang", {})

    assert time.monotonic() - started < 15
    assert called.output is None
    assert called.error is not None
    assert "'wiki'" in called.error
    assert "did not answer within 1 s" in called.error


async def test_a_failing_tool_gives_its_message_and_no_output(wiki: Endpoint) -> None:
    called = await McpClient().call(wiki, "fail", {"message": "the wiki is on fire"})

    assert called.output is None
    assert called.error is not None and "the wiki is on fire" in called.error
    assert not called.truncated


async def test_a_tool_error_s_message_reaches_the_item() -> None:
    server = build()

    @server.tool(description="Refuses with the reason given.")
    def refuse(reason: str) -> str:
        raise ToolError(reason)

    with running(server) as url:
        called = await McpClient().call(Endpoint("wiki", url=url), "refuse", {"reason": "no"})

    assert called.output is None
    assert called.error is not None and called.error.endswith(": no")


async def test_a_tool_error_past_the_output_limit_is_still_an_error() -> None:
    server = build()

    @server.tool(description="Refuses at length.")
    def rant(n: int) -> str:
        raise ToolError("no" * n)

    with running(server) as url:
        called = await McpClient(max_output_bytes=4096).call(
            Endpoint("wiki", url=url), "rant", {"n": 10_000}
        )

    assert called.output is None
    assert called.error is not None and called.error.count("no") >= 100


async def test_an_unknown_tool_is_an_error_not_an_exception(wiki: Endpoint) -> None:
    called = await McpClient().call(wiki, "no_such_tool", {})

    assert called.output is None
    assert called.error is not None and "no_such_tool" in called.error


async def test_output_past_the_limit_is_cut_there_and_says_so(wiki: Endpoint) -> None:
    called = await McpClient(max_output_bytes=65536).call(wiki, "huge", {"n": 200_000})

    assert called.output is not None
    assert len(called.output.encode()) == 65536
    assert called.truncated
    assert called.error is not None
    assert "200,000" in called.error and "65,536" in called.error


async def test_output_under_the_limit_is_whole(wiki: Endpoint) -> None:
    called = await McpClient(max_output_bytes=65536).call(wiki, "huge", {"n": 65536})

    assert called == Called("x" * 65536)


async def test_a_very_large_output_is_still_an_item(wiki: Endpoint) -> None:
    called = await McpClient(timeout_seconds=20, max_output_bytes=65536).call(
        wiki, "huge", {"n": 3_000_000}
    )

    assert isinstance(called, Called)
    assert called.error is not None
    if called.output is not None:
        assert called.truncated
        assert len(called.output.encode()) <= 65536


async def test_a_server_nobody_listens_on_is_an_error_naming_it() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gone = Endpoint("gone-server", url=f"http://127.0.0.1:{port}/mcp")

    listed = await McpClient(timeout_seconds=10).list_tools(gone)
    called = await McpClient(timeout_seconds=10).call(gone, "add", {"a": 1, "b": 2})

    assert listed.tools == []
    assert listed.error is not None and "'gone-server'" in listed.error
    assert called.output is None
    assert called.error is not None and "'gone-server'" in called.error


async def test_a_stdio_server_lists_and_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)  # where the server's process imports tests.plugins from
    local = Endpoint("local", command=STDIO)
    client = McpClient(timeout_seconds=20)

    listed = await client.list_tools(local)

    assert listed.error is None
    assert tool_names(listed.tools) == TOOLS
    assert await client.call(local, "add", {"a": 40, "b": 2}) == Called("42")


async def test_a_stdio_command_that_does_not_exist_is_an_error() -> None:
    missing = Endpoint("ghost", command=("/nonexistent/mcp-server-binary",))

    listed = await McpClient(timeout_seconds=10).list_tools(missing)

    assert listed.tools == []
    assert listed.error is not None and "'ghost'" in listed.error
