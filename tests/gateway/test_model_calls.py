"""The model calls of a response, in-process over the replicas of ``test_responses``: each
one admitted, routed and metered like a chat call of the same key (its own usage event, endpoint
``responses``; the response's usage their sum), and a replica's refusal relayed as the error the
chat route would have given."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from openai.types.responses import ResponseFileSearchToolCall

from tests.gateway.conftest import error_of
from tests.gateway.live import MODEL, served_name
from tests.gateway.test_responses import SCRIPTED, World, open_world
from tests.knowledge.conftest import hashed_embed
from tests.responses.scripted import reply, searching
from tokenmill.errors import (
    EngineOverloaded,
    InvalidRequest,
    NotFound,
    RateLimited,
    TokenmillError,
    UpstreamError,
)
from tokenmill.gateway.model_calls import relayed_error
from tokenmill.knowledge.chunking import whitespace_tokenizer
from tokenmill.knowledge.indexing import KIND
from tokenmill.store.db import Database
from tokenmill.work.runner import WorkRunner

HANDBOOK = "Every employee may take sixteen weeks of paid parental leave after a birth.\n"


@pytest.fixture
async def world(database: Database, tmp_path: Path) -> AsyncIterator[World]:
    async with open_world(database, tmp_path) as opened:
        yield opened


async def searchable_store(world: World, text: str | None = None) -> tuple[str, str | None]:
    """One of alpha's vector stores (with ``text`` indexed in it as ``handbook.txt``), searched
    with a stand-in for the embeddings replica: (its id, the file's id)."""
    stores, files = world.gateway.services.vector_stores, world.gateway.services.files
    assert stores is not None and files is not None
    stores.embed = lambda tenant_id, key_id, texts: hashed_embed(texts)
    file_id = None
    if text is not None:
        uploaded = await world.http.post(
            "/v1/files", data={"purpose": "assistants"},
            files={"file": ("handbook.txt", text.encode(), "text/plain")},
            headers={"authorization": f"Bearer {world.alpha}"},
        )  # fmt: skip
        file_id = uploaded.json()["id"]
    body = {"file_ids": [file_id]} if file_id else {}
    store_id = (await world.call("POST", "/v1/vector_stores", body)).json()["id"]
    handler = stores.worker_handler(files.repository, files.storage, whitespace_tokenizer)
    runner = WorkRunner(stores.queue, {KIND: handler})
    while runner.run_once() is not None:
        pass
    return store_id, file_id


async def test_each_model_call_is_a_usage_event_and_the_response_sums_them(
    world: World,
) -> None:
    """The model searches, the platform runs the search over the tenant's store, the model
    answers citing it: two model calls, each metered on its own."""
    store_id, file_id = await searchable_store(world, HANDBOOK)
    world.scripted.replies = [
        searching("parental leave", prompt=12, completion=4),
        reply("Sixteen weeks [1].", prompt=40, completion=7),
    ]
    tool = {"type": "file_search", "vector_store_ids": [store_id]}
    made = await world.create(
        model=SCRIPTED, input="How long is parental leave?", tools=[tool],
        include=["file_search_call.results"],
    )  # fmt: skip
    search, answer = made["output"]
    ResponseFileSearchToolCall.model_validate(search)
    assert search["type"] == "file_search_call" and search["queries"] == ["parental leave"]
    assert [r["filename"] for r in search["results"]] == ["handbook.txt"]
    text = answer["content"][0]["text"]
    assert answer["content"][0]["annotations"] == [
        {"type": "file_citation", "file_id": file_id, "filename": "handbook.txt",
         "index": text.index("[1]")}
    ]  # fmt: skip
    assert "[1] handbook.txt" in world.scripted.bodies[1]["messages"][-1]["content"]
    assert {b["model"] for b in world.scripted.bodies} == {served_name(SCRIPTED)}

    events = await world.usage()  # the searches' embeddings are the stand-in's, unmetered
    assert sorted((e.prompt_tokens, e.completion_tokens) for e in events) == [(12, 4), (40, 7)]
    assert {(e.endpoint, e.model, e.status) for e in events} == {("responses", SCRIPTED, "ok")}
    assert len({e.request_id for e in events}) == 2
    usage = made["usage"]
    assert usage["input_tokens"] == sum(e.prompt_tokens for e in events) == 52
    assert usage["output_tokens"] == sum(e.completion_tokens for e in events) == 11
    assert usage["total_tokens"] == 63
    hidden = (await world.call("GET", f"/v1/responses/{made['id']}")).json()
    assert hidden["output"][0]["results"] is None
    shown = await world.call(
        "GET", f"/v1/responses/{made['id']}?include[]=file_search_call.results"
    )
    assert shown.json() == made


async def test_a_replicas_refusal_of_the_first_call_is_the_clients_error(world: World) -> None:
    refusal = {"message": "The prompt is too long.", "type": "invalid_request_error",
               "param": "messages", "code": "context_length_exceeded"}  # fmt: skip
    world.scripted.replies = [(400, {"error": refusal})]
    error = error_of(
        await world.call("POST", "/v1/responses", {"model": SCRIPTED, "input": "hi"}), 400
    )
    assert (error["message"], error["code"]) == (refusal["message"], refusal["code"])
    assert world.stored() == []
    [event] = await world.usage()
    assert (event.endpoint, event.status, event.http_status, event.error_code) == (
        "responses", "error", 400, "context_length_exceeded",
    )  # fmt: skip


async def test_a_replica_error_that_is_not_openais_shape_is_still_an_error_and_metered(
    world: World,
) -> None:
    """Some engines answer ``{"error": "..."}`` (a string): the client still gets an
    OpenAI-shaped 502, and the call is still one usage event."""
    world.scripted.replies = [(500, {"error": "CUDA out of memory"})]
    refused = await world.call("POST", "/v1/responses", {"model": SCRIPTED, "input": "hi"})
    assert error_of(refused, 502)["code"] == "upstream_error"
    assert world.stored() == []
    events = await world.usage()
    assert [(e.endpoint, e.status, e.http_status) for e in events] == [("responses", "error", 500)]


async def test_a_later_call_refused_fails_the_response_and_keeps_what_was_done(
    world: World,
) -> None:
    store_id, _ = await searchable_store(world)
    overloaded = {"message": "The engine is busy.", "code": "engine_overloaded"}
    world.scripted.replies = [
        searching("leave", prompt=12, completion=4),
        (503, {"error": overloaded}),
    ]
    tool = {"type": "file_search", "vector_store_ids": [store_id]}
    made = await world.create(model=SCRIPTED, input="How long is leave?", tools=[tool])
    assert made["status"] == "failed"
    assert made["error"] == {"code": "engine_overloaded", "message": "The engine is busy."}
    assert [item["type"] for item in made["output"]] == ["file_search_call"]
    assert (made["usage"]["input_tokens"], made["usage"]["output_tokens"]) == (12, 4)
    assert (await world.call("GET", f"/v1/responses/{made['id']}")).json() == made
    events = sorted(await world.usage(), key=lambda e: e.status, reverse=True)
    assert [(e.status, e.http_status, e.prompt_tokens) for e in events] == [
        ("ok", 200, 12), ("error", 503, 0),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("status", "body", "kind", "message", "code"),
    [
        (400, {"error": {"message": "too long", "param": "messages",
                         "code": "context_length_exceeded"}},
         InvalidRequest, "too long", "context_length_exceeded"),
        (404, {"error": {"message": "no such model"}}, NotFound, "no such model", None),
        (429, b"", RateLimited, "The model replica answered 429.", "rate_limit_exceeded"),
        (503, b"<html>busy</html>", EngineOverloaded, "The model replica answered 503.",
         "engine_overloaded"),
        (500, [1, 2], UpstreamError, "The model replica answered 500.", "upstream_error"),
        (500, {"error": "CUDA out of memory"}, UpstreamError, None, "upstream_error"),
    ],
)  # fmt: skip
def test_relayed_error_maps_a_replicas_status_and_error_body(
    status: int,
    body: Any,
    kind: type[TokenmillError],
    message: str | None,
    code: str | None,
) -> None:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    error = relayed_error(status, raw)
    assert type(error) is kind and error.code == code
    if message is not None:
        assert error.message == message


@pytest.mark.parametrize("stream", [False, True])
async def test_a_tenant_without_credit_is_refused_before_anything_is_stored(
    database: Database, tmp_path: Path, stream: bool
) -> None:
    async with open_world(database, tmp_path, admission=True) as world:
        body = {"model": MODEL, "input": "hi", "max_output_tokens": 4, "stream": stream}
        error = error_of(await world.call("POST", "/v1/responses", body), 429)
        assert error["code"] == "insufficient_quota"
        assert world.stored() == [] and world.replica.completions == 0
        events = await world.usage()
        assert [(e.endpoint, e.status, e.http_status, e.cost_micros) for e in events] == [
            ("responses", "error", 429, 0)
        ]
        assert events[0].prompt_tokens == events[0].completion_tokens == 0
