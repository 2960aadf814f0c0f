"""The audit log through the admin API: every POST, PATCH and DELETE is an entry (who, with
which key, from where, what it asked, before and after, the status), refused ones too, and no
GET is; a key's secret never enters the log; a tenant admin reads its own tenant's entries
only (the platform's key ids and addresses hidden), and only a platform admin may verify
the chain."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from tests.gateway.conftest import AdminKeys, admin_keys, error_of
from tokenmill.clock import SystemClock
from tokenmill.control.keys import KeyRepository, hash_secret
from tokenmill.gateway.app import build_app
from tokenmill.gateway.compose import build_gateway
from tokenmill.gateway.routing import Router
from tokenmill.settings import Settings
from tokenmill.store.audit_tables import AuditEntry
from tokenmill.store.db import Database

Json = dict[str, Any]
AUDIT = "/admin/v1/audit"
SECRET = "sk-mcp-5e0c2a91d7"
WHO = ("actor_key_id", "actor_role", "actor_tenant_id", "tenant_id", "method", "path", "status")


@dataclass
class World:
    http: httpx.AsyncClient
    db: Database
    k: AdminKeys
    platform_id: str  # the platform admin key's id
    admin_tenant_id: str  # the tenant that key belongs to

    async def call(
        self, key: str, method: str, path: str, body: object = None, **params: str | int
    ) -> httpx.Response:
        return await self.http.request(
            method, path, json=body, params=params, headers={"authorization": f"Bearer {key}"}
        )

    async def ok(self, key: str, method: str, path: str, body: object = None) -> Json:
        response = await self.call(key, method, path, body)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def entries(self, key: str | None = None, **params: str | int) -> list[Json]:
        """The audit log as ``key`` (the platform admin's unless told) reads it, newest first."""
        listed = await self.ok_list(key or self.k.platform, **params)
        return list(listed["data"])

    async def ok_list(self, key: str, **params: str | int) -> Json:
        response = await self.call(key, "GET", AUDIT, **params)
        assert response.status_code == 200, response.text
        assert response.json()["object"] == "list"
        return dict(response.json())


@pytest.fixture
async def world(database: Database, tmp_path: Path) -> AsyncIterator[World]:
    clock = SystemClock()
    k = admin_keys(database, clock)
    platform = KeyRepository(database, clock).principal_for_secret_hash(hash_secret(k.platform))
    assert platform is not None
    gateway = build_gateway(
        Settings(data_dir=tmp_path), database, clock, Router(), admission=False, journal=False
    )
    transport = httpx.ASGITransport(app=build_app(gateway.services))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        yield World(http, database, k, platform.key_id, platform.tenant_id)
    gateway.close()


def who(entry: Json) -> tuple[Any, ...]:
    return tuple(entry[name] for name in WHO)


async def test_admin_actions_are_entries_with_who_what_before_and_after(world: World) -> None:
    w, k = world, world.k
    alpha = f"/admin/v1/tenants/{k.alpha_id}"
    gamma = await w.ok(k.platform, "POST", "/admin/v1/tenants", {"name": "gamma"})
    created = await w.ok(k.alpha_admin, "POST", f"{alpha}/keys", {"name": "ci"})
    old = await w.ok(k.platform, "GET", alpha)
    await w.ok(k.platform, "PATCH", alpha, {"rpm_limit": 60})
    revoked = await w.ok(k.alpha_admin, "POST", f"/admin/v1/keys/{created['id']}/revoke")
    await w.ok(k.platform, "POST", f"{alpha}/credits", {"amount_micros": 5_000_000})

    for key, path in [  # reads are not entries
        (k.platform, "/admin/v1/tenants"),
        (k.alpha_admin, f"{alpha}/keys"),
        (k.alpha_admin, f"{alpha}/credits"),
        (k.alpha_admin, "/admin/v1/prices"),
        (k.alpha_admin, f"/admin/v1/keys/{created['id']}"),
        (k.alpha_admin, AUDIT),
        (k.platform, f"{AUDIT}/verify"),
    ]:
        assert (await w.call(key, "GET", path)).status_code == 200, path
    response = await w.call(k.platform, "GET", AUDIT)
    assert response.status_code == 200
    assert created["secret"] not in response.text  # shown once, to its creator only
    entries = response.json()["data"]
    platform = (w.platform_id, "platform_admin", w.admin_tenant_id)
    alpha_admin = (k.alpha_admin_id, "tenant_admin", k.alpha_id)
    assert [who(e) for e in entries] == [
        (*platform, k.alpha_id, "POST", f"{alpha}/credits", 200),
        (*alpha_admin, k.alpha_id, "POST", f"/admin/v1/keys/{created['id']}/revoke", 200),
        (*platform, k.alpha_id, "PATCH", alpha, 200),
        (*alpha_admin, k.alpha_id, "POST", f"{alpha}/keys", 200),
        (*platform, gamma["id"], "POST", "/admin/v1/tenants", 200),
    ]
    credits, revoke, patch, key, tenant = entries
    assert [e["seq"] for e in entries] == [5, 4, 3, 2, 1]
    assert all(e["object"] == "audit.entry" and e["address"] == "127.0.0.1" for e in entries)
    assert all(len(e["hash"]) == 64 for e in entries) and tenant["prev_hash"] == "0" * 64

    assert tenant["request"] == {"name": "gamma"}
    assert tenant["after"]["id"] == gamma["id"] and tenant["after"]["name"] == "gamma"
    assert key["request"] == {"name": "ci"}
    assert key["after"] == {**created, "secret": "[redacted]"}  # the key's id, not its secret
    assert patch["request"] == {"rpm_limit": 60} and old["rpm_limit"] != 60
    assert (patch["before"]["rpm_limit"], patch["after"]["rpm_limit"]) == (old["rpm_limit"], 60)
    assert {n: v for n, v in patch["before"].items() if patch["after"][n] != v} == {
        "rpm_limit": old["rpm_limit"]
    }  # nothing else changed
    assert revoke["request"] is None and revoke["before"] is None
    assert revoke["after"] == revoked and revoke["after"]["revoked_at"] is not None
    assert credits["request"] == {"amount_micros": 5_000_000}
    assert credits["after"]["amount_micros"] == 5_000_000


async def test_a_delete_keeps_the_object_before_and_headers_stay_secret(world: World) -> None:
    servers = f"/admin/v1/tenants/{world.k.alpha_id}/mcp_servers"
    body = {"label": "wiki", "url": "http://127.0.0.1:9/mcp", "headers": {"X-Api-Key": SECRET}}
    made = await world.ok(world.k.platform, "POST", servers, body)
    path = f"{servers}/{made['id']}"
    await world.ok(world.k.platform, "PATCH", path, {"description": "The wiki."})
    await world.ok(world.k.platform, "DELETE", path)

    response = await world.call(world.k.alpha_admin, "GET", AUDIT)
    assert SECRET not in response.text
    deleted, patched, registered = response.json()["data"]
    assert [who(e)[3:] for e in (deleted, patched, registered)] == [
        (world.k.alpha_id, "DELETE", path, 200),
        (world.k.alpha_id, "PATCH", path, 200),
        (world.k.alpha_id, "POST", servers, 200),
    ]
    assert registered["request"] == {**body, "headers": "[redacted]"}
    assert registered["after"]["id"] == made["id"]
    assert patched["before"]["server_description"] != "The wiki."
    assert patched["after"]["server_description"] == "The wiki."
    assert deleted["before"]["id"] == made["id"] and deleted["request"] is None
    assert deleted["after"] is None  # a DELETE has no object after


async def test_refused_actions_are_entries_with_their_status(world: World) -> None:
    k = world.k
    alpha, alpha_key = f"/admin/v1/tenants/{k.alpha_id}", f"/admin/v1/keys/{k.alpha_admin_id}"
    error_of(await world.call(k.beta_admin, "PATCH", alpha, {"rpm_limit": 1}), 403)
    error_of(await world.call(k.beta_admin, "POST", f"{alpha_key}/revoke"), 404)
    error_of(await world.call(k.alpha_admin, "PATCH", alpha, {"rpm_limit": 10**6}), 403)
    error_of(
        await world.call(k.platform, "POST", f"{alpha}/credits", {"amount_micros": "lots"}), 400
    )

    credits, raise_own, revoke, foreign = await world.entries()
    beta_admin = await world.call(k.platform, "GET", f"/admin/v1/tenants/{k.beta_id}/keys")
    beta_admin_id = beta_admin.json()["data"][0]["id"]
    assert who(foreign) == (
        beta_admin_id, "tenant_admin", k.beta_id, k.alpha_id, "PATCH", alpha, 403,
    )  # fmt: skip
    assert foreign["request"] == {"rpm_limit": 1}
    assert foreign["before"] is foreign["after"] is None  # it could not see alpha
    # Which tenant a refused key action was about: the key is not the caller's to see.
    assert who(revoke)[:3] == (beta_admin_id, "tenant_admin", k.beta_id)
    assert who(revoke)[4:] == ("POST", f"{alpha_key}/revoke", 404)
    assert who(raise_own)[2:] == (k.alpha_id, k.alpha_id, "PATCH", alpha, 403)
    assert raise_own["before"]["id"] == k.alpha_id and raise_own["after"] is None
    assert who(credits)[3:] == (k.alpha_id, "POST", f"{alpha}/credits", 400)
    assert credits["request"] == {"amount_micros": "lots"} and credits["after"] is None
    alpha_now = await world.ok(k.platform, "GET", alpha)
    assert alpha_now["rpm_limit"] is None  # and nothing was done


async def test_a_body_that_is_not_json_is_an_entry_too(world: World) -> None:
    response = await world.http.post(
        "/admin/v1/tenants",
        content=b"{not json",
        headers={"authorization": f"Bearer {world.k.platform}"},
    )
    error_of(response, 400)
    assert [who(e)[4:] for e in await world.entries()] == [("POST", "/admin/v1/tenants", 400)]


async def test_a_tenant_admin_does_not_learn_who_in_another_tenant_tried(world: World) -> None:
    """Beta's admin is told alpha does not exist (404) or may not be changed (403); alpha's
    admin, reading its log, learns neither beta's id nor its admin key's id nor its address."""
    k = world.k
    alpha = f"/admin/v1/tenants/{k.alpha_id}"
    error_of(await world.call(k.beta_admin, "POST", f"{alpha}/keys", {"name": "in"}), 404)
    error_of(await world.call(k.beta_admin, "PATCH", alpha, {"rpm_limit": 1}), 403)
    beta_keys = await world.ok(k.platform, "GET", f"/admin/v1/tenants/{k.beta_id}/keys")
    beta_admin_id = beta_keys["data"][0]["id"]

    seen = await world.call(k.alpha_admin, "GET", AUDIT)
    assert seen.status_code == 200
    assert k.beta_id not in seen.text
    assert beta_admin_id not in seen.text


async def test_creating_a_tenant_is_an_entry_about_that_tenant(world: World) -> None:
    gamma = await world.ok(world.k.platform, "POST", "/admin/v1/tenants", {"name": "gamma"})
    entries = await world.entries(tenant_id=gamma["id"])
    assert [(e["tenant_id"], e["path"]) for e in entries] == [(gamma["id"], "/admin/v1/tenants")]


async def test_a_tenant_admin_reads_only_its_own_tenants_entries(world: World) -> None:
    k = world.k
    alpha, beta = f"/admin/v1/tenants/{k.alpha_id}", f"/admin/v1/tenants/{k.beta_id}"
    await world.ok(k.platform, "PATCH", alpha, {"rpm_limit": 5})
    await world.ok(k.platform, "PATCH", beta, {"rpm_limit": 6})
    await world.ok(k.alpha_admin, "POST", f"{alpha}/keys", {"name": "a"})
    await world.ok(k.beta_admin, "POST", f"{beta}/keys", {"name": "b"})
    await world.ok(
        k.platform, "POST", "/admin/v1/prices", {"model": "m", "output_micros_per_mtok": 1}
    )

    mine = await world.call(k.alpha_admin, "GET", AUDIT)
    own, platform = mine.json()["data"]
    assert [(e["method"], e["path"]) for e in (own, platform)] == [
        ("POST", f"{alpha}/keys"),
        ("PATCH", alpha),
    ]
    assert k.beta_id not in mine.text and "/admin/v1/prices" not in mine.text
    assert who(own)[:3] == (k.alpha_admin_id, "tenant_admin", k.alpha_id)
    assert own["address"] == "127.0.0.1"
    # The platform acted; with which key and from where is the operators' business.
    assert who(platform)[:3] == (None, "platform_admin", None) and platform["address"] is None
    assert world.platform_id not in mine.text and world.admin_tenant_id not in mine.text
    assert await world.entries(k.alpha_admin, tenant_id=k.alpha_id) == mine.json()["data"]
    error_of(await world.call(k.alpha_admin, "GET", AUDIT, tenant_id=k.beta_id), 404)
    error_of(await world.call(k.alpha_inference, "GET", AUDIT), 403)

    theirs = await world.entries(tenant_id=k.beta_id)  # the platform admin sees every actor
    assert theirs[1]["actor_key_id"] == world.platform_id
    assert [(e["method"], e["path"]) for e in theirs] == [("POST", f"{beta}/keys"), ("PATCH", beta)]
    assert len(await world.entries()) == 5


async def test_pages_times_and_bad_queries(world: World) -> None:
    k = world.k
    start = datetime.now(UTC) - timedelta(seconds=1)
    for n in range(3):
        await world.ok(k.platform, "PATCH", f"/admin/v1/tenants/{k.alpha_id}", {"rpm_limit": n})
    first = await world.ok_list(k.platform, limit=2)
    assert [e["seq"] for e in first["data"]] == [3, 2] and first["has_more"]
    rest = await world.ok_list(k.platform, limit=2, before_seq=2)
    assert [e["seq"] for e in rest["data"]] == [1] and not rest["has_more"]
    assert not (await world.ok_list(k.platform, limit=3))["has_more"]  # exactly all of them
    assert len(await world.entries(since=start.isoformat())) == 3
    assert await world.entries(since=(start + timedelta(days=1)).isoformat()) == []

    for query, param in [
        ({"limit": "many"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"before_seq": "last"}, "before_seq"),
        ({"before_seq": str(2**70)}, "before_seq"),  # found by the fuzz: was a 500
        ({"before_seq": "-1"}, "before_seq"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-01-01T00:00:00"}, "since"),  # no time zone
    ]:
        error = error_of(await world.call(k.platform, "GET", AUDIT, **query), 400)
        assert (error["param"], error["type"]) == (param, "invalid_request_error"), query


async def test_only_a_platform_admin_verifies_the_chain(world: World) -> None:
    k = world.k
    alpha = f"/admin/v1/tenants/{k.alpha_id}"
    for n in range(3):
        await world.ok(k.platform, "PATCH", alpha, {"rpm_limit": n})
    verify = f"{AUDIT}/verify"
    assert await world.ok(k.platform, "GET", verify) == {
        "object": "audit.verification",
        "entries": 3,
        "intact": True,
        "first_broken_seq": None,
    }
    assert (
        error_of(await world.call(k.alpha_admin, "GET", verify), 403)["code"] == "permission_denied"
    )
    error_of(await world.call(k.alpha_inference, "GET", verify), 403)

    with world.db.session() as session:  # someone with the database's password
        session.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(status=500))
    broken = await world.ok(k.platform, "GET", verify)
    assert (broken["entries"], broken["intact"], broken["first_broken_seq"]) == (1, False, 2)
