"""Service tiers through a live ``tokenmill serve`` and the official openai client: the tier
asked for (or the key's default) serves the request, is reported in the reply and recorded
with its usage; a tier the tenant may not use is a 403, an unknown one a 400."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest

from tests.e2e.conftest import Platform
from tests.e2e.test_console import WAIT_MS, _open, _visit
from tests.e2e.test_console import browser as browser  # the fixture, shared

MODEL = "smollm2-135m-instruct"
HELLO = [{"role": "user", "content": "Say hello."}]
BILLING_SYNC_SECONDS = 1.0


def _tiered_key(platform: Platform, name: str, **terms: Any) -> str:
    with platform.http() as http:
        tenant = http.post("/admin/v1/tenants", json={"name": name, **terms})
        assert tenant.status_code == 200, tenant.text
        tenant_id = tenant.json()["id"]
        made = http.post(f"/admin/v1/tenants/{tenant_id}/keys", json={"name": "app"})
        assert made.status_code == 200, made.text
        credit = {"amount_micros": 10_000_000, "idempotency_key": f"{name}-credit"}
        assert http.post(f"/admin/v1/tenants/{tenant_id}/credits", json=credit).is_success
    time.sleep(BILLING_SYNC_SECONDS * 1.5)  # the gateway sees the credit on its next sync
    return str(made.json()["secret"])


def test_the_tier_asked_for_serves_and_is_reported_and_recorded(platform: Platform) -> None:
    client = platform.client()
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL, messages=HELLO, max_tokens=4, service_tier="priority"
    )
    assert raw.parse().service_tier == "priority"
    assert platform.usage(raw.headers["x-request-id"]).service_tier == "priority"

    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=HELLO, max_tokens=4, stream=True, service_tier="flex"
        )
    )
    assert {chunk.service_tier for chunk in chunks} == {"flex"}

    plain = client.completions.create(model=MODEL, prompt="Hello", max_tokens=2)
    assert plain.model_extra is not None and plain.model_extra["service_tier"] == "default"

    with platform.http() as http:
        metrics = http.get("/metrics").text
    assert (
        'tokenmill_gateway_requests_total{endpoint="chat.completions",'
        f'model="{MODEL}",service_tier="priority",status="200"}}'
    ) in metrics


def test_auto_takes_the_tenants_default_and_other_tiers_are_refused(platform: Platform) -> None:
    key = _tiered_key(
        platform, "tier-flex-only", service_tier="flex", service_tiers=["flex", "default"]
    )
    client = platform.client(key)
    for asked in ("auto", None):
        extra = {"service_tier": asked} if asked else {}
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=HELLO, max_tokens=2, **extra
        )
        assert raw.parse().service_tier == "flex"
        assert platform.usage(raw.headers["x-request-id"]).service_tier == "flex"

    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.chat.completions.create(
            model=MODEL, messages=HELLO, max_tokens=2, service_tier="priority"
        )
    assert refused.value.code == "service_tier_not_allowed"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(
            model=MODEL,
            messages=HELLO,
            max_tokens=2,
            extra_body={"service_tier": "turbo"},
        )
    assert bad.value.param == "service_tier"


def test_the_console_shows_service_levels_per_model_and_tier(
    browser: Any, platform: Platform
) -> None:
    client = platform.client()
    for tier in ("priority", "flex"):
        list(
            client.chat.completions.create(
                model=MODEL, messages=HELLO, max_tokens=4, stream=True, service_tier=tier
            )
        )
    page = _open(browser, platform, platform.admin_key)
    _visit(page, "levels", "table.grid")
    row = page.wait_for_selector(
        f'#page-levels tr[data-tier="priority"][data-model="{MODEL}"]', timeout=WAIT_MS
    )
    cells = row.inner_text().split("\t")
    assert cells[:2] == [MODEL, "priority"] and int(cells[2]) >= 1
    assert cells[4].endswith(" s")  # a first-token time: it was streamed
    assert page.query_selector("#page-levels figure.chart") is not None
