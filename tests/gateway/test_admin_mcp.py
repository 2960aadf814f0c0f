"""The admin routes of tenants' MCP servers through the gateway: a tenant admin manages its own
tenant's servers and lists a live server's tools; another tenant's admin finds nothing, an
inference key may not ask; stdio servers and private addresses are a platform admin's; and a
server's secret headers never come back in a reply."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import admin_keys, error_of
from tests.plugins.mcp_server import running, tool_names
from tokenmill.clock import SystemClock
from tokenmill.gateway.app import build_app
from tokenmill.gateway.compose import build_gateway
from tokenmill.gateway.routing import Router
from tokenmill.settings import Settings
from tokenmill.store.db import Database

Json = dict[str, Any]
SECRET = "sk-mcp-4b1d9e77c2"
TOOLS = ["add", "capital", "fail", "hang", "huge", "whoami"]
REPO_ROOT = Path(__file__).resolve().parents[2]
STDIO = [sys.executable, "-c", "from tests.plugins.mcp_server import build; build().run('stdio')"]


@dataclass
class World:
    http: httpx.AsyncClient
    platform: str
    alpha_id: str
    alpha_admin: str
    alpha_inference: str
    beta_id: str
    beta_admin: str
    bodies: list[str] = field(default_factory=list)  # every reply's body, for the secret check

    async def call(self, key: str, method: str, path: str, body: object = None) -> httpx.Response:
        response = await self.http.request(
            method, path, json=body, headers={"authorization": f"Bearer {key}"}
        )
        self.bodies.append(response.text)
        return response

    def servers(self, tenant_id: str | None = None) -> str:
        return f"/admin/v1/tenants/{tenant_id or self.alpha_id}/mcp_servers"


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with running() as url:
        yield url


@pytest.fixture
async def world(database: Database, tmp_path: Path) -> AsyncIterator[World]:
    clock = SystemClock()
    k = admin_keys(database, clock)
    # The test MCP server listens on 127.0.0.1: the operator allows that host for tenants.
    settings = Settings(data_dir=tmp_path, mcp_allowed_hosts=["127.0.0.1"])
    gateway = build_gateway(settings, database, clock, Router(), admission=False, journal=False)
    assert gateway.services.admin is not None and gateway.services.admin.mcp is not None
    transport = httpx.ASGITransport(app=build_app(gateway.services))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        yield World(
            http, k.platform, k.alpha_id, k.alpha_admin, k.alpha_inference, k.beta_id, k.beta_admin
        )
    gateway.close()


async def register(w: World, key: str, body: Json, tenant_id: str | None = None) -> Json:
    response = await w.call(key, "POST", w.servers(tenant_id), body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def wiki(url: str, **fields: Any) -> Json:
    return {"label": "wiki", "url": url, "headers": {"X-Api-Key": SECRET}, **fields}


async def test_a_tenant_admin_manages_its_own_servers(world: World, server_url: str) -> None:
    created = await register(
        world, world.alpha_admin, wiki(server_url, allowed_tools=["add"], description="Sums.")
    )
    path = f"{world.servers()}/{created['id']}"

    assert created["object"] == "mcp_server"
    assert (created["tenant_id"], created["server_label"]) == (world.alpha_id, "wiki")
    assert (created["server_url"], created["transport"]) == (server_url, "streamable_http")
    assert created["headers"] == {"X-Api-Key": "<sealed>"}
    assert created["allowed_tools"] == ["add"]

    listed = await world.call(world.alpha_admin, "GET", world.servers())
    assert listed.status_code == 200
    assert listed.json()["object"] == "list"
    assert [s["id"] for s in listed.json()["data"]] == [created["id"]]
    got = await world.call(world.alpha_admin, "GET", path)
    assert got.json() == created

    patched = await world.call(
        world.alpha_admin, "PATCH", path, {"description": "Adds.", "require_approval": "never"}
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["server_description"], patched.json()["require_approval"]) == (
        "Adds.",
        "never",
    )
    assert (await world.call(world.alpha_admin, "GET", path)).json() == patched.json()

    deleted = await world.call(world.alpha_admin, "DELETE", path)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"object": "mcp_server.deleted", "id": created["id"], "deleted": True}
    error_of(await world.call(world.alpha_admin, "GET", path), 404)
    error_of(await world.call(world.alpha_admin, "DELETE", path), 404)
    assert (await world.call(world.alpha_admin, "GET", world.servers())).json()["data"] == []


async def test_a_label_taken_in_the_tenant_is_a_409(world: World, server_url: str) -> None:
    await register(world, world.alpha_admin, wiki(server_url))

    error = error_of(
        await world.call(world.alpha_admin, "POST", world.servers(), wiki(server_url)), 409
    )

    assert error["param"] == "label"
    await register(world, world.beta_admin, wiki(server_url), world.beta_id)


async def test_the_tools_route_asks_the_live_server(world: World, server_url: str) -> None:
    created = await register(world, world.alpha_admin, wiki(server_url))

    response = await world.call(
        world.alpha_admin, "GET", f"{world.servers()}/{created['id']}/tools"
    )

    assert response.status_code == 200, response.text
    listed = response.json()
    assert (listed["object"], listed["server_label"], listed["error"]) == (
        "mcp_list_tools",
        "wiki",
        None,
    )
    assert tool_names(listed["tools"]) == TOOLS
    add = next(tool for tool in listed["tools"] if tool["name"] == "add")
    assert set(add["input_schema"]["properties"]) == {"a", "b"}


async def test_the_tools_route_reports_a_server_that_is_gone(world: World) -> None:
    with running() as url:
        created = await register(world, world.alpha_admin, wiki(url, label="brief"))

    response = await world.call(
        world.alpha_admin, "GET", f"{world.servers()}/{created['id']}/tools"
    )

    assert response.status_code == 200, response.text
    assert response.json()["tools"] == []
    assert "'brief'" in response.json()["error"]


async def test_another_tenant_s_admin_finds_nothing_and_an_inference_key_is_refused(
    world: World, server_url: str
) -> None:
    created = await register(world, world.alpha_admin, wiki(server_url))
    path = f"{world.servers()}/{created['id']}"
    attempts: list[tuple[str, str, object]] = [
        ("GET", world.servers(), None),
        ("POST", world.servers(), wiki(server_url, label="intruder")),
        ("GET", path, None),
        ("PATCH", path, {"url": "https://evil.example.com/mcp"}),
        ("DELETE", path, None),
        ("GET", f"{path}/tools", None),
    ]

    for method, route, body in attempts:
        foreign = await world.call(world.beta_admin, method, route, body)
        error_of(foreign, 404)
        assert "wiki" not in foreign.text and server_url not in foreign.text, (method, route)
        inference = await world.call(world.alpha_inference, method, route, body)
        assert error_of(inference, 403)["code"] == "permission_denied", (method, route)

    # beta's own routes, aimed at alpha's server id, find nothing either.
    beta_path = f"{world.servers(world.beta_id)}/{created['id']}"
    for method, body in [("GET", None), ("PATCH", {"description": "x"}), ("DELETE", None)]:
        error_of(await world.call(world.beta_admin, method, beta_path, body), 404)
    error_of(await world.call(world.beta_admin, "GET", f"{beta_path}/tools"), 404)

    # Nothing of alpha's changed.
    listed = (await world.call(world.alpha_admin, "GET", world.servers())).json()["data"]
    assert listed == [created]


async def test_a_tenant_admin_cannot_register_a_stdio_server(world: World) -> None:
    body = {"label": "local", "command": STDIO}

    error = error_of(await world.call(world.alpha_admin, "POST", world.servers(), body), 403)

    assert (error["param"], error["code"]) == ("command", "permission_denied")
    assert (await world.call(world.alpha_admin, "GET", world.servers())).json()["data"] == []


async def test_a_platform_admin_registers_a_stdio_server_for_a_tenant(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO_ROOT)  # where the server's process imports tests.plugins from
    created = await register(world, world.platform, {"label": "local", "command": STDIO})

    tools = await world.call(world.alpha_admin, "GET", f"{world.servers()}/{created['id']}/tools")

    assert (created["transport"], created["command"]) == ("stdio", STDIO)
    assert tools.status_code == 200, tools.text
    assert tools.json()["error"] is None
    assert tool_names(tools.json()["tools"]) == TOOLS


async def test_a_tenant_admin_s_server_must_be_on_an_allowed_address(world: World) -> None:
    body = {"label": "meta", "url": "http://169.254.169.254/latest/meta-data/"}

    error = error_of(await world.call(world.alpha_admin, "POST", world.servers(), body), 400)

    assert (error["param"], error["code"]) == ("url", "mcp_server_not_allowed")
    trusted = await register(
        world, world.platform, {"label": "internal", "url": "http://10.0.0.9/mcp"}
    )
    assert trusted["server_url"] == "http://10.0.0.9/mcp"


async def test_a_tenant_admin_cannot_repoint_a_platform_admin_s_stdio_server(
    world: World,
) -> None:
    created = await register(world, world.platform, {"label": "local", "command": STDIO})
    path = f"{world.servers()}/{created['id']}"

    response = await world.call(
        world.alpha_admin, "PATCH", path, {"command": ["sh", "-c", "echo owned > /tmp/x"]}
    )

    assert response.status_code in (400, 403), response.text
    assert (await world.call(world.platform, "GET", path)).json()["command"] == STDIO


async def test_a_tenant_admin_cannot_point_a_trusted_server_at_a_private_address(
    world: World,
) -> None:
    created = await register(
        world, world.platform, {"label": "internal", "url": "http://10.0.0.9/mcp"}
    )
    path = f"{world.servers()}/{created['id']}"

    response = await world.call(
        world.alpha_admin, "PATCH", path, {"url": "http://169.254.169.254/latest/meta-data/"}
    )

    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "mcp_server_not_allowed"
    assert (await world.call(world.platform, "GET", path)).json()["server_url"] == (
        "http://10.0.0.9/mcp"
    )


async def test_a_bad_field_is_a_400_naming_it(world: World, server_url: str) -> None:
    created = await register(world, world.alpha_admin, wiki(server_url))
    path = f"{world.servers()}/{created['id']}"

    for method, route, body, param in [
        ("POST", world.servers(), wiki(server_url, label="a b"), "label"),
        (
            "POST",
            world.servers(),
            wiki(server_url, label="x", allowed_tools="add"),
            "allowed_tools",
        ),
        ("PATCH", path, {"require_approval": "sometimes"}, "require_approval"),
        ("PATCH", path, {"headers": {"Bad Name": "v"}}, "headers.Bad Name"),
        ("PATCH", path, {"label": "renamed"}, "label"),
    ]:
        error = error_of(await world.call(world.alpha_admin, method, route, body), 400)
        assert error["param"] == param, (method, body)


async def test_the_secret_header_never_comes_back(world: World, server_url: str) -> None:
    created = await register(world, world.alpha_admin, wiki(server_url))
    path = f"{world.servers()}/{created['id']}"
    await world.call(world.alpha_admin, "GET", world.servers())
    await world.call(world.alpha_admin, "GET", path)
    await world.call(world.alpha_admin, "GET", f"{path}/tools")
    await world.call(world.alpha_admin, "PATCH", path, {"description": "still secret"})
    await world.call(world.alpha_admin, "PATCH", path, {"headers": {"X-Api-Key": 7}})
    await world.call(world.alpha_admin, "POST", world.servers(), wiki(server_url))  # a 409
    await world.call(world.platform, "GET", world.servers())
    await world.call(world.platform, "GET", path)
    await world.call(world.beta_admin, "GET", path)

    assert len(world.bodies) == 10
    assert all(SECRET not in body for body in world.bodies)
    assert (await world.call(world.alpha_admin, "GET", path)).json()["headers"] == {
        "X-Api-Key": "<sealed>"
    }
