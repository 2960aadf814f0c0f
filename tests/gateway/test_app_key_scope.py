"""An App's key held to its App on ``/v1/responses``: the key may name the App (or nothing),
but a request made with it must not swap the App's model or add tools the App does not have
(another vector store of the tenant, another MCP server)."""

from __future__ import annotations

from tests.gateway.conftest import error_of
from tests.gateway.live import MODEL
from tests.gateway.test_apps import admin_key, make_app
from tests.gateway.test_apps import world as world  # the fixture, shared
from tests.gateway.test_responses import SCRIPTED, World
from tests.responses.scripted import reply


async def _app_key(world: World) -> tuple[str, str]:
    key = admin_key(world)
    app = await make_app(world, key)
    issued = await world.call("POST", f"/v1/apps/{app['id']}/keys", {"name": "widget"}, key)
    return app["id"], issued.json()["secret"]


async def test_an_app_key_does_not_swap_the_apps_model(world: World) -> None:
    app_id, secret = await _app_key(world)
    world.scripted.replies.append(reply("From the App's model."))
    answer = await world.call(
        "POST", "/v1/responses",
        {"model": MODEL, "input": "hi", "prompt": {"id": app_id, "variables": {"company": "A"}}},
        secret,
    )  # fmt: skip
    assert error_of(answer, 400)["param"] == "model"
    same = await world.call(
        "POST", "/v1/responses",
        {"model": SCRIPTED, "input": "hi", "prompt": {"id": app_id, "variables": {"company": "A"}}},
        secret,
    )  # fmt: skip
    assert same.status_code == 200 and same.json()["model"] == SCRIPTED  # its own model: fine


async def test_an_app_key_does_not_add_tools_the_app_lacks(world: World) -> None:
    app_id, secret = await _app_key(world)
    store = await world.call("POST", "/v1/vector_stores", {"name": "private"})
    assert store.status_code == 200, store.text
    tool = {"type": "file_search", "vector_store_ids": [store.json()["id"]]}
    world.scripted.replies.append(reply("ok"))
    answer = await world.call(
        "POST", "/v1/responses",
        {"input": "hi", "tools": [tool], "prompt": {"id": app_id, "variables": {"company": "A"}}},
        secret,
    )  # fmt: skip
    assert error_of(answer, 400)["param"] == "tools"
    assert world.scripted.bodies == []
