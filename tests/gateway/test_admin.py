"""The admin API: what each role may do, tenant isolation, and statements that add up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.billing.test_usage import usage_event
from tests.gateway.conftest import admin_keys
from tokenmill.billing.ledger import EntryKind, LedgerRepository
from tokenmill.billing.usage import UsageRepository
from tokenmill.clock import SystemClock
from tokenmill.gateway.app import build_app
from tokenmill.gateway.compose import build_gateway
from tokenmill.gateway.routing import Router
from tokenmill.settings import Settings
from tokenmill.store.db import Database


@dataclass
class World:
    http: httpx.AsyncClient
    db: Database
    platform: str
    alpha_id: str
    alpha_admin: str
    alpha_inference: str
    alpha_key_id: str
    beta_id: str
    beta_admin: str

    async def call(self, key: str, method: str, path: str, body: object = None) -> httpx.Response:
        return await self.http.request(
            method, path, json=body, headers={"authorization": f"Bearer {key}"}
        )


@pytest.fixture
async def world(database: Database, tmp_path: Path) -> AsyncIterator[World]:
    clock = SystemClock()
    k = admin_keys(database, clock)
    gateway = build_gateway(
        Settings(data_dir=tmp_path), database, clock, Router(), admission=False, journal=False
    )
    transport = httpx.ASGITransport(app=build_app(gateway.services))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        yield World(
            http,
            database,
            k.platform,
            k.alpha_id,
            k.alpha_admin,
            k.alpha_inference,
            k.alpha_admin_id,
            k.beta_id,
            k.beta_admin,
        )
    gateway.close()


def routes(w: World) -> list[tuple[str, str, object]]:
    """Every admin route, aimed at tenant alpha's things."""
    t, k = w.alpha_id, w.alpha_key_id
    return [
        ("GET", f"/admin/v1/tenants/{t}", None),
        ("PATCH", f"/admin/v1/tenants/{t}", {"rpm_limit": 1}),
        ("POST", "/admin/v1/tenants", {"name": "gamma"}),
        ("GET", f"/admin/v1/tenants/{t}/keys", None),
        ("POST", f"/admin/v1/tenants/{t}/keys", {"name": "intruder"}),
        ("GET", f"/admin/v1/keys/{k}", None),
        ("PATCH", f"/admin/v1/keys/{k}", {"rpm_limit": 1}),
        ("POST", f"/admin/v1/keys/{k}/revoke", None),
        ("POST", "/admin/v1/prices", {"model": "m", "output_micros_per_mtok": 1}),
        ("GET", f"/admin/v1/tenants/{t}/credits", None),
        ("POST", f"/admin/v1/tenants/{t}/credits", {"amount_micros": 5}),
        ("GET", f"/admin/v1/tenants/{t}/usage?group_by=day", None),
        ("GET", f"/admin/v1/tenants/{t}/statements/2026-01", None),
        ("GET", f"/admin/v1/tenants/{t}/statements/2026-01.csv", None),
    ]


async def test_a_foreign_tenant_admin_is_refused_everything_and_learns_nothing(
    world: World,
) -> None:
    for method, path, body in routes(world):
        response = await world.call(world.beta_admin, method, path, body)
        assert response.status_code in (403, 404), (method, path, response.text)
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
        assert "alpha" not in response.text, (method, path)
    listed = (await world.call(world.beta_admin, "GET", "/admin/v1/tenants")).json()["data"]
    assert [t["id"] for t in listed] == [world.beta_id]
    # Nothing changed: alpha's key still works and nobody got a key in alpha.
    keys = (
        await world.call(world.platform, "GET", f"/admin/v1/tenants/{world.alpha_id}/keys")
    ).json()["data"]
    assert {k["name"] for k in keys} == {"alpha-admin", "alpha-app"}
    assert all(k["revoked_at"] is None and k["rpm_limit"] is None for k in keys)


async def test_an_inference_key_gets_403_on_every_admin_route(world: World) -> None:
    for method, path, body in [*routes(world), ("GET", "/admin/v1/tenants", None)]:
        response = await world.call(world.alpha_inference, method, path, body)
        assert response.status_code == 403, (method, path)
        assert response.json()["error"]["code"] == "permission_denied"


async def test_a_tenant_admin_manages_its_own_keys_but_not_its_terms(world: World) -> None:
    base = f"/admin/v1/tenants/{world.alpha_id}"
    created = await world.call(
        world.alpha_admin, "POST", f"{base}/keys", {"name": "ci", "rpm_limit": 10}
    )
    assert created.status_code == 200
    key = created.json()
    assert key["secret"].startswith("tm-") and key["rpm_limit"] == 10
    escalate = {"name": "root", "role": "platform_admin"}
    assert (
        await world.call(world.alpha_admin, "POST", f"{base}/keys", escalate)
    ).status_code == 403
    assert (
        await world.call(world.alpha_admin, "PATCH", base, {"rpm_limit": 10**6})
    ).status_code == 403
    revoked = await world.call(world.alpha_admin, "POST", f"/admin/v1/keys/{key['id']}/revoke")
    assert revoked.json()["revoked_at"] is not None


async def test_prices_credits_usage_and_a_statement_that_equals_the_ledger(
    world: World,
) -> None:
    p = world.platform
    price = {"model": "m", "input_micros_per_mtok": 1_000_000, "output_micros_per_mtok": 2_000_000}
    assert (await world.call(p, "POST", "/admin/v1/prices", price)).status_code == 200
    listed = (await world.call(world.alpha_admin, "GET", "/admin/v1/prices")).json()["data"]
    assert listed[0]["output_micros_per_mtok"] == 2_000_000
    base = f"/admin/v1/tenants/{world.alpha_id}"
    topup = {"amount_micros": 5_000_000, "idempotency_key": "wire-42"}
    assert (await world.call(p, "POST", f"{base}/credits", topup)).status_code == 200
    assert (await world.call(p, "POST", f"{base}/credits", topup)).status_code == 200  # same key
    month = datetime.now(UTC).strftime("%Y-%m")
    now = datetime.now(UTC)
    UsageRepository(world.db).insert_many(
        [
            usage_event(
                f"r{i}",
                tenant_id=world.alpha_id,
                model=m,
                cost_micros=c,
                created_at=at,
                service_tier=tier,
            )
            for i, (m, c, at, tier) in enumerate(
                [
                    ("m", 123, now, "priority"),
                    ("m", 77, now, "default"),
                    ("n", 5, now, "flex"),
                    ("m", 999, now - timedelta(days=40), "default"),
                ]
            )
        ]
    )
    credits = (await world.call(world.alpha_admin, "GET", f"{base}/credits")).json()
    assert credits["balance_micros"] == 5_000_000 - 123 - 77 - 5 - 999
    by_model = (await world.call(world.alpha_admin, "GET", f"{base}/usage?group_by=model")).json()
    assert {row["group"]: row["cost_micros"] for row in by_model["data"]} == {"m": 1199, "n": 5}
    by_day = (await world.call(world.alpha_admin, "GET", f"{base}/usage?group_by=day")).json()
    assert len(by_day["data"]) == 2
    by_tier = await world.call(world.alpha_admin, "GET", f"{base}/usage?group_by=service_tier")
    assert {row["group"]: row["cost_micros"] for row in by_tier.json()["data"]} == {
        "priority": 123,
        "default": 1076,
        "flex": 5,
    }
    levels = (await world.call(world.alpha_admin, "GET", f"{base}/service_levels")).json()
    assert {(row["model"], row["service_tier"], row["requests"]) for row in levels["data"]} == {
        ("m", "priority", 1),
        ("m", "default", 1),
        ("n", "flex", 1),
    }  # the 40-day-old request is outside the default day
    assert levels["data"][0]["ttft_p50"] == 0.125
    everyone = await world.call(world.alpha_admin, "GET", "/admin/v1/service_levels")
    assert everyone.status_code == 403
    assert (await world.call(p, "GET", "/admin/v1/service_levels")).status_code == 200

    statement = (await world.call(world.alpha_admin, "GET", f"{base}/statements/{month}")).json()
    debits = LedgerRepository(world.db, SystemClock()).entries(
        world.alpha_id,
        kinds=[EntryKind.USAGE],
        since=now.replace(day=1, hour=0, minute=0, second=0, microsecond=0),
    )
    assert statement["total_micros"] == -sum(d.amount_micros for d in debits) == 205
    assert sum(line["cost_micros"] for line in statement["lines"]) == 205
    csv_text = (await world.call(world.alpha_admin, "GET", f"{base}/statements/{month}.csv")).text
    assert csv_text.splitlines()[-1] == "total,,,,,0.000205"


async def test_a_credits_limit_that_is_not_a_count_is_a_400(world: World) -> None:
    """Found by the fuzz (tests/gateway/test_fuzz.py): ``?limit=false`` was a 500."""
    base = f"/admin/v1/tenants/{world.alpha_id}/credits"
    for limit in ("false", "0", "-1", "1001"):
        refused = await world.call(world.alpha_admin, "GET", f"{base}?limit={limit}")
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["param"] == "limit"
    assert (await world.call(world.alpha_admin, "GET", f"{base}?limit=1")).status_code == 200


async def test_credit_fields_of_the_wrong_type_are_a_400_naming_them(world: World) -> None:
    """Found by the fuzz: a list as the note or key, a number as an adjustment's note, and
    an amount no database column holds were 500s; an unknown kind was taken as a top-up."""
    path = f"/admin/v1/tenants/{world.alpha_id}/credits"
    for body, param in [
        ({"amount_micros": 5, "note": ["x"]}, "note"),
        ({"amount_micros": 5, "kind": "adjustment", "note": 1.5}, "note"),
        ({"amount_micros": 5, "idempotency_key": ["k"]}, "idempotency_key"),
        ({"amount_micros": 5, "kind": "gift"}, "kind"),
        ({"amount_micros": 2**70}, "amount_micros"),
    ]:
        refused = await world.call(world.platform, "POST", path, body)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["param"] == param
    credits = (await world.call(world.platform, "GET", path)).json()
    assert credits["balance_micros"] == 0


async def test_a_value_the_database_refuses_is_a_400(world: World) -> None:
    """PostgreSQL cannot store NUL in text (SQLite can): a 400, not a 500."""
    reply = await world.call(world.alpha_admin, "POST", "/v1/vector_stores", {"name": "x\u0000"})
    if world.db.dialect == "postgresql":
        assert reply.status_code == 400, reply.text
        assert reply.json()["error"]["code"] == "invalid_value"
    else:
        assert reply.status_code == 200, reply.text
