"""The ``mcp`` tool through the real gateway: a tenant's registered server (the test MCP
server, on a local port) listed and called within a response; approvals across responses;
inline servers held by the URL guard; a hanging server turned into an item; each listing and
call metered; one tenant's servers invisible to another."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from openai.types.responses import Response as OpenAIResponse

from tests.gateway.conftest import error_of
from tests.gateway.test_responses import SCRIPTED, STREAM_EVENT, World, frames, open_world
from tests.plugins.mcp_server import running
from tests.responses.scripted import Json, reply
from tokenmill.clock import SystemClock
from tokenmill.control.sealing import Sealer, new_key
from tokenmill.plugins.client import McpClient
from tokenmill.plugins.guard import UrlGuard
from tokenmill.plugins.servers import ServerRepository
from tokenmill.plugins.service import McpService
from tokenmill.store.db import Database


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with running() as url:
        yield url


@pytest.fixture
async def world(database: Database, tmp_path: Path) -> AsyncIterator[World]:
    async with open_world(database, tmp_path) as opened:
        yield opened


def use_guard(world: World, allowed: list[str], timeout_seconds: float = 30.0) -> McpService:
    """The gateway's MCP service with this guard and timeout (as the settings would give)."""
    guard = UrlGuard(allowed)
    servers = ServerRepository(world.database, SystemClock(), Sealer(new_key()), guard.check)
    mcp = McpService(servers, guard, McpClient(timeout_seconds))
    world.gateway.services.mcp = mcp
    return mcp


def register(world: World, url: str, **fields: Any) -> None:
    """Registered as a platform admin would (trusted: a local address is fine)."""
    mcp = world.gateway.services.mcp
    assert mcp is not None
    body = {"label": "calc", "url": url, "require_approval": "never", **fields}
    mcp.servers.create(world.alpha_id, body, platform_admin=True, created_by="k")


def calling(name: str, arguments: Json) -> list[Json]:
    return reply(calls=[(name, orjson.dumps(arguments).decode())])


CALC = {"type": "mcp", "server_label": "calc", "require_approval": "never"}


async def test_a_registered_server_is_listed_and_called_within_a_response(
    world: World, server_url: str
) -> None:
    use_guard(world, [])
    register(world, server_url)
    world.scripted.replies += [calling("add", {"a": 2, "b": 3}), reply("2 + 3 = 5.")]
    made = await world.create(model=SCRIPTED, input="What is 2 + 3?", tools=[CALC])
    OpenAIResponse.model_validate(made)
    listing, call, message = made["output"]
    assert listing["type"] == "mcp_list_tools" and listing["error"] is None
    assert {"add", "capital", "hang"} <= {tool["name"] for tool in listing["tools"]}
    assert (call["type"], call["name"], call["output"], call["status"]) == (
        "mcp_call",
        "add",
        "5",
        "completed",
    )
    assert message["content"][0]["text"] == "2 + 3 = 5."
    offered = [tool["function"]["name"] for tool in world.scripted.bodies[0]["tools"]]
    assert "add" in offered and "whoami" in offered
    events = await world.usage()
    plugin_events = [e for e in events if e.endpoint == "responses.mcp"]
    assert [(e.model, e.status, e.cost_micros) for e in plugin_events] == [
        ("mcp:calc", "ok", 0), ("mcp:calc", "ok", 0)
    ]  # fmt: skip
    assert sum(e.endpoint == "responses" for e in events) == 2


async def test_another_tenant_cannot_use_a_server_it_did_not_register(
    world: World, server_url: str
) -> None:
    use_guard(world, [])
    register(world, server_url)
    refused = await world.call(
        "POST", "/v1/responses", {"model": SCRIPTED, "input": "hi", "tools": [CALC]}, world.beta
    )
    error = error_of(refused, 400)
    assert (error["param"], error["code"]) == ("tools[0].server_label", "mcp_server_not_found")
    assert world.stored(world.beta_id) == []


async def test_an_inline_server_on_a_private_address_is_refused_unless_allowed(
    world: World, server_url: str
) -> None:
    use_guard(world, [])
    inline = {**CALC, "server_url": server_url, "headers": {"X-Api-Key": "sekret-1"}}
    refused = await world.call(
        "POST", "/v1/responses", {"model": SCRIPTED, "input": "hi", "tools": [inline]}
    )
    error = error_of(refused, 400)
    assert (error["param"], error["code"]) == ("tools[0].server_url", "mcp_server_not_allowed")
    use_guard(world, ["127.0.0.1"])
    world.scripted.replies += [calling("whoami", {}), reply("You are known.")]
    made = await world.create(model=SCRIPTED, input="Who am I?", tools=[inline])
    assert made["output"][1]["output"] == "sekret-1"  # the header reached the server
    fetched = await world.call("GET", f"/v1/responses/{made['id']}")
    assert "sekret-1" not in fetched.text.replace(made["output"][1]["output"], "")
    assert "headers" not in fetched.json()["tools"][0]


async def test_a_call_waits_for_approval_then_runs_in_the_follow_up(
    world: World, server_url: str
) -> None:
    use_guard(world, [])
    register(world, server_url, require_approval="always")
    asking_tool = {"type": "mcp", "server_label": "calc"}  # OpenAI's default: always ask
    world.scripted.replies += [calling("capital", {"country": "Peru"})]
    asked = await world.create(model=SCRIPTED, input="Capital of Peru?", tools=[asking_tool])
    request = asked["output"][-1]
    assert request["type"] == "mcp_approval_request"
    assert asked["status"] == "completed"
    world.scripted.replies += [reply("It is Lima.")]
    approval = {"type": "mcp_approval_response", "approval_request_id": request["id"],
                "approve": True}  # fmt: skip
    streamed = await world.call(
        "POST",
        "/v1/responses",
        {"model": SCRIPTED, "input": [approval], "tools": [asking_tool], "stream": True,
         "previous_response_id": asked["id"]},
    )  # fmt: skip
    assert streamed.status_code == 200, streamed.text
    events = frames(streamed.text)
    for name, data in events:
        assert STREAM_EVENT.validate_python(data).type == name
    done = events[-1][1]["response"]
    call = done["output"][0]
    assert (call["type"], call["output"], call["approval_request_id"]) == (
        "mcp_call",
        "Lima",
        request["id"],
    )
    again = await world.call(
        "POST",
        "/v1/responses",
        {"model": SCRIPTED, "input": [{**approval, "approval_request_id": "mcpr_nope"}],
         "tools": [asking_tool], "previous_response_id": asked["id"]},
    )  # fmt: skip
    assert error_of(again, 400)["param"] == "input[0].approval_request_id"


async def test_a_hanging_tool_becomes_a_failed_call_not_a_5xx(
    world: World, server_url: str
) -> None:
    use_guard(world, [], timeout_seconds=1.0)
    register(world, server_url)
    world.scripted.replies += [calling("hang", {}), reply("The tool timed out.")]
    made = await world.create(model=SCRIPTED, input="Wait for it.", tools=[CALC])
    call = made["output"][1]
    assert (call["status"], call["output"]) == ("failed", None)
    assert "did not answer within 1 s" in call["error"]
    assert made["status"] == "completed"
    assert "did not answer" in world.scripted.bodies[1]["messages"][-1]["content"]
    events = [e for e in await world.usage() if e.endpoint == "responses.mcp"]
    assert sorted((e.status, e.error_code or "") for e in events) == [
        ("error", "mcp_error"), ("ok", "")  # the call, and the listing
    ]  # fmt: skip


async def test_mcp_tools_need_the_registry_s_policy_too(world: World, server_url: str) -> None:
    mcp = use_guard(world, [])
    register(world, server_url, allowed_tools=["capital"], require_approval="always")
    world.scripted.replies += [calling("capital", {"country": "Japan"})]
    made = await world.create(model=SCRIPTED, input="Capital of Japan?", tools=[CALC])
    offered = [tool["function"]["name"] for tool in world.scripted.bodies[0]["tools"]]
    assert offered == ["capital"]
    assert made["output"][-1]["type"] == "mcp_approval_request"  # the registry says always
    assert dataclasses.asdict(mcp.servers.list(world.alpha_id)[0])["label"] == "calc"
