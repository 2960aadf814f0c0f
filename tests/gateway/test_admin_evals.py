"""The admin routes of evaluations through the gateway: a tenant admin evaluates models it may
use on its own files; another tenant's admin finds nothing, an inference key may not ask, only
a platform admin publishes; a model's card shows the latest figures its reader may see."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.gateway.conftest import AdminKeys, admin_keys, error_of
from tokenmill.billing.pricebook import PriceBookRepository
from tokenmill.catalog.install import install_bundled
from tokenmill.catalog.repository import ModelRepository
from tokenmill.clock import SystemClock
from tokenmill.control.bootstrap import ADMIN_TENANT_NAME
from tokenmill.control.tenants import TenantRepository
from tokenmill.evals.service import EvalService
from tokenmill.files.service import FileService
from tokenmill.gateway.app import build_app
from tokenmill.gateway.compose import build_gateway
from tokenmill.gateway.routing import Router
from tokenmill.settings import Settings
from tokenmill.store.db import Database

MODEL = "smollm2-135m-instruct"
EMBEDDER = "all-minilm-l6-v2"
ROWS = orjson.dumps(
    {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello."}]}
)


@dataclass
class World:
    http: httpx.AsyncClient
    keys: AdminKeys
    platform_tenant: str
    files: FileService
    evals: EvalService

    async def call(self, key: str, method: str, path: str, body: object = None) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"}
        return await self.http.request(method, path, json=body, headers=headers)

    def upload(self, tenant_id: str) -> str:
        return self.files.write(tenant_id, "key_x", "held_out.jsonl", "fine-tune", ROWS).id


@pytest.fixture
async def world(database: Database, tmp_path: Path) -> AsyncIterator[World]:
    clock = SystemClock()
    keys = admin_keys(database, clock)
    install_bundled(
        ModelRepository(database, clock), PriceBookRepository(database, clock), [MODEL, EMBEDDER]
    )
    settings = Settings(data_dir=tmp_path)
    gateway = build_gateway(settings, database, clock, Router(), admission=False, journal=False)
    services = gateway.services
    assert services.admin is not None and services.admin.evals is not None
    assert services.files is not None
    transport = httpx.ASGITransport(app=build_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        platform = TenantRepository(database, clock).get_by_name(ADMIN_TENANT_NAME)
        assert platform is not None
        yield World(http, keys, platform.id, services.files, services.admin.evals)
    gateway.close()


async def create(w: World, key: str, **body: Any) -> httpx.Response:
    return await w.call(key, "POST", "/admin/v1/evals", {"models": [MODEL], **body})


async def test_a_tenant_admin_evaluates_on_its_own_data_and_sees_only_its_own(world: World) -> None:
    w = world
    k = w.keys
    made = await create(w, k.alpha_admin, file_id=w.upload(k.alpha_id), metrics=["exact_match"])
    assert made.status_code == 200, made.text
    created = made.json()
    assert (created["object"], created["status"], created["models"]) == (
        "evaluation", "queued", [MODEL],
    )  # fmt: skip
    path = f"/admin/v1/evals/{created['id']}"
    assert (await w.call(k.alpha_admin, "GET", path)).json()["id"] == created["id"]
    listed = (await w.call(k.alpha_admin, "GET", "/admin/v1/evals")).json()["data"]
    assert [e["id"] for e in listed] == [created["id"]]
    for method, where in (("GET", path), ("POST", f"{path}/cancel")):
        error_of(await w.call(k.beta_admin, method, where), 404)
    assert (await w.call(k.beta_admin, "GET", "/admin/v1/evals")).json()["data"] == []
    assert (await w.call(k.platform, "GET", path)).status_code == 200
    error_of(await w.call(k.alpha_inference, "GET", "/admin/v1/evals"), 403)
    cancelled = await w.call(k.alpha_admin, "POST", f"{path}/cancel")
    assert cancelled.json()["status"] == "cancelled"


async def test_refusals_name_what_is_wrong(world: World) -> None:
    w = world
    k = w.keys
    theirs = w.upload(k.beta_id)
    assert error_of(await create(w, k.alpha_admin, file_id=theirs), 404)["param"] == "file_id"
    mine = w.upload(k.alpha_id)
    unknown = await create(w, k.alpha_admin, file_id=mine, models=["no-such-model"])
    assert error_of(unknown, 404)["param"] == "model"
    embedder = await create(w, k.alpha_admin, file_id=mine, models=[EMBEDDER])
    assert error_of(embedder, 400)["code"] == "model_not_supported"
    assert (
        error_of(await create(w, k.alpha_admin, file_id=mine, metrics=["bleu"]), 400)["param"]
        == "metrics"
    )
    error_of(await create(w, k.alpha_admin, file_id=mine, publish=True), 403)
    published = await create(w, k.platform, file_id=w.upload(w.platform_tenant), publish=True)
    assert published.status_code == 200 and published.json()["published"] is True


async def test_a_card_shows_the_readers_own_figures_and_published_ones(world: World) -> None:
    w = world
    k = w.keys
    alpha = await create(w, k.alpha_admin, file_id=w.upload(k.alpha_id))
    beta = await create(w, k.beta_admin, file_id=w.upload(k.beta_id))
    summary = {"exact_match": {"mean": 0.5, "count": 2}, "errors": 0}
    for made, name in ((alpha, MODEL), (beta, f"{MODEL}@1")):  # by its id, or id and version
        info = w.evals.get(None, made.json()["id"])
        w.evals.evals.record(info, name, summary)
    for key, own in ((k.alpha_admin, alpha), (k.beta_admin, beta)):
        card = (await w.call(key, "GET", f"/v1/models/{MODEL}")).json()["card"]
        assert [e["eval_id"] for e in card["evaluations"]] == [own.json()["id"]]
        assert card["evaluations"][0]["exact_match"] == {"mean": 0.5, "count": 2}
        admin_card = (await w.call(key, "GET", f"/admin/v1/models/{MODEL}")).json()["card"]
        assert admin_card["evaluations"] == card["evaluations"]
