"""The console's admin routes: who am I, the live overview, one request's usage record."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.billing.test_usage import usage_event
from tests.gateway.conftest import admin_keys
from tokenmill.billing.usage import UsageRepository
from tokenmill.clock import SystemClock
from tokenmill.gateway.admin import AdminApi
from tokenmill.gateway.admin_console import replica_loads
from tokenmill.gateway.app import build_app
from tokenmill.gateway.compose import build_gateway
from tokenmill.gateway.routing import Router
from tokenmill.settings import Settings
from tokenmill.store.db import Database


def replica(replica_id: str) -> dict[str, Any]:
    return {
        "id": replica_id,
        "state": "ready",
        "url": f"http://127.0.0.1/{replica_id}",
        "node": "local",
        "accelerators": ["cpu0"],
        "memory_bytes": 1 << 20,
    }


@dataclass
class Console:
    http: httpx.AsyncClient
    admin: AdminApi
    router: Router
    platform: str
    alpha_id: str
    alpha_admin: str
    alpha_inference: str
    beta_id: str
    beta_admin: str

    async def get(self, key: str, path: str) -> httpx.Response:
        return await self.http.get(path, headers={"authorization": f"Bearer {key}"})


@pytest.fixture
async def console(database: Database, tmp_path: Path) -> AsyncIterator[Console]:
    clock = SystemClock()
    k = admin_keys(database, clock)
    router = Router()
    gateway = build_gateway(
        Settings(data_dir=tmp_path), database, clock, router, admission=False, journal=False
    )
    admin = gateway.services.admin
    assert admin is not None
    transport = httpx.ASGITransport(app=build_app(gateway.services))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        yield Console(
            http,
            admin,
            router,
            k.platform,
            k.alpha_id,
            k.alpha_admin,
            k.alpha_inference,
            k.beta_id,
            k.beta_admin,
        )
    gateway.close()


async def test_me_names_the_key_its_role_and_tenant(console: Console) -> None:
    me = (await console.get(console.alpha_admin, "/admin/v1/me")).json()
    assert me["role"] == "tenant_admin" and me["tenant_id"] == console.alpha_id
    assert (me["key_name"], me["tenant_name"]) == ("alpha-admin", "alpha")
    refused = await console.get(console.alpha_inference, "/admin/v1/me")
    assert refused.status_code == 403


async def test_overview_is_scoped_to_the_callers_tenant(
    console: Console, database: Database
) -> None:
    now = SystemClock().utcnow()
    UsageRepository(database).insert_many(
        [
            usage_event("a1", tenant_id=console.alpha_id, created_at=now - timedelta(seconds=5)),
            usage_event("a2", tenant_id=console.alpha_id, created_at=now - timedelta(seconds=9)),
            usage_event("b1", tenant_id=console.beta_id, created_at=now - timedelta(seconds=5)),
        ]
    )
    everything = (await console.get(console.platform, "/admin/v1/overview")).json()
    assert everything["requests"] == 3 and everything["tenant_id"] is None
    assert everything["window_seconds"] == 60 and len(everything["series"]) > 0
    alpha = (await console.get(console.alpha_admin, "/admin/v1/overview")).json()
    assert (alpha["requests"], alpha["tenant_id"]) == (2, console.alpha_id)
    one = await console.get(console.platform, f"/admin/v1/overview?tenant_id={console.beta_id}")
    assert one.json()["requests"] == 1
    foreign = await console.get(
        console.beta_admin, f"/admin/v1/overview?tenant_id={console.alpha_id}"
    )
    assert foreign.status_code == 404 and "alpha" not in foreign.text
    bad = await console.get(console.platform, "/admin/v1/overview?window_seconds=0")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "window_seconds"
    assert (await console.get(console.alpha_inference, "/admin/v1/overview")).status_code == 403


async def test_overview_lists_only_the_replicas_the_caller_may_see(console: Console) -> None:
    console.admin.fleet_status = lambda: [
        {"id": "dep_shared", "mode": "serverless", "tenant_id": None,
         "replicas": [replica("r-shared")]},
        {"id": "dep_alpha", "mode": "dedicated", "tenant_id": console.alpha_id,
         "replicas": [replica("r-alpha")]},
    ]  # fmt: skip
    console.router.set_replicas("pool", [("r-shared", "http://127.0.0.1/r-shared")])
    console.router.pool("pool").endpoints[0].in_flight = 3
    console.admin.replica_load = replica_loads(console.router)
    platform = (await console.get(console.platform, "/admin/v1/overview")).json()["replicas"]
    assert [(r["id"], r["deployment_id"], r["in_flight"]) for r in platform] == [
        ("r-shared", "dep_shared", 3),
        ("r-alpha", "dep_alpha", None),
    ]
    assert platform[0]["memory_bytes"] == 1 << 20 and platform[0]["node"] == "local"
    alpha = (await console.get(console.alpha_admin, "/admin/v1/overview")).json()["replicas"]
    assert [r["id"] for r in alpha] == ["r-alpha"]
    beta = (await console.get(console.beta_admin, "/admin/v1/overview")).json()["replicas"]
    assert beta == []


async def test_a_request_usage_record_is_visible_to_its_own_tenant_only(
    console: Console, database: Database
) -> None:
    UsageRepository(database).insert_many(
        [usage_event("req-a1", tenant_id=console.alpha_id, cost_micros=1234)]
    )
    own = (await console.get(console.alpha_admin, "/admin/v1/requests/req-a1")).json()
    assert (own["cost_micros"], own["completion_tokens"]) == (1234, 30)
    assert own["cost"] == "0.001234" and own["tenant_id"] == console.alpha_id
    for key, path in [
        (console.beta_admin, "/admin/v1/requests/req-a1"),
        (console.alpha_admin, "/admin/v1/requests/req-none"),
    ]:
        response = await console.get(key, path)
        assert response.status_code == 404 and "alpha" not in response.json()["error"]["message"]
