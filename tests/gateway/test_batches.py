"""The Batch API in-process: every route, bad input in OpenAI's error shape, tenants kept
apart, and batches run by the worker with a stand-in for the model call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.gateway.conftest import error_of, two_tenants
from tokenmill.batches.execution import KIND, batch_handler
from tokenmill.batches.lines import BatchRequest
from tokenmill.batches.objects import BatchInfo
from tokenmill.batches.output import LineResult
from tokenmill.batches.service import BatchService
from tokenmill.clock import SystemClock
from tokenmill.gateway.app import build_app
from tokenmill.gateway.compose import build_gateway
from tokenmill.gateway.routing import Router
from tokenmill.settings import Settings
from tokenmill.store.db import Database
from tokenmill.work.items import WorkStatus
from tokenmill.work.runner import WorkRunner

CHAT = "/v1/chat/completions"


def request_line(custom_id: str, model: str = "smollm2", url: str = CHAT) -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": custom_id}]}
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body}


def jsonl(*lines: Any) -> bytes:
    return b"".join(orjson.dumps(x) + b"\n" for x in lines)


@dataclass
class World:
    http: httpx.AsyncClient
    service: BatchService
    runner: WorkRunner
    alpha: str
    beta: str
    sent: list[tuple[str, str]] = field(default_factory=list)

    async def call(
        self, method: str, path: str, body: Any = None, key: str | None = None
    ) -> httpx.Response:
        return await self.http.request(
            method, path, json=body, headers={"authorization": f"Bearer {key or self.alpha}"}
        )

    async def upload(self, data: bytes, purpose: str = "batch", key: str | None = None) -> str:
        response = await self.http.post(
            "/v1/files",
            data={"purpose": purpose},
            files={"file": ("input.jsonl", data, "application/jsonl")},
            headers={"authorization": f"Bearer {key or self.alpha}"},
        )
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    async def create(self, data: bytes, key: str | None = None, **extra: Any) -> dict[str, Any]:
        file_id = await self.upload(data, key=key)
        body = {"input_file_id": file_id, "endpoint": CHAT, "completion_window": "24h", **extra}
        response = await self.call("POST", "/v1/batches", body, key)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def content(self, file_id: str) -> list[dict[str, Any]]:
        response = await self.call("GET", f"/v1/files/{file_id}/content")
        assert response.status_code == 200, response.text
        return [orjson.loads(x) for x in response.content.splitlines()]

    def run_all(self) -> int:
        ran = 0
        while (item := self.runner.run_once()) is not None:
            assert item.status == WorkStatus.SUCCEEDED, item.error
            ran += 1
        return ran


def stand_in(sent: list[tuple[str, str]]) -> Any:
    """Answers a line like a model would; an unknown model is the route's 404."""

    def send(batch: BatchInfo, request: BatchRequest) -> LineResult:
        sent.append((batch.id, request.custom_id))
        if request.model != "smollm2":
            error = {"error": {"message": "no such model", "code": "model_not_found"}}
            return LineResult.answered(request.line, request.custom_id, 404, "", error)
        answer = {"object": "chat.completion", "choices": [{"message": {"content": "ok"}}]}
        return LineResult.answered(request.line, request.custom_id, 200, "req_1", answer)

    return send


@pytest.fixture
async def world(database: Database, tmp_path: Path) -> AsyncIterator[World]:
    clock = SystemClock()
    alpha_key, beta_key, _ = two_tenants(database, clock)
    gateway = build_gateway(
        Settings(data_dir=tmp_path),
        database,
        clock,
        Router(),
        admission=False,
        journal=False,
        worker=False,
    )
    service, files = gateway.services.batches, gateway.services.files
    assert service is not None and files is not None
    sent: list[tuple[str, str]] = []
    handler = batch_handler(service.batches, files, stand_in(sent), clock)
    runner = WorkRunner(service.queue, {KIND: handler})
    transport = httpx.ASGITransport(app=build_app(gateway.services))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        yield World(http, service, runner, alpha_key, beta_key, sent)
    gateway.close()


async def test_a_batch_runs_to_completed_with_output_and_error_files(world: World) -> None:
    data = jsonl(request_line("first"), request_line("unknown", model="nope"), request_line("last"))
    created = await world.create(data, metadata={"job": "nightly"})
    assert created["object"] == "batch" and created["id"].startswith("batch_")
    assert created["status"] == "validating" and created["metadata"] == {"job": "nightly"}
    assert created["endpoint"] == CHAT and created["completion_window"] == "24h"
    assert created["expires_at"] - created["created_at"] == 24 * 3600
    assert created["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    assert created["output_file_id"] is None and created["errors"] is None

    assert world.run_all() == 1
    done = (await world.call("GET", f"/v1/batches/{created['id']}")).json()
    assert done["status"] == "completed"
    assert done["request_counts"] == {"total": 3, "completed": 2, "failed": 1}
    for stamp in ("in_progress_at", "finalizing_at", "completed_at"):
        assert done[stamp] is not None
    assert done["failed_at"] is None and done["cancelled_at"] is None

    output = await world.content(done["output_file_id"])
    assert [x["custom_id"] for x in output] == ["first", "last"]
    assert all(x["response"]["status_code"] == 200 and x["error"] is None for x in output)
    assert output[0]["id"].startswith("batch_req_")
    errors = await world.content(done["error_file_id"])
    assert [(x["custom_id"], x["response"]["status_code"]) for x in errors] == [("unknown", 404)]
    files = (await world.call("GET", "/v1/files?purpose=batch_output")).json()["data"]
    assert {f["id"] for f in files} == {done["output_file_id"], done["error_file_id"]}
    assert sorted(c for _, c in world.sent) == ["first", "last", "unknown"]

    assert world.run_all() == 0  # nothing more to do, nothing sent again
    assert len(world.sent) == 3


async def test_a_bad_input_file_fails_the_batch_listing_its_lines(world: World) -> None:
    data = jsonl(request_line("a"), request_line("a"), request_line("b", url="/v1/embeddings"))
    created = await world.create(data + b"{oops\n")
    world.run_all()
    failed = (await world.call("GET", f"/v1/batches/{created['id']}")).json()
    assert failed["status"] == "failed" and failed["failed_at"] is not None
    assert failed["errors"]["object"] == "list"
    assert [(e["line"], e["code"]) for e in failed["errors"]["data"]] == [
        (2, "duplicate_custom_id"),
        (3, "mismatched_endpoint"),
        (4, "invalid_json_line"),
    ]
    assert world.sent == [] and failed["output_file_id"] is None


async def test_list_newest_first_in_pages(world: World) -> None:
    ids = [(await world.create(jsonl(request_line("a"))))["id"] for _ in range(3)]
    first = (await world.call("GET", "/v1/batches?limit=2")).json()
    assert first["object"] == "list" and first["has_more"] is True
    assert [b["id"] for b in first["data"]] == ids[::-1][:2]
    rest = (await world.call("GET", f"/v1/batches?limit=2&after={first['last_id']}")).json()
    assert [b["id"] for b in rest["data"]] == [ids[0]] and rest["has_more"] is False


async def test_cancel_before_it_runs_ends_it_at_once(world: World) -> None:
    created = await world.create(jsonl(request_line("a")))
    cancelled = (await world.call("POST", f"/v1/batches/{created['id']}/cancel")).json()
    assert cancelled["status"] == "cancelled" and cancelled["cancelling_at"] is not None
    assert world.run_all() == 0 and world.sent == []
    error = error_of(await world.call("POST", f"/v1/batches/{created['id']}/cancel"), 409)
    assert error["code"] == "invalid_batch_status"


@pytest.mark.parametrize(
    ("change", "param", "status"),
    [
        ({"endpoint": "/v1/images/generations"}, "endpoint", 400),
        ({"endpoint": None}, "endpoint", 400),
        ({"completion_window": "1h"}, "completion_window", 400),
        ({"completion_window": None}, "completion_window", 400),
        ({"input_file_id": "file-000000000000000000000000"}, "input_file_id", 404),
        ({"input_file_id": None}, "input_file_id", 400),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", 400),
        ({"priority": 1}, "priority", 400),
    ],
)
async def test_bad_input_is_a_4xx_naming_the_param(
    world: World, change: dict[str, Any], param: str, status: int
) -> None:
    file_id = await world.upload(jsonl(request_line("a")))
    body = {"input_file_id": file_id, "endpoint": CHAT, "completion_window": "24h"}
    body.update(change)
    error = error_of(await world.call("POST", "/v1/batches", body), status)
    assert error["param"] == param
    assert (await world.call("GET", "/v1/batches")).json()["data"] == []


async def test_an_input_file_of_another_purpose_is_refused(world: World) -> None:
    file_id = await world.upload(jsonl(request_line("a")), purpose="assistants")
    body = {"input_file_id": file_id, "endpoint": CHAT, "completion_window": "24h"}
    error = error_of(await world.call("POST", "/v1/batches", body), 400)
    assert error["param"] == "input_file_id" and error["code"] == "invalid_file_purpose"


async def test_another_tenants_batches_do_not_exist_for_it(world: World) -> None:
    created = await world.create(jsonl(request_line("a")))
    beta = world.beta
    error_of(await world.call("GET", f"/v1/batches/{created['id']}", key=beta), 404)
    error_of(await world.call("POST", f"/v1/batches/{created['id']}/cancel", key=beta), 404)
    assert (await world.call("GET", "/v1/batches", key=beta)).json()["data"] == []
    # nor may beta run a batch over alpha's file
    body = {"input_file_id": created["input_file_id"], "endpoint": CHAT, "completion_window": "24h"}
    error_of(await world.call("POST", "/v1/batches", body, key=beta), 404)
    assert (await world.call("GET", f"/v1/batches/{created['id']}")).json()["status"] == (
        "validating"
    )


async def test_unknown_routes_and_no_key(world: World) -> None:
    error_of(await world.call("GET", "/v1/batches/batch_nothere"), 404)
    error_of(await world.call("POST", "/v1/batches/batch_x/retry"), 404)
    assert (await world.http.get("/v1/batches")).status_code == 401
