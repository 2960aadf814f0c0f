"""The Files API in-process: every route, bad input, limits, and tenants kept apart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.files.test_storage import files_under
from tokenmill.clock import SystemClock
from tokenmill.control.keys import KeyRepository
from tokenmill.control.tenants import TenantRepository
from tokenmill.gateway.app import build_app
from tokenmill.gateway.compose import build_gateway
from tokenmill.gateway.routing import Router
from tokenmill.settings import Settings
from tokenmill.store.db import Database

MAX_BYTES = 1000


@dataclass
class World:
    http: httpx.AsyncClient
    root: Path
    alpha: str
    beta: str
    alpha_id: str
    alpha_admin: str

    def on_disk(self) -> list[Path]:
        return files_under(self.root)

    async def upload(
        self,
        data: bytes = b'{"prompt": "hi"}\n',
        purpose: str | None = "assistants",
        key: str | None = None,
        filename: str = "train.jsonl",
        extra: dict[str, str] | None = None,
    ) -> httpx.Response:
        fields = {"purpose": purpose} if purpose is not None else {}
        return await self.http.post(
            "/v1/files",
            data={**fields, **(extra or {})},
            files={"file": (filename, data, "application/jsonl")},
            headers=_auth(key or self.alpha),
        )

    async def get(self, path: str, key: str | None = None) -> httpx.Response:
        return await self.http.get(path, headers=_auth(key or self.alpha))


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@pytest.fixture
async def world(database: Database, tmp_path: Path) -> AsyncIterator[World]:
    clock = SystemClock()
    tenants, keys = TenantRepository(database, clock), KeyRepository(database, clock)
    alpha, beta = tenants.create("alpha"), tenants.create("beta")
    _, alpha_key = keys.create(alpha.id, "alpha-app")  # inference keys, as apps have
    _, beta_key = keys.create(beta.id, "beta-app")
    _, alpha_admin = keys.create(alpha.id, "alpha-admin", role="tenant_admin")
    settings = Settings(data_dir=tmp_path, files_max_bytes=MAX_BYTES)
    gateway = build_gateway(settings, database, clock, Router(), admission=False, journal=False)
    transport = httpx.ASGITransport(app=build_app(gateway.services))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        yield World(http, tmp_path / "files", alpha_key, beta_key, alpha.id, alpha_admin)
    gateway.close()


def error_of(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return dict(error)


async def test_upload_list_retrieve_download_delete(world: World) -> None:
    data = b'{"prompt": "hi"}\n' * 3
    created = await world.upload(data)
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["id"].startswith("file-") and body["object"] == "file"
    assert body["bytes"] == len(data) and body["filename"] == "train.jsonl"
    assert body["purpose"] == "assistants" and body["status"] == "processed"
    assert body["status_details"] is None and body["expires_at"] is None
    assert isinstance(body["created_at"], int)
    file_id = body["id"]

    assert (await world.get(f"/v1/files/{file_id}")).json() == body
    listed = (await world.get("/v1/files")).json()
    assert listed == {
        "object": "list",
        "data": [body],
        "first_id": file_id,
        "last_id": file_id,
        "has_more": False,
    }
    content = await world.get(f"/v1/files/{file_id}/content")
    assert content.status_code == 200 and content.content == data
    assert content.headers["content-type"] == "application/octet-stream"
    assert content.headers["content-length"] == str(len(data))

    deleted = await world.http.delete(f"/v1/files/{file_id}", headers=_auth(world.alpha))
    assert deleted.json() == {"id": file_id, "object": "file", "deleted": True}
    assert world.on_disk() == []
    gone = error_of(await world.get(f"/v1/files/{file_id}"), 404)
    assert gone["message"] == f"No such File object: {file_id}"
    error_of(await world.http.delete(f"/v1/files/{file_id}", headers=_auth(world.alpha)), 404)
    assert (await world.get("/v1/files")).json()["data"] == []


async def test_listing_filters_and_pages(world: World) -> None:
    ids = []
    for purpose in ("assistants", "batch", "fine-tune", "batch"):
        ids.append((await world.upload(purpose=purpose)).json()["id"])
    batch = (await world.get("/v1/files?purpose=batch&order=asc")).json()
    assert [f["id"] for f in batch["data"]] == [ids[1], ids[3]]
    first = (await world.get("/v1/files?limit=3&order=asc")).json()
    assert [f["id"] for f in first["data"]] == ids[:3] and first["has_more"] is True
    rest = (await world.get(f"/v1/files?limit=3&order=asc&after={first['last_id']}")).json()
    assert [f["id"] for f in rest["data"]] == ids[3:] and rest["has_more"] is False
    newest = (await world.get("/v1/files?limit=1")).json()
    assert [f["id"] for f in newest["data"]] == [ids[3]]
    for query, param in [
        ("limit=0", "limit"),
        ("limit=10001", "limit"),
        ("limit=ten", "limit"),
        ("order=sideways", "order"),
        ("purpose=poems", "purpose"),
    ]:
        assert error_of(await world.get(f"/v1/files?{query}"), 400)["param"] == param


async def test_expires_after_sets_expires_at(world: World) -> None:
    ok = await world.upload(
        extra={"expires_after[anchor]": "created_at", "expires_after[seconds]": "3600"}
    )
    body = ok.json()
    assert body["expires_at"] == body["created_at"] + 3600
    for seconds in ("3599", "2592001", "soon"):
        refused = await world.upload(
            extra={"expires_after[anchor]": "created_at", "expires_after[seconds]": seconds}
        )
        assert error_of(refused, 400)["param"] == "expires_after.seconds"
    refused = await world.upload(
        extra={"expires_after[anchor]": "last_active_at", "expires_after[seconds]": "3600"}
    )
    assert error_of(refused, 400)["param"] == "expires_after.anchor"
    assert len(world.on_disk()) == 1


async def test_bad_uploads_are_refused_and_leave_nothing(world: World) -> None:
    missing = error_of(await world.upload(purpose=None), 400)
    assert missing["param"] == "purpose" and "purpose" in str(missing["message"])
    unknown = error_of(await world.upload(purpose="poems"), 400)
    assert unknown["param"] == "purpose" and "'poems'" in str(unknown["message"])
    empty = error_of(await world.upload(b""), 400)
    assert empty["param"] == "file" and empty["message"] == "The file is empty."
    no_file = await world.http.post(
        "/v1/files",
        data={"purpose": "assistants"},
        files={"other": ("x", b"x")},
        headers=_auth(world.alpha),
    )
    assert error_of(no_file, 400)["param"] == "file"
    assert world.on_disk() == []
    assert (await world.get("/v1/files")).json()["data"] == []


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data; boundary=xyz", b"this is not multipart at all"),
        (
            "multipart/form-data; boundary=xyz",
            b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'
            b"truncated before the closing boundary",
        ),
        ("multipart/form-data", b"--xyz\r\n"),
        ("application/json", b'{"purpose": "assistants"}'),
        (
            "multipart/form-data; boundary=xyz",
            b"--xyz\r\nContent-Type: text/plain\r\n\r\nno name\r\n--xyz--\r\n",
        ),
    ],
)
async def test_malformed_bodies_are_a_400(world: World, content_type: str, body: bytes) -> None:
    response = await world.http.post(
        "/v1/files",
        content=body,
        headers={**_auth(world.alpha), "content-type": content_type},
    )
    error = error_of(response, 400)
    assert error["type"] == "invalid_request_error"
    assert world.on_disk() == []


async def test_a_file_over_the_limit_is_a_413_and_leaves_nothing(world: World) -> None:
    exactly = await world.upload(b"x" * MAX_BYTES)
    assert exactly.status_code == 200, exactly.text
    over = error_of(await world.upload(b"x" * (MAX_BYTES + 1)), 413)
    assert over["message"] == f"The file is larger than the limit of {MAX_BYTES} bytes per file."
    assert over["code"] == "file_too_large" and over["param"] == "file"
    huge = error_of(await world.upload(b"x" * (1024 * 1024)), 413)  # refused by its length
    assert huge["code"] == "file_too_large"
    assert [p.name for p in world.on_disk()] == [exactly.json()["id"]]
    assert len((await world.get("/v1/files")).json()["data"]) == 1


async def test_another_tenants_file_does_not_exist_for_it(world: World) -> None:
    file_id = (await world.upload()).json()["id"]
    for path in (f"/v1/files/{file_id}", f"/v1/files/{file_id}/content"):
        error = error_of(await world.get(path, world.beta), 404)
        assert error["message"] == f"No such File object: {file_id}"
    refused = await world.http.delete(f"/v1/files/{file_id}", headers=_auth(world.beta))
    assert error_of(refused, 404)["message"] == f"No such File object: {file_id}"
    assert (await world.get("/v1/files", world.beta)).json()["data"] == []
    after = error_of(await world.get(f"/v1/files?after={file_id}", world.beta), 400)
    assert after["param"] == "after"
    assert (await world.get(f"/v1/files/{file_id}")).status_code == 200  # still alpha's


async def test_without_a_key_nothing_is_served(world: World) -> None:
    assert (await world.http.get("/v1/files")).status_code == 401
    response = await world.http.post(
        "/v1/files", data={"purpose": "assistants"}, files={"file": ("a", b"abc")}
    )
    assert response.status_code == 401
    assert world.on_disk() == []


async def test_the_tenant_shows_the_bytes_it_stores(world: World) -> None:
    async def stored() -> object:
        tenant = await world.get(f"/admin/v1/tenants/{world.alpha_id}", world.alpha_admin)
        return tenant.json()["storage_bytes"]

    assert await stored() == 0
    first = (await world.upload(b"a" * 300)).json()["id"]
    await world.upload(b"b" * 200)
    assert await stored() == 500
    await world.http.delete(f"/v1/files/{first}", headers=_auth(world.alpha))
    assert await stored() == 200
