"""The Vector Stores API in-process: every route, bad input, tenants kept apart, and a file
indexed by the worker and found by search."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import error_of, two_tenants
from tests.knowledge.conftest import hashed_embed
from tokenmill.clock import SystemClock
from tokenmill.control.keys import Principal
from tokenmill.errors import InsufficientQuota
from tokenmill.gateway.app import build_app
from tokenmill.gateway.compose import build_gateway
from tokenmill.gateway.routing import Router
from tokenmill.knowledge.chunking import whitespace_tokenizer
from tokenmill.knowledge.indexing import KIND
from tokenmill.knowledge.service import VectorStoreService
from tokenmill.settings import Settings
from tokenmill.store.db import Database
from tokenmill.work.items import WorkStatus
from tokenmill.work.runner import WorkRunner

PARIS = "Paris is the capital of France. The Eiffel Tower stands on the Champ de Mars.\n"
TOKYO = "Tokyo is the capital of Japan. Mount Fuji is visible on clear days.\n"


@dataclass
class World:
    http: httpx.AsyncClient
    service: VectorStoreService
    runner: WorkRunner
    alpha: str
    beta: str
    alpha_id: str
    embedded: list[tuple[str, list[str]]] = field(default_factory=list)

    async def call(
        self, method: str, path: str, body: Any = None, key: str | None = None
    ) -> httpx.Response:
        return await self.http.request(
            method, path, json=body, headers={"authorization": f"Bearer {key or self.alpha}"}
        )

    async def upload(self, text: str, name: str = "notes.txt", key: str | None = None) -> str:
        response = await self.http.post(
            "/v1/files",
            data={"purpose": "assistants"},
            files={"file": (name, text.encode(), "text/plain")},
            headers={"authorization": f"Bearer {key or self.alpha}"},
        )
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    async def store(self, key: str | None = None, **body: Any) -> dict[str, Any]:
        response = await self.call("POST", "/v1/vector_stores", body, key)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def index_all(self) -> int:
        ran = 0
        while (item := self.runner.run_once()) is not None:
            assert item.status == WorkStatus.SUCCEEDED, item.error
            ran += 1
        return ran


@pytest.fixture
async def world(database: Database, tmp_path: Path) -> AsyncIterator[World]:
    clock = SystemClock()
    alpha_key, beta_key, alpha_id = two_tenants(database, clock)
    settings = Settings(data_dir=tmp_path)
    gateway = build_gateway(
        settings, database, clock, Router(), admission=False, journal=False, worker=False
    )
    service = gateway.services.vector_stores
    files = gateway.services.files
    assert service is not None and files is not None
    embedded: list[tuple[str, list[str]]] = []

    def embed(tenant_id: str, key_id: str, texts: list[str]) -> list[list[float]]:
        embedded.append((tenant_id, list(texts)))
        return hashed_embed(texts)

    service.embed = embed
    handler = service.worker_handler(files.repository, files.storage, whitespace_tokenizer)
    runner = WorkRunner(service.queue, {KIND: handler})
    transport = httpx.ASGITransport(app=build_app(gateway.services))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        yield World(http, service, runner, alpha_key, beta_key, alpha_id, embedded)
    gateway.close()


async def test_create_list_retrieve_modify_delete_a_store(world: World) -> None:
    made = await world.store(name="docs", metadata={"team": "a"})
    assert made["object"] == "vector_store"
    assert made["id"].startswith("vs_")
    assert made["name"] == "docs" and made["metadata"] == {"team": "a"}
    assert made["status"] == "completed"
    assert made["file_counts"] == {
        "in_progress": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
        "total": 0,
    }
    other = await world.store(name="other")
    listed = (await world.call("GET", "/v1/vector_stores?limit=1&order=asc")).json()
    assert listed["object"] == "list"
    assert [s["id"] for s in listed["data"]] == [made["id"]]
    assert listed["first_id"] == listed["last_id"] == made["id"]
    assert listed["has_more"] is True
    after = (await world.call("GET", f"/v1/vector_stores?order=asc&after={made['id']}")).json()
    assert [s["id"] for s in after["data"]] == [other["id"]]

    path = f"/v1/vector_stores/{made['id']}"
    assert (await world.call("GET", path)).json() == made
    changed = await world.call(
        "POST", path, {"name": "renamed", "expires_after": {"anchor": "last_active_at", "days": 2}}
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["name"] == "renamed" and body["metadata"] == {"team": "a"}
    assert body["expires_after"] == {"anchor": "last_active_at", "days": 2}
    assert body["expires_at"] == body["last_active_at"] + 2 * 86400

    deleted = await world.call("DELETE", path)
    assert deleted.json() == {"id": made["id"], "object": "vector_store.deleted", "deleted": True}
    error_of(await world.call("GET", path), 404)


async def test_add_index_and_search_a_file(world: World) -> None:
    store = await world.store(name="cities")
    paris, tokyo = await world.upload(PARIS, "paris.txt"), await world.upload(TOKYO, "tokyo.md")
    base = f"/v1/vector_stores/{store['id']}"
    added = await world.call(
        "POST", f"{base}/files", {"file_id": paris, "attributes": {"country": "fr"}}
    )
    assert added.status_code == 200, added.text
    entry = added.json()
    assert entry["object"] == "vector_store.file"
    assert entry["id"] == paris and entry["vector_store_id"] == store["id"]
    assert entry["status"] == "in_progress" and entry["attributes"] == {"country": "fr"}
    assert entry["chunking_strategy"]["type"] == "static"
    await world.call("POST", f"{base}/files", {"file_id": tokyo, "attributes": {"country": "jp"}})
    assert (await world.call("GET", base)).json()["status"] == "in_progress"

    assert world.index_all() == 2
    assert {tenant for tenant, _ in world.embedded} == {world.alpha_id}
    done = (await world.call("GET", f"{base}/files/{paris}")).json()
    assert done["status"] == "completed" and done["usage_bytes"] > 0
    counts = (await world.call("GET", base)).json()["file_counts"]
    assert counts["completed"] == 2 and counts["total"] == 2

    found = await world.call("POST", f"{base}/search", {"query": "Eiffel Tower in Paris"})
    assert found.status_code == 200, found.text
    page = found.json()
    assert page["object"] == "vector_store.search_results.page"
    assert page["search_query"] == ["Eiffel Tower in Paris"]
    top = page["data"][0]
    assert top["file_id"] == paris and top["filename"] == "paris.txt"
    assert top["attributes"] == {"country": "fr"}
    assert "Eiffel" in top["content"][0]["text"]
    assert world.embedded[-1] == (world.alpha_id, ["Eiffel Tower in Paris"])

    content = (await world.call("GET", f"{base}/files/{paris}/content")).json()
    assert content == {
        "object": "vector_store.file_content.page",
        "data": [{"type": "text", "text": PARIS}],
        "has_more": False,
        "next_page": None,
    }

    filtered = await world.call(
        "POST",
        f"{base}/search",
        {"query": "capital", "filters": {"type": "eq", "key": "country", "value": "jp"}},
    )
    assert [r["file_id"] for r in filtered.json()["data"]] == [tokyo]


async def test_a_files_chunks_page_by_position(world: World) -> None:
    store = await world.store()
    base = f"/v1/vector_stores/{store['id']}"
    text = PARIS * 20
    file_id = await world.upload(text)
    strategy = {
        "type": "static",
        "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0},
    }
    await world.call("POST", f"{base}/files", {"file_id": file_id, "chunking_strategy": strategy})
    chunks = f"{base}/files/{file_id}/chunks"
    waiting = (await world.call("GET", chunks)).json()
    assert waiting == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }
    world.index_all()

    everything = (await world.call("GET", f"{chunks}?limit=100")).json()
    data = everything["data"]
    assert len(data) >= 3 and not everything["has_more"]
    assert [c["position"] for c in data] == list(range(len(data)))
    assert everything["first_id"] == 0 and everything["last_id"] == len(data) - 1
    for chunk in data:
        assert set(chunk) == {"object", "position", "text", "char_start", "char_end", "tokens"}
        assert chunk["object"] == "vector_store.file.chunk"
        assert text[chunk["char_start"] : chunk["char_end"]] == chunk["text"]
        assert 0 < chunk["tokens"] <= 100
    assert "".join(c["text"] for c in data) == text  # no overlap: the chunks tile the text

    first = (await world.call("GET", f"{chunks}?limit=2")).json()
    assert first["data"] == data[:2] and first["has_more"] is True
    rest = (await world.call("GET", f"{chunks}?after={first['last_id']}")).json()
    assert rest["data"] == data[2:] and rest["has_more"] is False

    error = error_of(await world.call("GET", f"{base}/files/file-nothere/chunks"), 404)
    assert error["param"] == "file_id"
    error_of(await world.call("GET", f"/v1/vector_stores/vs_nothere/files/{file_id}/chunks"), 404)


async def test_files_list_filter_update_and_delete(world: World) -> None:
    store = await world.store()
    base = f"/v1/vector_stores/{store['id']}"
    one, two = await world.upload(PARIS), await world.upload(TOKYO)
    await world.call("POST", f"{base}/files", {"file_id": one})
    world.index_all()
    await world.call("POST", f"{base}/files", {"file_id": two})

    listed = (await world.call("GET", f"{base}/files?order=asc")).json()
    assert listed["object"] == "list" and [f["id"] for f in listed["data"]] == [one, two]
    done = (await world.call("GET", f"{base}/files?filter=completed")).json()
    assert [f["id"] for f in done["data"]] == [one]
    waiting = (await world.call("GET", f"{base}/files?filter=in_progress")).json()
    assert [f["id"] for f in waiting["data"]] == [two]

    updated = await world.call("POST", f"{base}/files/{one}", {"attributes": {"year": 2024}})
    assert updated.status_code == 200, updated.text
    assert updated.json()["attributes"] == {"year": 2024}

    gone = await world.call("DELETE", f"{base}/files/{one}")
    assert gone.json() == {"id": one, "object": "vector_store.file.deleted", "deleted": True}
    error_of(await world.call("GET", f"{base}/files/{one}"), 404)
    still = await world.http.get(
        f"/v1/files/{one}", headers={"authorization": f"Bearer {world.alpha}"}
    )
    assert still.status_code == 200  # the uploaded file stays


async def test_file_batches(world: World) -> None:
    store = await world.store()
    base = f"/v1/vector_stores/{store['id']}"
    one, two = await world.upload(PARIS), await world.upload(TOKYO)
    made = await world.call(
        "POST", f"{base}/file_batches", {"file_ids": [one, two], "attributes": {"k": "v"}}
    )
    assert made.status_code == 200, made.text
    batch = made.json()
    assert batch["object"] == "vector_store.files_batch"
    assert batch["id"].startswith("vsfb_") and batch["status"] == "in_progress"
    assert batch["file_counts"]["in_progress"] == 2 and batch["file_counts"]["total"] == 2
    path = f"{base}/file_batches/{batch['id']}"
    listed = (await world.call("GET", f"{path}/files")).json()
    assert sorted(f["id"] for f in listed["data"]) == sorted([one, two])

    world.index_all()
    assert (await world.call("GET", path)).json()["status"] == "completed"

    three = await world.upload("A third file about Lisbon.\n")
    second = (await world.call("POST", f"{base}/file_batches", {"file_ids": [three]})).json()
    cancelled = await world.call("POST", f"{base}/file_batches/{second['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert world.index_all() == 1  # the item runs and finds the file cancelled
    entry = (await world.call("GET", f"{base}/files/{three}")).json()
    assert entry["status"] == "cancelled"
    left = (await world.call("GET", f"{base}/file_batches/{second['id']}/files")).json()
    assert [f["id"] for f in left["data"]] == [three]


async def test_create_with_file_ids_indexes_them(world: World) -> None:
    one = await world.upload(PARIS)
    store = await world.store(name="s", file_ids=[one])
    assert store["file_counts"]["in_progress"] == 1
    world.index_all()
    entry = (await world.call("GET", f"/v1/vector_stores/{store['id']}/files/{one}")).json()
    assert entry["status"] == "completed"


@pytest.mark.parametrize(
    ("method", "path", "body", "param"),
    [
        ("POST", "/v1/vector_stores", {"name": 3}, "name"),
        ("POST", "/v1/vector_stores", {"metadata": {"k": 1}}, "metadata.k"),
        ("POST", "/v1/vector_stores", {"expires_after": {"anchor": "x", "days": 1}}, None),
        ("POST", "/v1/vector_stores", {"file_ids": "file-1"}, "file_ids"),
        ("POST", "/v1/vector_stores", {"colour": "red"}, "colour"),
        ("GET", "/v1/vector_stores?limit=0", None, "limit"),
        ("GET", "/v1/vector_stores?limit=x", None, "limit"),
        ("GET", "/v1/vector_stores?order=up", None, "order"),
        ("POST", "{store}", {"name": ["x"]}, "name"),
        ("POST", "{store}/files", {}, "file_id"),
        ("POST", "{store}/files", {"file_id": "{file}", "attributes": [1]}, "attributes"),
        (
            "POST",
            "{store}/files",
            {"file_id": "{file}", "chunking_strategy": {"type": "smart"}},
            "chunking_strategy.type",
        ),
        (
            "POST",
            "{store}/files",
            {
                "file_id": "{file}",
                "chunking_strategy": {
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 4000, "chunk_overlap_tokens": 0},
                },
            },
            "chunking_strategy.static.max_chunk_size_tokens",
        ),
        ("GET", "{store}/files?filter=done", None, "filter"),
        ("GET", "{store}/files/{file}/chunks?limit=0", None, "limit"),
        ("GET", "{store}/files/{file}/chunks?limit=101", None, "limit"),
        ("GET", "{store}/files/{file}/chunks?limit=many", None, "limit"),
        ("GET", "{store}/files/{file}/chunks?after=-1", None, "after"),
        ("GET", "{store}/files/{file}/chunks?after=chunk-3", None, "after"),
        ("POST", "{store}/files/{file}", {}, "attributes"),
        ("POST", "{store}/file_batches", {"file_ids": []}, "file_ids"),
        ("POST", "{store}/search", {"query": ""}, "query"),
        ("POST", "{store}/search", {"query": "x", "max_num_results": 51}, "max_num_results"),
        ("POST", "{store}/search", {"query": "x", "filters": {"type": "eq"}}, None),
    ],
)
async def test_bad_input_is_a_400_naming_the_param(
    world: World, method: str, path: str, body: Any, param: str | None
) -> None:
    store = await world.store()
    file_id = await world.upload(PARIS)
    store_path = f"/v1/vector_stores/{store['id']}"
    await world.call("POST", f"{store_path}/files", {"file_id": file_id})

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("{store}", store_path).replace("{file}", file_id)
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    error = error_of(await world.call(method, fill(path), fill(body)), 400)
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param
    else:
        assert error["param"]


async def test_malformed_json_is_a_400(world: World) -> None:
    response = await world.http.post(
        "/v1/vector_stores",
        content=b"{not json",
        headers={"authorization": f"Bearer {world.alpha}", "content-type": "application/json"},
    )
    error_of(response, 400)


async def test_adding_a_missing_file_is_a_404(world: World) -> None:
    store = await world.store()
    error = error_of(
        await world.call(
            "POST", f"/v1/vector_stores/{store['id']}/files", {"file_id": "file-nothere"}
        ),
        404,
    )
    assert error["param"] == "file_id"
    error_of(await world.call("GET", "/v1/vector_stores/vs_nothere"), 404)
    error_of(await world.call("GET", f"/v1/vector_stores/{store['id']}/nowhere"), 404)
    error_of(await world.call("GET", f"/v1/vector_stores/{store['id']}/files/"), 404)


async def test_another_tenants_ids_do_not_exist_for_it(world: World) -> None:
    store = await world.store()
    file_id = await world.upload(PARIS)
    base = f"/v1/vector_stores/{store['id']}"
    await world.call("POST", f"{base}/files", {"file_id": file_id})
    batch = (await world.call("POST", f"{base}/file_batches", {"file_ids": [file_id]})).json()
    beta = world.beta
    for method, path, body in [
        ("GET", base, None),
        ("POST", base, {"name": "mine"}),
        ("DELETE", base, None),
        ("GET", f"{base}/files", None),
        ("POST", f"{base}/files", {"file_id": file_id}),
        ("GET", f"{base}/files/{file_id}", None),
        ("GET", f"{base}/files/{file_id}/content", None),
        ("GET", f"{base}/files/{file_id}/chunks", None),
        ("POST", f"{base}/files/{file_id}", {"attributes": {}}),
        ("DELETE", f"{base}/files/{file_id}", None),
        ("POST", f"{base}/file_batches", {"file_ids": [file_id]}),
        ("GET", f"{base}/file_batches/{batch['id']}", None),
        ("POST", f"{base}/file_batches/{batch['id']}/cancel", None),
        ("GET", f"{base}/file_batches/{batch['id']}/files", None),
        ("POST", f"{base}/search", {"query": "Paris"}),
    ]:
        error_of(await world.call(method, path, body, key=beta), 404)
    assert (await world.call("GET", "/v1/vector_stores", key=beta)).json()["data"] == []

    # beta's own store cannot take alpha's file either
    own = await world.store(key=beta)
    error_of(
        await world.call(
            "POST", f"/v1/vector_stores/{own['id']}/files", {"file_id": file_id}, key=beta
        ),
        404,
    )
    assert (await world.call("GET", base)).status_code == 200  # alpha's store is untouched


async def test_without_a_key_nothing_is_served(world: World) -> None:
    assert (await world.http.get("/v1/vector_stores")).status_code == 401
    assert (await world.http.post("/v1/vector_stores/vs_x/search", json={})).status_code == 401


async def test_work_the_tenant_cannot_afford_is_refused_before_anything_is_recorded(
    world: World,
) -> None:
    """Adding files and searching embed text for the tenant: each is checked as an embeddings
    call of that size (about a token per 4 bytes), and a refusal leaves no file, batch, store
    or work item behind."""
    asked: list[int] = []
    allowance = 10**6

    async def admit(principal: Principal, tokens: int, request_id: str) -> None:
        asked.append(tokens)
        if tokens > allowance:
            raise InsufficientQuota("the tenant's prepaid credit cannot cover this request")

    world.service.admit = admit
    store = await world.store()
    base = f"/v1/vector_stores/{store['id']}"
    file_id = await world.upload(PARIS * 10)
    await world.call("POST", f"{base}/search", {"query": "abcdefgh"})
    assert asked == [2]  # 8 bytes of query
    tokens = -(-len((PARIS * 10).encode()) // 4)
    allowance = tokens - 1
    for method, path, body in [
        ("POST", f"{base}/files", {"file_id": file_id}),
        ("POST", f"{base}/file_batches", {"file_ids": [file_id, file_id]}),
        ("POST", "/v1/vector_stores", {"name": "more", "file_ids": [file_id]}),
        ("POST", f"{base}/search", {"query": "x" * 4 * tokens}),
    ]:
        error = error_of(await world.call(method, path, body), 429)
        assert error["code"] == "insufficient_quota"
    assert asked[1:] == [tokens] * 4
    assert (await world.call("GET", f"{base}/files")).json()["data"] == []
    stores = (await world.call("GET", "/v1/vector_stores")).json()["data"]
    assert [s["id"] for s in stores] == [store["id"]]
    assert world.index_all() == 0

    allowance = tokens
    added = await world.call("POST", f"{base}/files", {"file_id": file_id})
    assert added.status_code == 200 and world.index_all() == 1
