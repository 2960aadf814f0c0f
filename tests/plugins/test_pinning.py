"""A tenant's MCP server is reached at the addresses the guard checked, never at a fresh
lookup of its name: the pinned transport connects a name that resolves nowhere (or
elsewhere) to the checked address, and refuses any other host."""

from __future__ import annotations

import httpx2
import pytest

from tests.plugins.mcp_server import running
from tokenmill.plugins.client import pinned_transport


async def test_the_checked_address_is_where_the_name_is_reached() -> None:
    with running() as url:
        port = url.split(":")[2].split("/")[0]
        named = f"http://mcp.pinned.invalid:{port}/mcp"  # resolves nowhere
        transport = pinned_transport(named, ("127.0.0.1",))
        assert transport is not None
        async with httpx2.AsyncClient(transport=transport) as client:
            reached = await client.get(named)  # the server answers (it checks the Host too)
            assert reached.status_code in (400, 405, 406, 421)
            with pytest.raises(httpx2.ConnectError, match="not the MCP server's host"):
                await client.get(f"http://127.0.0.1:{port}/mcp")


def test_a_host_the_operator_trusts_is_reached_by_its_name() -> None:
    assert pinned_transport("http://mcp.internal/mcp", ()) is None
