"""Failed authentication throttled through the gateway: an address or key prefix that keeps
failing gets OpenAI's 429 with Retry-After (before any lookup), while keys the gateway knows
to be valid pass, other clients are untouched, and it lifts once the minute has passed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway.conftest import error_of, two_tenants
from tokenmill.clock import ManualClock
from tokenmill.gateway.app import build_app
from tokenmill.gateway.compose import build_gateway
from tokenmill.gateway.routing import Router
from tokenmill.settings import Settings
from tokenmill.store.db import Database

LIMIT = 5
Client = Callable[[str], httpx.AsyncClient]


@asynccontextmanager
async def gateway(
    database: Database, clock: ManualClock, tmp_path: Path, limit: int = LIMIT
) -> AsyncIterator[Client]:
    settings = Settings(data_dir=tmp_path, auth_failures_per_minute=limit)
    built = build_gateway(settings, database, clock, Router(), admission=False, journal=False)
    app = build_app(built.services)
    opened: list[httpx.AsyncClient] = []

    def client(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        opened.append(httpx.AsyncClient(transport=transport, base_url="http://gw"))
        return opened[-1]

    try:
        yield client
    finally:
        for http in opened:
            await http.aclose()
        built.close()


async def models(http: httpx.AsyncClient, secret: str | None) -> httpx.Response:
    headers = {} if secret is None else {"authorization": f"Bearer {secret}"}
    return await http.get("/v1/models", headers=headers)


async def test_an_address_that_keeps_failing_is_refused_and_valid_keys_still_pass(
    database: Database, tmp_path: Path
) -> None:
    clock = ManualClock()
    alpha, beta, _ = two_tenants(database, clock)
    async with gateway(database, clock, tmp_path) as client:
        guesser, neighbour = client("203.0.113.7"), client("198.51.100.2")
        assert (await models(guesser, alpha)).status_code == 200  # alpha's key, now known
        for n in range(LIMIT - 1):
            error_of(await models(guesser, f"tm-wrong-guess-{n:04d}x"), 401)
        error_of(await models(guesser, None), 401)  # no key at all is a failure too
        refused = error_of(await models(guesser, "tm-wrong-guess-last"), 429)
        assert refused["code"] == "too_many_auth_failures" and refused["type"] == "rate_limit_error"
        limited = await models(guesser, "tm-wrong-guess-again")
        assert 1 <= int(limited.headers["retry-after"]) <= 61
        assert (await models(guesser, alpha)).status_code == 200  # a known valid key passes
        # a valid key this gateway has not seen yet waits with the address
        error_of(await models(guesser, beta), 429)
        error_of(await models(neighbour, "tm-another-wrong-one"), 401)  # others: untouched
        assert (await guesser.get("/health")).status_code == 200  # nothing to authenticate
        clock.advance(120.0)
        error_of(await models(guesser, "tm-wrong-guess-later"), 401)  # the minute passed
        assert (await models(guesser, beta)).status_code == 200
        counted = {
            sample.labels["code"]: sample.value
            for family in text_string_to_metric_families((await guesser.get("/metrics")).text)
            if family.name == "tokenmill_gateway_auth_failures"
            for sample in family.samples
            if sample.name.endswith("_total")
        }
        assert counted == {"invalid_api_key": LIMIT + 2, "too_many_auth_failures": 3}


async def test_a_key_prefix_that_keeps_failing_is_refused_from_any_address(
    database: Database, tmp_path: Path
) -> None:
    clock = ManualClock()
    alpha, _, _ = two_tenants(database, clock)
    stem = alpha[:12]
    async with gateway(database, clock, tmp_path) as client:
        assert (await models(client("192.0.2.1"), alpha)).status_code == 200
        for n in range(LIMIT):
            error_of(await models(client(f"192.0.2.{10 + n}"), f"{stem}guess{n}"), 401)
        error_of(await models(client("192.0.2.99"), f"{stem}guess-more"), 429)
        assert (await models(client("192.0.2.98"), alpha)).status_code == 200  # the real key
        error_of(await models(client("192.0.2.97"), "tm-unrelatedguess"), 401)


async def test_admin_failures_count_and_a_limit_of_zero_turns_it_off(
    database: Database, tmp_path: Path
) -> None:
    clock = ManualClock()
    async with gateway(database, clock, tmp_path) as client:
        http = client("203.0.113.9")
        for n in range(LIMIT):
            bearer = {"authorization": f"Bearer tm-a{n}"}
            error_of(await http.get("/admin/v1/tenants", headers=bearer), 401)
        error_of(await models(http, "tm-wrong"), 429)
    async with gateway(database, clock, tmp_path, limit=0) as client:
        http = client("203.0.113.9")
        for n in range(3 * LIMIT):
            error_of(await models(http, f"tm-wrong-{n}"), 401)
