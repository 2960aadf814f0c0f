"""The Responses API in-process: the real gateway over the test database, its model calls sent
over HTTP to replicas served on local ports (the test replica of ``tests.gateway.live``, and a
scripted one for tool calls): responses created, streamed, stored, read back, continued and
deleted; tenants kept apart; refusals in OpenAI's shape, storing and metering nothing."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from openai.types.responses import Response as OpenAIResponse
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseStreamEvent,
)
from pydantic import TypeAdapter
from sqlalchemy import select

from tests.gateway import live
from tests.gateway.conftest import error_of, two_tenants
from tests.gateway.live import MODEL, PROMPT_TOKENS, read_body, served_name
from tests.responses.scripted import Json, reply
from tokenmill.billing.pricebook import PriceBookRepository
from tokenmill.billing.pricing import Price
from tokenmill.billing.usage import UsageEvent, UsageRepository
from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import SystemClock
from tokenmill.control.keycache import REVOKED_MESSAGE
from tokenmill.control.keys import KeyRepository
from tokenmill.control.tenants import TenantRepository
from tokenmill.gateway.app import build_app
from tokenmill.gateway.compose import Gateway, build_gateway
from tokenmill.gateway.routing import Router
from tokenmill.settings import Settings
from tokenmill.store.app_tables import StoredResponse
from tokenmill.store.db import Database

SCRIPTED = "scripted-model"
EMBEDDINGS = "minilm-test"
CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
WEATHER = {"type": "function", "name": "get_weather", "parameters": CITY}
STREAM_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


class ScriptedReplica:
    """Stands in for the engine: answers each chat completion with the next scripted reply,
    streamed as ``chat.completion.chunk`` SSE events, or with an error (a status and a body);
    records the bodies it was sent."""

    def __init__(self) -> None:
        self.replies: list[list[Json] | tuple[int, Any]] = []
        self.bodies: list[Json] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        self.bodies.append(orjson.loads(body))
        answer = self.replies.pop(0)
        if isinstance(answer, tuple):
            status, error = answer
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": orjson.dumps(error)})
            return
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for chunk in answer:
            event = b"data: " + orjson.dumps(chunk) + b"\n\n"
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """``app`` on a free local port, for the gateway's HTTP client to reach."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task


@dataclass
class World:
    http: httpx.AsyncClient
    gateway: Gateway
    database: Database
    replica: live.TestReplica
    scripted: ScriptedReplica
    alpha: str
    beta: str
    alpha_id: str
    beta_id: str

    async def call(
        self, method: str, path: str, body: Any = None, key: str | None = None
    ) -> httpx.Response:
        headers = {"authorization": f"Bearer {key or self.alpha}"}
        return await self.http.request(method, path, json=body, headers=headers)

    async def create(self, key: str | None = None, **body: Any) -> Json:
        response = await self.call("POST", "/v1/responses", {"model": MODEL, **body}, key)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def usage(self, tenant_id: str | None = None) -> list[UsageEvent]:
        await self.gateway.services.recorder.aflush()
        return UsageRepository(self.database).list(tenant_id or self.alpha_id)

    def stored(self, tenant_id: str | None = None) -> list[str]:
        """The ids of the tenant's rows in the ``responses`` table."""
        query = select(StoredResponse.id).where(
            StoredResponse.tenant_id == (tenant_id or self.alpha_id)
        )
        with self.database.session() as session:
            return list(session.scalars(query))


@asynccontextmanager
async def open_world(
    database: Database, tmp_path: Path, *, admission: bool = False
) -> AsyncIterator[World]:
    """Tenants alpha and beta; ``MODEL`` served by the test replica, ``SCRIPTED`` by the
    scripted one, ``EMBEDDINGS`` registered with no replica. With ``admission``, budgets are
    enforced and ``MODEL`` has a price that alpha has no credit for."""
    clock = SystemClock()
    alpha_key, beta_key, alpha_id = two_tenants(database, clock)
    beta = TenantRepository(database, clock).get_by_name("beta")
    assert beta is not None
    models = ModelRepository(database, clock)
    for model, task in ((MODEL, "chat"), (SCRIPTED, "chat"), (EMBEDDINGS, "embeddings")):
        models.register(model, task=task, artifact="-", context_tokens=4096)
    if admission:
        PriceBookRepository(database, clock).add(MODEL, Price(1_000_000, 0, 2_000_000))
    replica, scripted = live.TestReplica(0.0), ScriptedReplica()
    async with serving(replica) as replica_url, serving(scripted) as scripted_url:
        router = Router()
        router.set_replicas(served_name(MODEL), [replica_url])
        router.set_replicas(served_name(SCRIPTED), [scripted_url])
        settings = Settings(data_dir=tmp_path)
        gateway = build_gateway(
            settings, database, clock, router, admission=admission, journal=False, worker=False
        )
        services = gateway.services
        if services.admission is not None:
            await services.admission.start()
        transport = httpx.ASGITransport(app=build_app(services))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
                yield World(
                    http, gateway, database, replica, scripted, alpha_key, beta_key, alpha_id,
                    beta.id,
                )  # fmt: skip
        finally:
            if services.admission is not None:
                await services.admission.close()
            await services.upstream.close()
            gateway.close()


@pytest.fixture
async def world(database: Database, tmp_path: Path) -> AsyncIterator[World]:
    async with open_world(database, tmp_path) as opened:
        yield opened


def frames(body: str) -> list[tuple[str, Json]]:
    """A stream's events as (its ``event:`` line, its data)."""
    out = []
    for frame in body.strip().split("\n\n"):
        event, data = frame.split("\n")
        out.append((event.removeprefix("event: "), orjson.loads(data.removeprefix("data: "))))
    return out


async def test_create_answers_a_response_in_openais_shape_and_stores_it(world: World) -> None:
    made = await world.call(
        "POST",
        "/v1/responses",
        {"model": MODEL, "input": "Name a colour.", "instructions": "One word.",
         "max_output_tokens": 5, "metadata": {"run": "1"}},
    )  # fmt: skip
    assert made.status_code == 200, made.text
    body = made.json()
    assert body["object"] == "response" and body["id"].startswith("resp_")
    assert made.headers["x-request-id"] == body["id"]
    assert (body["status"], body["model"], body["error"]) == ("completed", MODEL, None)
    assert body["instructions"] == "One word." and body["metadata"] == {"run": "1"}
    assert body["previous_response_id"] is None
    [message] = body["output"]
    assert (message["type"], message["role"], message["status"]) == (
        "message", "assistant", "completed",
    )  # fmt: skip
    ResponseOutputMessage.model_validate(message)
    assert message["content"] == [
        {"type": "output_text", "text": "xxxxx", "annotations": [], "logprobs": []}
    ]
    usage = body["usage"]
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (
        PROMPT_TOKENS, 5, PROMPT_TOKENS + 5,
    )  # fmt: skip
    assert usage["input_tokens_details"]["cached_tokens"] == 0
    assert usage["output_tokens_details"] == {"reasoning_tokens": 0}
    assert (await world.call("GET", f"/v1/responses/{body['id']}")).json() == body
    assert world.stored() == [body["id"]]
    assert world.replica.completions == 1

    unstored = await world.create(input="Again.", store=False, max_output_tokens=2)
    assert unstored["status"] == "completed" and world.stored() == [body["id"]]
    error_of(await world.call("GET", f"/v1/responses/{unstored['id']}"), 404)


async def test_a_streamed_response_sends_openais_events_in_order(world: World) -> None:
    sent = await world.call(
        "POST", "/v1/responses", {"model": MODEL, "input": "Hi", "max_output_tokens": 3,
                                  "stream": True},
    )  # fmt: skip
    assert sent.status_code == 200, sent.text
    assert sent.headers["content-type"].startswith("text/event-stream")
    events = frames(sent.text)
    assert [name for name, _ in events] == [data["type"] for _, data in events]
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    assert [name.removeprefix("response.") for name, _ in events] == [
        "created", "in_progress", "output_item.added", "content_part.added",
        "output_text.delta", "output_text.delta", "output_text.delta", "output_text.done",
        "content_part.done", "output_item.done", "completed",
    ]  # fmt: skip
    assert events[0][1]["response"]["status"] == "in_progress"
    assert "".join(d["delta"] for n, d in events if n == "response.output_text.delta") == "xxx"
    completed = events[-1][1]["response"]
    assert completed["status"] == "completed" and completed["usage"]["output_tokens"] == 3
    assert sent.headers["x-request-id"] == completed["id"]
    assert (await world.call("GET", f"/v1/responses/{completed['id']}")).json() == completed


async def test_a_response_and_its_events_parse_as_the_openai_sdk_types_them(
    world: World,
) -> None:
    """Strictly, as the pinned ``openai`` package declares them (its clients parse leniently;
    a client that validates does not)."""
    made = await world.create(input="Hi", max_output_tokens=2)
    OpenAIResponse.model_validate(made)
    body = {"model": MODEL, "input": "Hi", "max_output_tokens": 2, "stream": True}
    for _, data in frames((await world.call("POST", "/v1/responses", body)).text):
        STREAM_EVENT.validate_python(data)


async def test_get_delete_and_input_items_in_order_and_pages(world: World) -> None:
    turns = [{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"},
             {"role": "user", "content": [{"type": "input_text", "text": "three"}]}]  # fmt: skip
    made = await world.create(input=turns, max_output_tokens=2)
    base = f"/v1/responses/{made['id']}"
    newest = (await world.call("GET", f"{base}/input_items")).json()
    texts = [item["content"][0]["text"] for item in newest["data"]]
    assert newest["object"] == "list" and texts == ["three", "two", "one"]
    assert newest["has_more"] is False
    ids = [item["id"] for item in newest["data"]][::-1]
    assert (newest["first_id"], newest["last_id"]) == (ids[2], ids[0])
    first = (await world.call("GET", f"{base}/input_items?order=asc&limit=2")).json()
    assert [i["id"] for i in first["data"]] == ids[:2] and first["has_more"] is True
    rest = (await world.call("GET", f"{base}/input_items?order=asc&after={ids[1]}")).json()
    assert [i["id"] for i in rest["data"]] == ids[2:] and rest["has_more"] is False
    bad = {"order=sideways": "order", "after=msg_x": "after", "limit=0": "limit"}
    for query, param in bad.items():
        refused = await world.call("GET", f"{base}/input_items?{query}")
        assert error_of(refused, 400)["param"] == param
    error_of(await world.call("GET", f"{base}/output_items"), 404)

    deleted = await world.call("DELETE", base)
    assert deleted.json() == {"id": made["id"], "object": "response", "deleted": True}
    for method, path in (("GET", base), ("DELETE", base), ("GET", f"{base}/input_items")):
        error_of(await world.call(method, path), 404)
    follow = await world.call(
        "POST",
        "/v1/responses",
        {"model": MODEL, "input": "more", "previous_response_id": made["id"]},
    )
    assert error_of(follow, 404)["param"] == "previous_response_id"


async def test_another_tenants_response_does_not_exist_for_it(world: World) -> None:
    made = await world.create(input="Secret.", max_output_tokens=2)
    base, beta = f"/v1/responses/{made['id']}", world.beta
    for method, path in (("GET", base), ("DELETE", base), ("GET", f"{base}/input_items")):
        assert "Secret" not in error_of(await world.call(method, path, key=beta), 404)["message"]
    body = {"model": MODEL, "input": "Go on.", "previous_response_id": made["id"]}
    refused = error_of(await world.call("POST", "/v1/responses", body, key=beta), 404)
    assert refused["param"] == "previous_response_id"
    assert _refusal(await world.usage(world.beta_id), 404) and world.stored(world.beta_id) == []
    assert world.replica.completions == 1
    assert (await world.call("GET", base)).json() == made


def _refusal(events: list[UsageEvent], status: int) -> bool:
    """Exactly one usage event: the refused request's, at no cost."""
    [event] = events
    return (event.endpoint, event.status, event.http_status, event.cost_micros) == (
        "responses", "error", status, 0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        (b"{oops", 400, None, None),
        ({"model": MODEL, "input": "hi", "frobnicate": 1}, 400, "frobnicate", None),
        ({"model": MODEL}, 400, "input", None),
        ({"model": "no-such-model", "input": "hi"}, 404, "model", "model_not_found"),
        ({"model": EMBEDDINGS, "input": "hi"}, 400, "model", "model_not_supported"),
        ({"model": MODEL, "input": "hi", "tools": [{"type": "web_search"}]}, 400,
         "tools[0].type", None),
        ({"model": MODEL, "input": "hi", "tools": [{"type": "file_search",
          "vector_store_ids": ["vs_missing"]}]}, 404, "tools", "not_found"),
    ],
)  # fmt: skip
async def test_a_refused_request_is_openai_shaped_stores_nothing_and_is_recorded_free(
    world: World, body: Json | bytes, status: int, param: str | None, code: str | None
) -> None:
    headers = {"authorization": f"Bearer {world.alpha}", "content-type": "application/json"}
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    refused = await world.http.post("/v1/responses", content=content, headers=headers)
    error = error_of(refused, status)
    assert (error["param"], error["code"]) == (param, code)
    assert _refusal(await world.usage(), status) and world.stored() == []
    assert world.replica.completions == 0


async def test_file_search_over_another_tenants_store_is_a_404(world: World) -> None:
    theirs = await world.call("POST", "/v1/vector_stores", {"name": "theirs"}, key=world.beta)
    store_id = theirs.json()["id"]
    tool = {"type": "file_search", "vector_store_ids": [store_id]}
    body = {"model": MODEL, "input": "hi", "tools": [tool], "stream": True}
    error = error_of(await world.call("POST", "/v1/responses", body), 404)
    assert error["param"] == "tools" and store_id in error["message"]
    assert _refusal(await world.usage(), 404) and world.stored() == []
    assert world.replica.completions == 0


async def test_a_function_call_ends_the_response_and_its_output_continues_it(
    world: World,
) -> None:
    world.scripted.replies = [
        reply(calls=[("get_weather", '{"city": "Paris"}')]),
        reply("It is 21 degrees."),
    ]
    first = await world.create(model=SCRIPTED, input="Weather in Paris?", tools=[WEATHER])
    [call] = first["output"]
    ResponseFunctionToolCall.model_validate(call)
    assert (call["type"], call["name"], call["arguments"]) == (
        "function_call", "get_weather", '{"city": "Paris"}',
    )  # fmt: skip
    assert first["status"] == "completed"
    assert world.scripted.bodies[0]["tools"][0]["function"]["name"] == "get_weather"

    output = {"type": "function_call_output", "call_id": call["call_id"], "output": "21C"}
    second = await world.create(
        model=SCRIPTED, input=[output], tools=[WEATHER], previous_response_id=first["id"]
    )
    assert second["previous_response_id"] == first["id"]
    assert second["output"][0]["content"][0]["text"] == "It is 21 degrees."
    sent = world.scripted.bodies[1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[1]["tool_calls"][0]["id"] == sent[2]["tool_call_id"] == call["call_id"]
    assert sent[2]["content"] == "21C"
    items = (await world.call("GET", f"/v1/responses/{second['id']}/input_items")).json()
    assert [i["type"] for i in items["data"]] == ["function_call_output"]


async def test_a_revoked_key_is_refused_everywhere(world: World, database: Database) -> None:
    made = await world.create(input="hi", max_output_tokens=2)
    keys = KeyRepository(database, SystemClock())
    info, secret = keys.create(world.alpha_id, "old-app")
    keys.revoke(info.id)
    base = f"/v1/responses/{made['id']}"
    body = {"model": MODEL, "input": "hi"}
    calls = [("POST", "/v1/responses", body), ("GET", base, None), ("DELETE", base, None),
             ("GET", f"{base}/input_items", None)]  # fmt: skip
    for method, path, sent in calls:
        error = error_of(await world.call(method, path, sent, key=secret), 401)
        assert (error["code"], error["message"]) == ("invalid_api_key", REVOKED_MESSAGE)
    assert (await world.http.post("/v1/responses", json=body)).status_code == 401
    assert world.stored() == [made["id"]]
    assert world.replica.completions == 1
