"""Apps through the real gateway, their model calls answered by the scripted replica: built and
versioned by an admin key, called with ``prompt`` on ``/v1/responses`` and on their chat
route, their keys held to their App, their usage counted per App, their guardrails."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from openai.types.responses import Response as OpenAIResponse

from tests.gateway.conftest import error_of
from tests.gateway.test_responses import SCRIPTED, World, open_world
from tests.responses.scripted import Json, reply
from tokenmill.billing.statements import Reports
from tokenmill.clock import SystemClock
from tokenmill.control.keys import KeyRepository
from tokenmill.store.db import Database

CONFIG: Json = {
    "model": SCRIPTED,
    "instructions": "You help customers of {{company}} in {{tone}} words.",
    "variables": {"tone": "kind"},
    "temperature": 0.2,
    "max_output_tokens": 40,
    "guardrails": {"max_output_tokens": 30, "blocked_topics": ["medical advice"]},
}


@pytest.fixture
async def world(database: Database, tmp_path: Path) -> AsyncIterator[World]:
    async with open_world(database, tmp_path) as opened:
        yield opened


def admin_key(world: World) -> str:
    _, secret = KeyRepository(world.database, SystemClock()).create(
        world.alpha_id, "alpha-admin", role="tenant_admin"
    )
    return secret


async def make_app(world: World, key: str, config: Json | None = None) -> Json:
    made = await world.call(
        "POST", "/v1/apps", {"name": "Helpdesk", "config": config or CONFIG}, key
    )
    assert made.status_code == 200, made.text
    return dict(made.json())


async def test_an_app_is_called_with_prompt_and_its_usage_counted_per_app(world: World) -> None:
    app = await make_app(world, admin_key(world))
    assert (app["latest_version"], app["published_version"]) == (1, None)
    world.scripted.replies.append(reply("Happy to help."))
    made = await world.create(
        model=SCRIPTED, input="Hello?", prompt={"id": app["id"], "variables": {"company": "Acme"}}
    )
    OpenAIResponse.model_validate(made)
    assert made["prompt"] == {"id": app["id"], "version": "1", "variables": {"company": "Acme"}}
    sent = world.scripted.bodies[0]
    assert sent["messages"][0] == {
        "role": "system", "content": "You help customers of Acme in kind words."
    }  # fmt: skip
    assert (sent["temperature"], sent["max_tokens"]) == (0.2, 30)  # the guardrail's limit
    events = [e for e in await world.usage() if e.endpoint == "responses"]
    assert [e.app_id for e in events] == [app["id"]]
    rows = Reports(world.database).usage(world.alpha_id, "app")
    assert [(row.group, row.requests) for row in rows] == [(app["id"], 1)]


async def test_variables_must_be_given_or_defaulted_and_known(world: World) -> None:
    app = await make_app(world, admin_key(world))
    missing = await world.call(
        "POST", "/v1/responses", {"input": "hi", "prompt": {"id": app["id"]}}
    )
    assert error_of(missing, 400)["param"] == "prompt.variables.company"
    unknown = await world.call(
        "POST", "/v1/responses",
        {"input": "hi", "prompt": {"id": app["id"], "variables": {"company": "A", "x": "y"}}},
    )  # fmt: skip
    assert error_of(unknown, 400)["param"] == "prompt.variables.x"
    assert world.scripted.bodies == []


async def test_a_blocked_topic_is_refused_before_any_model_call(world: World) -> None:
    app = await make_app(world, admin_key(world))
    prompt = {"id": app["id"], "variables": {"company": "Acme"}}
    refused = await world.call(
        "POST", "/v1/responses", {"input": "I need MEDICAL advice now", "prompt": prompt}
    )
    error = error_of(refused, 400)
    assert (error["code"], error["param"]) == ("blocked_topic", "input")
    assert world.scripted.bodies == []
    [refusal] = await world.usage()
    assert (refusal.status, refusal.app_id, refusal.cost_micros) == ("error", app["id"], 0)


async def test_versions_are_kept_published_and_compared(world: World) -> None:
    key = admin_key(world)
    app = await make_app(world, key)
    changed = {**CONFIG, "instructions": "You help {{company}} tersely.", "variables": {}}
    saved = await world.call(
        "POST", f"/v1/apps/{app['id']}/versions", {"config": changed, "note": "terser"}, key
    )
    assert saved.json()["version"] == "2"
    published = await world.call("POST", f"/v1/apps/{app['id']}", {"published_version": "1"}, key)
    assert published.json()["published_version"] == 1
    prompt = {"id": app["id"], "variables": {"company": "Acme"}}
    world.scripted.replies += [reply("v1"), reply("v2")]
    await world.create(model=SCRIPTED, input="hi", prompt=prompt)
    await world.create(model=SCRIPTED, input="hi", prompt={**prompt, "version": "2"})
    first, second = (body["messages"][0]["content"] for body in world.scripted.bodies)
    assert "kind words" in first and second == "You help Acme tersely."
    changes = (await world.call("GET", f"/v1/apps/{app['id']}/diff?from=1&to=2")).json()
    assert {c["path"] for c in changes["changes"]} == {
        "instructions",
        "variables",
        "variables.tone",
    }
    versions = (await world.call("GET", f"/v1/apps/{app['id']}/versions")).json()["data"]
    assert [v["version"] for v in versions] == ["2", "1"]
    assert versions[1]["config"]["instructions"] == CONFIG["instructions"]  # unchanged


async def test_only_admins_build_apps_and_other_tenants_do_not_see_them(world: World) -> None:
    refused = await world.call("POST", "/v1/apps", {"name": "x", "config": CONFIG})
    assert error_of(refused, 403)["code"] == "permission_denied"
    app = await make_app(world, admin_key(world))
    hidden = await world.call("GET", f"/v1/apps/{app['id']}", key=world.beta)
    assert error_of(hidden, 404)["code"] == "not_found"
    as_beta = await world.call(
        "POST", "/v1/responses", {"input": "hi", "prompt": {"id": app["id"]}}, world.beta
    )
    assert error_of(as_beta, 404)["param"] == "prompt.id"
    listed = await world.call("GET", "/v1/apps", key=world.beta)
    assert listed.json()["data"] == []


async def test_an_app_key_calls_only_its_app(world: World) -> None:
    key = admin_key(world)
    app, other = await make_app(world, key), await make_app(world, key)
    issued = await world.call("POST", f"/v1/apps/{app['id']}/keys", {"name": "widget"}, key)
    secret = issued.json()["secret"]
    assert secret.startswith("tm-app-")
    for method, path, body in [
        ("POST", "/v1/chat/completions", {"model": SCRIPTED, "messages": []}),
        ("GET", "/v1/apps", None),
        ("GET", "/v1/models", None),
        ("POST", f"/v1/apps/{other['id']}/chat", {"message": "hi"}),
    ]:
        answer = await world.call(method, path, body, secret)
        assert error_of(answer, 403)["code"] == "permission_denied", path
    wrong = await world.call(
        "POST", "/v1/responses", {"input": "hi", "prompt": {"id": other["id"]}}, secret
    )
    assert error_of(wrong, 403)["code"] == "permission_denied"
    world.scripted.replies += [reply("Hi from the App."), reply("Still here.")]
    variables: Any = {"company": "Acme"}
    chat = await world.call(
        "POST", f"/v1/apps/{app['id']}/chat", {"message": "hi", "variables": variables}, secret
    )
    assert chat.status_code == 200, chat.text
    turn = chat.json()
    assert (turn["answer"], turn["version"], turn["status"]) == (
        "Hi from the App.",
        "1",
        "completed",
    )
    follow = await world.call(
        "POST", f"/v1/apps/{app['id']}/chat",
        {"message": "again", "variables": variables, "conversation_id": turn["conversation_id"]},
        secret,
    )  # fmt: skip
    assert follow.json()["answer"] == "Still here."
    assert [m["role"] for m in world.scripted.bodies[1]["messages"]] == [
        "system", "user", "assistant", "user"
    ]  # fmt: skip


async def test_the_public_page_is_off_until_turned_on_and_acts_as_its_own_key(
    world: World,
) -> None:
    key = admin_key(world)
    app = await make_app(world, key, {**CONFIG, "variables": {"company": "Acme", "tone": "kind"}})
    path = f"/apps/{app['id']}"
    assert (await world.http.get(path)).status_code == 404  # off by default
    turned = await world.call("POST", path.replace("/apps", "/v1/apps"), {"embed": True}, key)
    assert turned.json()["embed_url"] == path
    assert (await world.http.get(path)).status_code == 404  # nothing published yet
    await world.call("POST", f"/v1/apps/{app['id']}", {"published_version": "1"}, key)
    page = await world.http.get(path)
    assert page.status_code == 200 and "<title>Helpdesk</title>" in page.text
    # its inline style and script run by this answer's nonce alone; it may be framed anywhere
    policy = page.headers["content-security-policy"]
    nonce = policy.split("'nonce-", 1)[1].split("'", 1)[0]
    assert f"script-src 'nonce-{nonce}'" in policy and "frame-ancestors *" in policy
    assert page.text.count(f'nonce="{nonce}"') == 2 and "<script>" not in page.text
    again = await world.http.get(path)
    assert nonce not in again.headers["content-security-policy"]  # new with each answer
    world.scripted.replies.append(reply("Hello, visitor."))
    answered = await world.http.post(f"{path}/chat", json={"message": "Hi there"})
    assert answered.status_code == 200, answered.text
    assert answered.json()["answer"] == "Hello, visitor."
    [event] = [e for e in await world.usage() if e.endpoint == "responses"]
    keys = KeyRepository(world.database, SystemClock())
    page_key = keys.get(event.key_id)
    assert page_key is not None and page_key.scopes == (f"app:{app['id']}",)
    assert event.app_id == app["id"]
    keys.revoke(event.key_id)
    assert (await world.http.get(path)).status_code == 404  # its key revoked: closed
