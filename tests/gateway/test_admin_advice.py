"""The cost advisor's admin routes: a tenant admin reads its own tenant's advice and nobody
else's, the fleet-wide summary is a platform admin's, and a bad query is a 400 naming it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest

from tests.advice.conftest import END, MODEL, START, every, price_hours, requests, write
from tests.gateway.conftest import error_of
from tests.gateway.test_admin import World, world  # noqa: F401 (the fixture)
from tokenmill.clock import SystemClock

OTHER = "llama-8b"  # no cost model known for it


def advice_path(tenant_id: str | None = None, **query: Any) -> str:
    base = f"/admin/v1/tenants/{tenant_id}/advice" if tenant_id else "/admin/v1/advice"
    window = {"since": START.isoformat(), "until": END.isoformat()}
    return f"{base}?{urlencode(window | query)}"


@pytest.fixture
def used(world: World) -> World:  # noqa: F811
    """Alpha and beta sent requests to the CPU model in the window, and alpha to OTHER."""
    price_hours(world.db, SystemClock(), MODEL, 10**9)
    write(world.db, requests(world.alpha_id, every(START, 2, 4), cost_micros=2_000))
    write(world.db, requests(world.alpha_id, every(START, 1, 2), model=OTHER, name="o"))
    write(world.db, requests(world.beta_id, every(START, 2, 2), cost_micros=3_000))
    return world


async def test_a_tenant_admin_reads_its_own_advice(used: World) -> None:
    response = await used.call(used.alpha_admin, "GET", advice_path(used.alpha_id, model=MODEL))

    assert response.status_code == 200, response.text
    advice = response.json()
    assert (advice["object"], advice["tenant_id"], advice["model"]) == (
        "advice",
        used.alpha_id,
        MODEL,
    )
    assert advice["serverless_micros"] == 8 * 2_000
    assert [(m["month"], m["requests"]) for m in advice["months"]] == [
        ("2026-01", 4),
        ("2026-02", 4),
    ]
    assert advice["recommendation"] == "serverless"
    assert advice["window"]["since"] == START.isoformat()


async def test_another_tenant_s_advice_is_a_404_like_its_other_routes(used: World) -> None:
    alpha = used.alpha_id
    for path in (advice_path(alpha, model=MODEL), advice_path(alpha)):
        refused = await used.call(used.beta_admin, "GET", path)
        credits = await used.call(used.beta_admin, "GET", f"/admin/v1/tenants/{alpha}/credits")

        assert error_of(refused, 404) == error_of(credits, 404)
        assert "alpha" not in refused.text and MODEL not in refused.text
        inference = await used.call(used.alpha_inference, "GET", path)
        assert error_of(inference, 403)["code"] == "permission_denied"
    missing = await used.call(used.platform, "GET", advice_path("ten_missing"))
    assert error_of(missing, 404)["param"] == "tenant_id"


async def test_without_a_model_every_model_is_advised_or_skipped(used: World) -> None:
    response = await used.call(used.alpha_admin, "GET", advice_path(used.alpha_id))

    assert response.status_code == 200, response.text
    listed = response.json()
    assert listed["object"] == "list"
    assert [(a["tenant_id"], a["model"]) for a in listed["data"]] == [(used.alpha_id, MODEL)]
    [skipped] = listed["skipped"]
    assert (skipped["tenant_id"], skipped["model"]) == (used.alpha_id, OTHER)
    assert "cost_model" in skipped["reason"]


async def test_the_fleet_summary_is_a_platform_admin_s(used: World) -> None:
    error = error_of(await used.call(used.alpha_admin, "GET", advice_path()), 403)
    assert error["code"] == "permission_denied"

    response = await used.call(used.platform, "GET", advice_path())

    assert response.status_code == 200, response.text
    summary = response.json()
    assert summary["object"] == "advice.summary"
    lines = {(line["tenant_name"], line["model"]): line for line in summary["data"]}
    assert set(lines) == {("alpha", MODEL), ("beta", MODEL)}
    assert lines["beta", MODEL]["tenant_id"] == used.beta_id
    assert lines["alpha", MODEL]["requests_per_day"] == 8 * 12
    assert all(line["recommendation"] == "serverless" for line in summary["data"])
    assert [(s["tenant_id"], s["model"]) for s in summary["skipped"]] == [(used.alpha_id, OTHER)]
    assert summary["dedicated"] == {
        "tenants": [],
        "accelerators": 0,
        "utilisation": None,
        "serverless_monthly_micros_moved": 0,
        "shared_tokens_share_moved": 0.0,
    }


async def test_a_bad_window_is_a_400_naming_it(world: World) -> None:  # noqa: F811
    for query, param in [
        ({"days": "0"}, "days"),
        ({"days": "367"}, "days"),
        ({"days": "-3"}, "days"),
        ({"days": "a week"}, "days"),
        ({"days": "nan"}, "days"),
        ({"since": "2026-01-31T23:00:00"}, "since"),  # no time zone
        ({"until": "yesterday"}, "until"),
        ({"since": END.isoformat(), "until": START.isoformat()}, "since"),
        ({"since": "2024-01-01T00:00:00+00:00"}, "since"),  # over 366 days
    ]:
        for path in (advice_path(world.alpha_id, **query), advice_path(**query)):
            response = await world.call(world.platform, "GET", path)

            assert error_of(response, 400)["param"] == param, (path, response.text)


async def test_an_unknown_scaling_is_a_400_naming_it(used: World) -> None:
    path = advice_path(used.alpha_id, model=MODEL, scaling="people")
    error = error_of(await used.call(used.platform, "GET", path), 400)

    assert (error["param"], error["message"]) == ("scaling", "scaling is one of arrivals, users.")


async def test_a_model_without_a_cost_model_is_a_400_naming_cost_model(used: World) -> None:
    for query in ({"model": OTHER}, {"model": MODEL, "cost_model": "llama3.1-8b@TPU-v9"}):
        path = advice_path(used.alpha_id, **query)

        error = error_of(await used.call(used.alpha_admin, "GET", path), 400)

        assert (error["param"], error["type"]) == ("cost_model", "invalid_request_error")
    explicit = advice_path(used.alpha_id, model=OTHER, cost_model="llama3.1-8b@H100-80GB")
    priceless = error_of(await used.call(used.alpha_admin, "GET", explicit), 400)
    assert priceless["param"] == "cost_model" and "accelerator:H100-80GB" in priceless["message"]
