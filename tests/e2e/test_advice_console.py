"""The console's Advice page in headless Chromium against a live ``tokenmill serve``: a tenant's
few chats with the bundled model replayed into advice that a platform admin, picking the
tenant, computes (the recommendation and its reasons, monthly cost against volume with both
bills and the tenant's volume marked, the months' serverless spend as the API and the ledger
give it) and finds again in the fleet summary; the tenant's own admin sees only its tenant, no
fleet, a model skipped for an unknown cost model and that model's error."""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import expect

from tests.e2e.conftest import Platform
from tests.e2e.test_console import (
    ARTIFACTS,
    CHAT_MODEL,
    WAIT_MS,
    _admin_get,
    _open,
    _statuses,
    _visit,
)
from tests.e2e.test_console import browser as browser  # the fixture, shared
from tokenmill.billing.pricing import parse_micros

RUN_MS = 180_000  # the first chat may wait for the chat model's replica to start
BILLING_SYNC_SECONDS = 1.0  # the default: how soon a gateway sees a top-up
# The window: short, so the replays take a moment
DAYS = "0.05"
QUESTIONS = ("Say hi.", "Name a colour.", "Count to three.", "Say bye.")
VERDICTS = {"serverless": "Serverless", "dedicated": "Dedicated", "scheduled": "Scheduled"}
WATCH_STATES = """(id) => {
    const el = document.getElementById(id);
    const states = (window.adviceStates = []);
    window.adviceWatch?.disconnect();
    window.adviceWatch = new MutationObserver(() =>
        states.push(`${el.dataset.state}: ${el.textContent.trim()}`));
    window.adviceWatch.observe(el, {attributes: true, childList: true});
}"""
"""Records each state of an outcome panel, the busy one however short."""


def _tenant(platform: Platform, name: str) -> tuple[str, str]:
    """A new tenant with credit the gateway has seen, and a tenant-admin key of it."""
    with platform.http() as http:
        tenant = http.post("/admin/v1/tenants", json={"name": name}).json()
        made = http.post(
            f"/admin/v1/tenants/{tenant['id']}/keys",
            json={"name": f"{name}-admin", "role": "tenant_admin"},
        ).json()
        credit = {"amount_micros": 1_000_000, "idempotency_key": name}
        assert http.post(f"/admin/v1/tenants/{tenant['id']}/credits", json=credit).is_success
    time.sleep(BILLING_SYNC_SECONDS * 1.5)
    return str(tenant["id"]), str(made["secret"])


def _chat(platform: Platform, key: str, questions: tuple[str, ...]) -> None:
    """Short chats with the bundled model, each waited for until its usage is recorded."""
    client = platform.client(key).with_options(timeout=RUN_MS / 1000)
    for question in questions:
        raw = client.chat.completions.with_raw_response.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": question}], max_tokens=8
        )
        platform.usage(raw.headers["x-request-id"])


def _load(page: Any, button: str, panel: str, busy: str) -> tuple[Any, Any]:
    """Clicks ``button``; the ``panel`` once the advice API answered and it is no longer busy
    (it said ``busy`` meanwhile, however short), and the API's answer."""
    page.evaluate(WATCH_STATES, panel)
    with page.expect_response(lambda r: "/advice?" in r.url, timeout=RUN_MS) as answered:
        page.click(button)
    result = page.locator(f"#{panel}")
    expect(result).not_to_have_attribute("data-state", "busy", timeout=WAIT_MS)
    states = page.evaluate("window.adviceStates")
    assert states[0] == f"busy: {busy}", states
    return result, answered.value.json()


def _compute(page: Any) -> tuple[Any, Any]:
    return _load(page, "#advice-compute", "advice-result", "Replaying your traffic…")


def test_a_platform_admin_computes_a_tenants_advice_and_sees_it_in_the_fleet(
    browser: Any, platform: Platform
) -> None:
    tenant_id, key = _tenant(platform, "advice-console")
    _chat(platform, key, QUESTIONS)
    page = _open(browser, platform, platform.admin_key)
    _visit(page, "advice", "#advice-form")
    page.select_option("#tenant", tenant_id)
    expect(page.locator("#page-advice .page-head")).to_contain_text(
        f"tenant {tenant_id}", timeout=WAIT_MS
    )
    assert page.input_value("#advice-days") == "30"
    page.fill("#advice-days", DAYS)
    result, answer = _compute(page)
    expect(result).to_have_attribute("data-state", "done")
    assert answer["object"] == "list" and answer["skipped"] == []
    (advice,) = answer["data"]  # every model used: the one
    models = page.eval_on_selector_all("#advice-model option", "os => os.map(o => o.value)")
    assert models == ["", CHAT_MODEL]
    expect(page.locator(f"#advice-models tr[data-model='{CHAT_MODEL}']")).to_have_count(1)

    # The recommendation and its reasons, as the API gave them.
    verdict = page.locator("#advice-recommendation")
    assert verdict.get_attribute("data-recommendation") == advice["recommendation"]
    assert verdict.get_attribute("data-model") == CHAT_MODEL
    assert page.inner_text("#advice-verdict") == VERDICTS[advice["recommendation"]]
    reasons = page.locator("#advice-reasons li").all_inner_texts()
    assert reasons == advice["reasons"] and reasons

    # Monthly cost against volume: both bills over the curve's points, the tenant's volume
    # marked where its own point is, the break-even only when there is one.
    curve = page.locator("#advice-curve svg")
    for name, field in (("serverless", "serverless_monthly_micros"),
                        ("dedicated", "dedicated_monthly_micros")):  # fmt: skip
        expect(curve.locator(f"polyline[data-series={name}]")).to_have_count(1)
        values = curve.locator(f"circle[data-series={name}]").evaluate_all(
            "cs => cs.map(c => Number(c.dataset.value))"
        )
        assert values == [p[field] for p in advice["curve"]], name
    volume = curve.locator("[data-marker=volume]")
    expect(volume).to_have_text("your volume")
    x = volume.get_attribute("data-x")
    assert float(x or 0) == advice["traffic"]["requests"] / advice["window"]["days"]
    own = curve.locator(f"circle[data-series=serverless][data-x='{x}']")
    assert own.get_attribute("cx") == volume.locator("line").get_attribute("x1")
    crossing = curve.locator("[data-marker=break-even]")
    if advice["break_even"]["factor"] is None:
        expect(crossing).to_have_count(0)
    else:
        expect(crossing).to_contain_text("break-even")

    # The months: the serverless spend is the API's, and the ledger's for the tenant.
    months = advice["months"]
    for month in months:
        row = page.locator(f"#advice-months tr[data-month='{month['month']}']")
        requests, serverless = row.locator("td").all_inner_texts()[1:3]
        assert int(requests) == month["requests"]
        assert parse_micros(serverless.removeprefix("$")) == month["serverless_micros"]
    usage = _admin_get(
        platform, platform.admin_key, f"/admin/v1/tenants/{tenant_id}/usage?group_by=model"
    )
    (ledger,) = [r for r in usage["data"] if r["group"] == CHAT_MODEL]
    assert sum(m["serverless_micros"] for m in months) == ledger["cost_micros"] > 0
    assert sum(m["requests"] for m in months) == len(QUESTIONS)
    hours = page.locator("#advice-hours rect").evaluate_all(
        "rs => rs.map(r => Number(r.dataset.value))"
    )
    assert len(hours) == 24
    assert sum(hours) == sum(advice["dedicated"]["scheduled_accelerators_by_hour"])
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "advice.png"), full_page=True)

    # The fleet summary has the tenant's line, its serverless bill the advice's.
    fleet, summary = _load(
        page, "#advice-fleet-load", "advice-fleet-result", "Replaying every tenant's traffic…"
    )
    expect(fleet).to_have_attribute("data-state", "done")
    (mine,) = [r for r in summary["data"] if r["tenant_id"] == tenant_id]
    line = fleet.locator(f"tr[data-tenant-id='{tenant_id}'][data-model='{CHAT_MODEL}']")
    cells = line.locator("td").all_inner_texts()
    assert cells[2] == mine["recommendation"]
    assert parse_micros(cells[4].removeprefix("$")) == mine["serverless_monthly_micros"]
    assert parse_micros(cells[5].removeprefix("$")) == mine["dedicated_monthly_micros"]
    (here,) = [p for p in advice["curve"] if p["factor"] == 1.0]
    assert mine["serverless_monthly_micros"] == here["serverless_monthly_micros"]
    expect(page.locator("#advice-fleet-totals .stat")).to_have_count(5)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "advice-fleet.png"), full_page=True)
    assert page.console_errors == [], page.console_errors


def test_a_tenant_admin_sees_only_its_own_advice_and_no_fleet(
    browser: Any, platform: Platform
) -> None:
    admin_tenant = _admin_get(platform, platform.admin_key, "/admin/v1/me")["tenant_id"]
    tenant_id, key = _tenant(platform, "advice-own")
    _chat(platform, key, QUESTIONS[:1])
    page = _open(browser, platform, key)
    _visit(page, "advice", "#advice-form", shot="advice-tenant")
    options = page.eval_on_selector_all("#tenant option", "os => os.map(o => o.value)")
    assert options == [tenant_id] and page.is_disabled("#tenant")
    expect(page.locator("#page-advice .page-head")).to_contain_text(f"tenant {tenant_id}")
    expect(page.locator("#advice-fleet")).to_have_count(0)
    statuses = _statuses(page, ["/admin/v1/advice", f"/admin/v1/tenants/{admin_tenant}/advice"])
    assert statuses == [403, 404]  # the fleet is refused; another tenant does not exist

    # An unknown cost model: every model used is skipped with the reason; asked for the model
    # alone, the API's error is shown.
    page.fill("#advice-days", DAYS)
    page.fill("#advice-cost-model", "bogus")
    result, answer = _compute(page)
    expect(result).to_have_attribute("data-state", "done")
    assert answer["data"] == [] and [s["model"] for s in answer["skipped"]] == [CHAT_MODEL]
    skipped = page.locator(f"#advice-models .skipped[data-model='{CHAT_MODEL}']")
    expect(skipped).to_contain_text("a cost model is 'cpu' or ARCHITECTURE@ACCELERATOR")
    expect(page.locator("#advice-models tbody tr")).to_have_count(0)
    page.select_option("#advice-model", CHAT_MODEL)
    result, answer = _compute(page)
    expect(result).to_have_attribute("data-state", "failed")
    expect(result.locator(".notice.error")).to_have_text(answer["error"]["message"])
    assert "not 'bogus'" in answer["error"]["message"]
    page.screenshot(path=str(ARTIFACTS / "advice-tenant-error.png"), full_page=True)
    assert page.console_errors == [], page.console_errors
