"""A response's sessions with an MCP server (the test server, which counts the sessions its
clients open): one for a listing and the calls after it, a new one after a timeout ends it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.plugins.mcp_server import OPENINGS, running
from tokenmill.plugins.client import Endpoint, McpClient
from tokenmill.plugins.sessions import Sessions


@pytest.fixture
def url() -> Iterator[str]:
    with running() as served:
        yield served


async def test_a_response_s_operations_share_one_session(url: str) -> None:
    client, endpoint = McpClient(), Endpoint("calc", url)
    sessions = Sessions(client)
    listed = await client.list_tools(endpoint, sessions)
    assert listed.error is None and "add" in {t["name"] for t in listed.tools}
    for a in range(3):
        assert (await client.call(endpoint, "add", {"a": a, "b": 1}, sessions)).output == str(a + 1)
    assert OPENINGS[url] == 1
    await sessions.close()
    assert (await client.call(endpoint, "add", {"a": 1, "b": 1}, sessions)).output == "2"
    assert OPENINGS[url] == 2  # closed: the next operation opened a new one
    await sessions.close()
    for _ in range(2):
        await client.call(endpoint, "add", {"a": 1, "b": 1})
    assert OPENINGS[url] == 4  # without sessions, each operation opens its own


async def test_a_timeout_ends_the_session_and_the_next_call_opens_another(url: str) -> None:
    client, endpoint = McpClient(timeout_seconds=1.0), Endpoint("calc", url)
    sessions = Sessions(client)
    assert (await client.call(endpoint, "add", {"a": 1, "b": 1}, sessions)).output == "2"
    started = time.monotonic()
    hung = await client.call(endpoint, "hang", {}, sessions)
    assert hung.output is None and "did not answer within 1 s" in (hung.error or "")
    assert time.monotonic() - started < 15
    assert (await client.call(endpoint, "add", {"a": 2, "b": 2}, sessions)).output == "4"
    assert OPENINGS[url] == 2
    failed = await client.call(endpoint, "fail", {"message": "boom"}, sessions)
    assert "boom" in (failed.error or "")
    assert (await client.call(endpoint, "add", {"a": 3, "b": 3}, sessions)).output == "6"
    assert OPENINGS[url] == 2  # a tool's own error leaves the session open
    await sessions.close()


async def test_an_unreachable_server_fails_each_operation_clearly() -> None:
    client, endpoint = McpClient(timeout_seconds=2.0), Endpoint("gone", "http://127.0.0.1:9/mcp")
    sessions = Sessions(client)
    listed = await client.list_tools(endpoint, sessions)
    assert listed.tools == [] and "The MCP server 'gone' failed" in (listed.error or "")
    called = await client.call(endpoint, "add", {"a": 1, "b": 1}, sessions)
    assert called.output is None and "'gone'" in (called.error or "")
    await sessions.close()
