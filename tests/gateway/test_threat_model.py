"""The README's threat model, where no other test holds it: the real gateway in-process over the
test database, its model calls answered by a replica on a local port that records what it was
sent. A replica never gets the client's key or headers, and its usage is billed as it reports
it; inference and App keys are refused on every admin route; a tenant admin cannot tell another
tenant's things from ids that do not exist; a revoked key is refused at once; the database
holds a key's hash, never the key, and the gateway reads a key from the Authorization header
only; the console keeps its key in the tab's sessionStorage and out of every URL. Tests named
``test_known_limitation_…`` pin a weakness the README lists as a known limitation: when it is
fixed, such a test fails, and it and the README change together."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text

from tests.billing.test_usage import usage_event
from tests.datasets.test_repository import version
from tests.gateway.conftest import AdminKeys, admin_keys, error_of
from tests.gateway.live import served_name
from tests.gateway.support import JsonReplica
from tests.gateway.test_responses import SCRIPTED, open_world
from tests.plugins.mcp_server import OPENINGS, running
from tests.responses.scripted import reply
from tokenmill.billing.ledger import LedgerRepository
from tokenmill.billing.pricebook import PriceBookRepository
from tokenmill.billing.pricing import Price
from tokenmill.billing.usage import UsageEvent, UsageRepository
from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import SystemClock
from tokenmill.control.keycache import REVOKED_MESSAGE
from tokenmill.control.keys import KeyRepository, hash_secret
from tokenmill.control.sealing import KEY_FILE, Sealer, new_key
from tokenmill.datasets.repository import DatasetRepository
from tokenmill.fleet.deployments import DeploymentRepository
from tokenmill.gateway import admin
from tokenmill.gateway.app import build_app
from tokenmill.gateway.compose import Gateway, build_gateway
from tokenmill.gateway.routing import Router
from tokenmill.plugins.client import McpClient
from tokenmill.plugins.guard import UrlGuard
from tokenmill.plugins.servers import ServerRepository
from tokenmill.plugins.service import McpService
from tokenmill.settings import Settings
from tokenmill.store.db import Database

Json = dict[str, Any]
MODEL = "threat-model"
PRICE = Price(input_micros_per_mtok=1_000_000, output_micros_per_mtok=2_000_000)
PUBLIC = "93.184.216.34"  # a global address, what a rebinding name first answers
CHROMIUM = "/usr/bin/chromium"
# Everything the gateway sends a replica with a model call (the HTTP framing, whose request
# it is for logs and cancelling, and whose work it is for the replica's fair share).
TO_REPLICA = {
    "host", "content-length", "content-type", "x-request-id",
    "x-tokenmill-tenant", "x-tokenmill-weight", "x-tokenmill-priority",
}  # fmt: skip


@dataclass
class World:
    http: httpx.AsyncClient
    gateway: Gateway
    db: Database
    k: AdminKeys
    replica: JsonReplica
    data_dir: Path
    usage: Json = field(default_factory=dict)  # what the replica reports, per answer

    async def call(
        self,
        key: str | None,
        method: str,
        path: str,
        body: object = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        sent = dict(headers or {})
        if key is not None:
            sent["authorization"] = f"Bearer {key}"
        return await self.http.request(method, path, json=body, headers=sent)

    async def chat(
        self, key: str, max_tokens: int = 4, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}],
                "max_tokens": max_tokens}  # fmt: skip
        return await self.call(key, "POST", "/v1/chat/completions", body, headers)

    async def recorded(self, request_id: str) -> UsageEvent:
        await self.gateway.services.recorder.aflush()
        event = UsageRepository(self.db).get(request_id)
        assert event is not None
        return event

    def key_id(self, secret: str) -> str:
        found = KeyRepository(self.db, SystemClock()).principal_for_secret_hash(hash_secret(secret))
        assert found is not None
        return found.key_id


@pytest.fixture
async def world(database: Database, tmp_path: Path) -> AsyncIterator[World]:
    """Tenants alpha (with credit) and beta, ``MODEL`` priced and served by a recording
    replica, budgets enforced."""
    clock = SystemClock()
    k = admin_keys(database, clock)
    ModelRepository(database, clock).register(MODEL, task="chat", artifact="-", context_tokens=4096)
    PriceBookRepository(database, clock).add(MODEL, PRICE)
    LedgerRepository(database, clock).top_up(k.alpha_id, 100_000_000)
    usage: Json = {"prompt_tokens": 7, "completion_tokens": 3}

    def answer(request: Json) -> Json:
        message = {"role": "assistant", "content": "Hello"}
        return {"object": "chat.completion", "model": request["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": dict(usage)}  # fmt: skip

    replica = JsonReplica(answer)
    server = await asyncio.start_server(replica.handle, "127.0.0.1", 0)
    router = Router()
    router.set_replicas(
        served_name(MODEL), [f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"]
    )
    gateway = build_gateway(
        Settings(data_dir=tmp_path), database, clock, router, journal=False, worker=False
    )
    services = gateway.services
    assert services.admission is not None
    await services.admission.start()
    transport = httpx.ASGITransport(app=build_app(services))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
            yield World(http, gateway, database, k, replica, tmp_path, usage)
    finally:
        await services.admission.close()
        await services.upstream.close()
        gateway.close()
        server.close()


# A model replica


async def test_a_replica_never_receives_the_clients_key_or_headers(world: World) -> None:
    secret = world.k.alpha_inference
    answered = await world.chat(
        secret,
        headers={
            "cookie": f"session={secret}",
            "x-api-key": secret,
            "openai-organization": "org-1",
            "x-forwarded-for": "203.0.113.9",
        },
    )
    assert answered.status_code == 200, answered.text
    [sent] = world.replica.requests
    assert set(sent["_headers"]) == TO_REPLICA, sent["_headers"]
    assert sent["_headers"]["x-tokenmill-tenant"] == world.k.alpha_id
    seen = orjson.dumps(sent).decode()
    assert secret not in seen and secret[3:15] not in seen  # nor a part of it
    assert world.key_id(secret) not in seen  # nor which key it was
    assert "org-1" not in seen and "203.0.113.9" not in seen


async def test_a_replica_cannot_bill_more_than_the_request_could_use(world: World) -> None:
    """A replica is trusted with the usage it reports, within what the request could use: a
    count past its ``max_tokens`` (or its model's context, for the prompt) is not billed, and
    one that is not a count at all is 0 while the request is still recorded."""
    world.usage.update(prompt_tokens=5, completion_tokens=1_000_000)
    answered = await world.chat(world.k.alpha_inference, max_tokens=4)
    assert answered.status_code == 200, answered.text
    event = await world.recorded(answered.headers["x-request-id"])
    assert (event.prompt_tokens, event.completion_tokens) == (5, 4)
    assert event.cost_micros == 5 + 8

    world.usage.update(prompt_tokens=-50, completion_tokens=-7)
    answered = await world.chat(world.k.alpha_inference)
    assert answered.status_code == 200, answered.text
    event = await world.recorded(answered.headers["x-request-id"])
    assert (event.prompt_tokens, event.completion_tokens, event.cost_micros) == (0, 0, 0)
    assert len(world.replica.requests) == 2


# Inference keys, App keys and tenant admins on the admin API


def admin_path(pattern: tuple[str, ...], ids: dict[str, str]) -> str:
    """``pattern`` (a route of ``admin.ROUTES``) with each ``*`` filled from ``ids`` by the
    segment before it."""
    parts = [ids[pattern[i - 1]] if part == "*" else part for i, part in enumerate(pattern)]
    return "/admin/v1/" + "/".join(parts)


async def app_key(world: World) -> str:
    config = {"model": MODEL, "instructions": "Be brief."}
    app = await world.call(
        world.k.alpha_admin, "POST", "/v1/apps", {"name": "Helper", "config": config}
    )
    assert app.status_code == 200, app.text
    issued = await world.call(
        world.k.alpha_admin, "POST", f"/v1/apps/{app.json()['id']}/keys", {"name": "widget"}
    )
    secret = str(issued.json()["secret"])
    assert secret.startswith("tm-app-")
    return secret


async def beta_eval(world: World) -> str:
    """An evaluation of beta's, started by beta's admin on a file of its own."""
    row = {"messages": [{"role": "user", "content": "1"}, {"role": "assistant", "content": "2"}]}
    upload = await world.http.post(
        "/v1/files",
        files={"file": ("e.jsonl", orjson.dumps(row))},
        data={"purpose": "fine-tune"},
        headers={"authorization": f"Bearer {world.k.beta_admin}"},
    )
    assert upload.status_code == 200, upload.text
    body = {"file_id": upload.json()["id"], "models": [MODEL], "metrics": ["exact_match"]}
    started = await world.call(world.k.beta_admin, "POST", "/admin/v1/evals", body)
    assert started.status_code == 200, started.text
    return str(started.json()["id"])


async def test_inference_and_app_keys_get_403_on_every_admin_route(world: World) -> None:
    k = world.k
    ids = {
        "tenants": k.alpha_id, "keys": k.alpha_admin_id, "statements": "2026-01",
        "mcp_servers": "mcpsrv_x", "models": MODEL, "deployments": "dep_x", "requests": "req_x",
        "datasets": "ds-x", "versions": "1", "evals": "eval_x",
    }  # fmt: skip
    paths = {"tenants", f"tenants/{k.alpha_id}/keys", "prices", "models", "deployments"}

    async def snapshot() -> list[str]:
        return [(await world.call(k.platform, "GET", f"/admin/v1/{p}")).text for p in paths]

    keys = (k.alpha_inference, await app_key(world))
    before = await snapshot()
    refused = 0
    for key in keys:
        for method, pattern, _ in admin.ROUTES:
            path = admin_path(pattern, ids)
            error = error_of(await world.call(key, method, path, {}), 403)
            assert error["code"] == "permission_denied", (method, path)
            refused += 1
    assert refused == 2 * len(admin.ROUTES) >= 80
    assert await snapshot() == before  # and nothing changed


async def test_a_tenant_admin_finds_another_tenants_things_as_if_they_did_not_exist(
    world: World,
) -> None:
    """Alpha's admin, aimed at beta's tenant, keys, usage records, private model, dedicated
    deployment and MCP server, gets exactly the answer (403 or 404) it gets for ids that do not
    exist: nothing in it tells that beta's exist."""
    k, clock = world.k, SystemClock()
    ModelRepository(world.db, clock).register(
        "beta-private", task="chat", artifact="-", context_tokens=512, owner_tenant_id=k.beta_id
    )
    deployment = DeploymentRepository(world.db, clock).create(
        "beta-private", "1", mode="dedicated", tenant_id=k.beta_id
    )
    UsageRepository(world.db).insert_many([usage_event("req_beta0001", tenant_id=k.beta_id)])
    mcp = world.gateway.services.mcp
    assert mcp is not None
    server = mcp.servers.create(
        k.beta_id, {"label": "wiki", "url": "https://mcp.example.com/mcp"},
        platform_admin=True, created_by="test",
    )  # fmt: skip
    dataset = DatasetRepository(world.db, clock).add(k.beta_id, "beta-data", version("b"))
    evaluation = await beta_eval(world)
    beta = {
        "tenants": k.beta_id, "keys": world.key_id(k.beta_admin), "statements": "2026-01",
        "mcp_servers": server.id, "models": "beta-private", "deployments": deployment.id,
        "requests": "req_beta0001", "datasets": dataset.dataset.id, "versions": "1",
        "evals": evaluation,
    }  # fmt: skip
    nobody = {
        "tenants": "ten_" + "0" * 24, "keys": "key_" + "0" * 24, "statements": "2026-01",
        "mcp_servers": "mcpsrv_" + "0" * 24, "models": "zzzz-private",
        "deployments": "dep_" + "0" * 12, "requests": "req_zzzz0001",
        "datasets": "ds-" + "0" * 24, "versions": "1", "evals": "eval_" + "0" * 24,
    }  # fmt: skip
    bodies: dict[str, Json] = {
        "keys": {"name": "in"}, "credits": {"amount_micros": 5}, "revoke": {},
        "mcp_servers": {"label": "x", "url": "https://mcp.example.com/mcp"},
        "versions": {"path": "/nowhere.gguf"}, "stop": {},
    }  # fmt: skip
    aimed = [(m, p) for m, p, _ in admin.ROUTES if "*" in p]
    aimed += [("GET", ("overview?tenant_id=*",)), ("GET", ("audit?tenant_id=*",))]
    own = ("tenants", k.alpha_id, "mcp_servers", "*")  # beta's server under alpha's own path
    aimed += [("GET", own), ("PATCH", own), ("DELETE", own), ("GET", (*own, "tools"))]
    compared = 0
    for method, pattern in aimed:
        if pattern[0].endswith("=*"):  # a query naming the tenant
            path = "/admin/v1/" + pattern[0]
            theirs, none = path.replace("*", beta["tenants"]), path.replace("*", nobody["tenants"])
        else:
            theirs, none = admin_path(pattern, beta), admin_path(pattern, nobody)
        body = bodies.get(pattern[-1], {"rpm_limit": 1}) if method != "GET" else None
        if method == "PATCH" and "mcp_servers" in pattern:
            body = {"description": "x"}
        real = await world.call(k.alpha_admin, method, theirs, body)
        fake = await world.call(k.alpha_admin, method, none, body)
        assert real.status_code in (403, 404), (method, theirs, real.text)
        text = real.text
        for name, value in beta.items():
            text = text.replace(value, nobody[name])
        assert (real.status_code, text) == (fake.status_code, fake.text), (method, theirs)
        assert "beta" not in text
        compared += 1
    assert compared >= 25


# Keys


async def test_a_key_revoked_through_the_admin_api_is_refused_at_once(world: World) -> None:
    secret = world.k.alpha_inference
    assert (await world.call(secret, "GET", "/v1/models")).status_code == 200  # now cached
    revoked = await world.call(
        world.k.alpha_admin, "POST", f"/admin/v1/keys/{world.key_id(secret)}/revoke"
    )
    assert revoked.status_code == 200, revoked.text
    for method, path in (("GET", "/v1/models"), ("POST", "/v1/chat/completions")):
        error = error_of(await world.call(secret, method, path, {"model": MODEL}), 401)
        assert (error["code"], error["message"]) == ("invalid_api_key", REVOKED_MESSAGE)
    assert world.replica.requests == []


async def test_the_database_holds_a_keys_hash_never_the_key(world: World) -> None:
    made = await world.call(
        world.k.alpha_admin, "POST", f"/admin/v1/tenants/{world.k.alpha_id}/keys", {"name": "ci"}
    )
    secret = made.json()["secret"]
    with world.db.session() as session:
        rows = [" ".join(map(str, row)) for row in session.execute(text("SELECT * FROM api_keys"))]
    assert len(rows) == 5  # the platform's, alpha's two, beta's and this one
    assert not [row for row in rows if secret in row or secret[11:] in row]
    assert [row for row in rows if hash_secret(secret) in row]  # its SHA-256, and its prefix
    assert [row for row in rows if secret[:11] in row]


async def test_a_key_is_read_from_the_authorization_header_only(world: World) -> None:
    secret = world.k.alpha_inference
    for path in (f"/v1/models?api_key={secret}", f"/v1/models?key={secret}"):
        assert error_of(await world.http.get(path), 401)["code"] == "invalid_api_key"
    for headers in ({"x-api-key": secret}, {"api-key": secret}, {"cookie": f"key={secret}"}):
        assert error_of(await world.http.get("/v1/models", headers=headers), 401)
    refused = await world.call(
        None, "GET", "/v1/models", headers={"authorization": f"Basic {secret}"}
    )
    error_of(refused, 401)
    assert (await world.call(secret, "GET", "/v1/models")).status_code == 200


# A tenant admin's model paths


async def test_a_tenant_admin_cannot_make_the_gateway_read_its_files(world: World) -> None:
    """``POST /admin/v1/models {"path"}`` from a tenant admin takes only files in its own
    directory: any other path (the platform's sealing key, a file that is not there) gets the
    same 403, so the answer says nothing of what is on the host."""
    models = "/admin/v1/models"
    sealing_key = (world.data_dir / KEY_FILE).read_text()
    answers = []
    for path in (str(world.data_dir / KEY_FILE), "/nowhere/x.gguf", f"../../{KEY_FILE}"):
        refused = await world.call(world.k.alpha_admin, "POST", models, {"path": path})
        assert sealing_key[:8] not in refused.text
        answers.append(error_of(refused, 403))
    assert answers[0] == answers[1] == answers[2]


# MCP servers


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    with running() as url:
        yield url


async def test_a_name_that_rebinds_after_the_guard_does_not_reach_the_platform(
    world: World, mcp_url: str
) -> None:
    """The URL guard resolves a tenant's MCP host and the connection goes to what it saw, not
    to a second lookup: a name that answers a public address to the guard and a private one
    after (DNS rebinding) never reaches the platform's network. Here the guard's resolver says
    public while ``localhost`` is, to any fresh lookup, the test server on 127.0.0.1."""
    guard = UrlGuard(resolver=lambda host: [PUBLIC])
    servers = ServerRepository(world.db, SystemClock(), Sealer(new_key()), guard.check)
    services = world.gateway.services
    assert services.admin is not None
    services.mcp = services.admin.mcp = McpService(servers, guard, McpClient(2.0))
    base = f"/admin/v1/tenants/{world.k.alpha_id}/mcp_servers"
    url = mcp_url.replace("127.0.0.1", "localhost")
    made = await world.call(world.k.alpha_admin, "POST", base, {"label": "rebound", "url": url})
    assert made.status_code == 200, made.text
    before = OPENINGS.get(mcp_url, 0)
    tools = await world.call(world.k.alpha_admin, "GET", f"{base}/{made.json()['id']}/tools")
    assert tools.status_code == 200, tools.text
    assert tools.json()["error"] is not None and tools.json()["tools"] == []
    assert OPENINGS.get(mcp_url, 0) == before  # the server on 127.0.0.1 was never asked


# An App key's conversations


async def test_an_app_key_continues_only_its_apps_conversations(
    database: Database, tmp_path: Path
) -> None:
    """A stored response is its tenant's, but an App's key (or a visitor of the App's public
    page) continues only conversations held with that App: given another response's id, it
    finds nothing there, and nothing reaches the App's model."""
    async with open_world(database, tmp_path) as w:
        _, admin_secret = KeyRepository(database, SystemClock()).create(
            w.alpha_id, "alpha-admin", role="tenant_admin"
        )
        app = await w.call(
            "POST", "/v1/apps",
            {"name": "Widget", "config": {"model": SCRIPTED, "instructions": "Be brief."}},
            admin_secret,
        )  # fmt: skip
        app_id = app.json()["id"]
        issued = await w.call("POST", f"/v1/apps/{app_id}/keys", {"name": "w"}, admin_secret)
        widget = issued.json()["secret"]
        w.scripted.replies += [reply("Noted."), reply("Hello."), reply("Still here.")]
        private = await w.create(model=SCRIPTED, input="The vault code is 4417.")  # another key
        chat = f"/v1/apps/{app_id}/chat"
        turn = await w.call(
            "POST", chat, {"message": "What was the code?", "conversation_id": private["id"]},
            widget,
        )  # fmt: skip
        assert error_of(turn, 404)["param"] == "previous_response_id"
        assert len(w.scripted.bodies) == 1  # the private one only
        first = await w.call("POST", chat, {"message": "Hi"}, widget)
        assert first.status_code == 200, first.text
        follow = await w.call(
            "POST", chat, {"message": "Again", "conversation_id": first.json()["conversation_id"]},
            widget,
        )  # fmt: skip
        assert follow.status_code == 200, follow.text  # its own conversation goes on
        assert "4417" not in orjson.dumps(w.scripted.bodies[1:]).decode()
