"""The console under its strict Content-Security-Policy in headless Chromium against a live
``tokenmill serve``: ``/console/`` allows no inline script or style and no framing (and says
``X-Frame-Options: DENY``); a platform admin signs in and opens every page of the navigation,
and the pages of an App, a vector store and a batch made through the API, and the browser
reports no violation of the policy. An inline style and an inline script put in on purpose at
the end are refused and reported, so the watch is known to work."""

from __future__ import annotations

import json
from typing import Any

from playwright.sync_api import expect

from tests.e2e.conftest import Platform
from tests.e2e.test_console import ARTIFACTS, CHAT_MODEL, WAIT_MS
from tests.e2e.test_console import browser as browser  # the fixture, shared

WATCH = """window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => window.__violations.push(
    `${e.effectiveDirective} blocked ${e.blockedURI || "?"} at ${e.sourceFile}:${e.lineNumber} ` +
    `(${e.sample})`));"""
"""Runs before the console's own scripts in every document of the tab."""
VIOLATIONS = "window.__violations"
# What each page of the navigation shows once it has rendered (its last fetch answered).
READY = {
    "overview": "figure.chart",
    "models": "dl.card",
    "deployments": "table.grid",
    "keys": "tr[data-key-id]",
    "files": "tr[data-file-id]",
    "knowledge": "tr[data-store-id]",
    "batches": "tr[data-batch-id][data-status=completed]",
    "fine-tuning": "#ft-total:not(:empty)",
    "evals": "#evals-total:not(:empty)",
    "datasets": "#ds-total:not(:empty)",
    "usage": ".stats",
    "levels": "#levels section.panel",
    "playground": "#prompt",
    "responses": "#responses-total:not(:empty)",
    "mcp": "#mcp-total:not(:empty)",
    "apps": "tr[data-app-id]",
    "advice": "#advice-fleet",
    "audit": "#audit-entries tbody tr",
}
FAILED_LINE = {  # a batch line that fails at once: no model runs for it
    "custom_id": "csp",
    "method": "POST",
    "url": "/v1/chat/completions",
    "body": {"model": "no-such-model", "messages": [{"role": "user", "content": "Hi."}]},
}


def _objects(platform: Platform) -> dict[str, str]:
    """A tenant (an entry of the audit log); an App, a vector store and a finished batch (with
    a file) of the admin's tenant: their pages, and the rows of the lists, have something to
    show."""
    with platform.http() as http:
        assert http.post("/admin/v1/tenants", json={"name": "csp-tenant"}).is_success
        config = {"model": CHAT_MODEL, "instructions": "Help with {{product}}."}
        app = http.post("/v1/apps", json={"name": "CSP helper", "config": config}).json()
        store = http.post("/v1/vector_stores", json={"name": "csp-store"}).json()
        upload = ("csp.jsonl", json.dumps(FAILED_LINE) + "\n")
        made = http.post("/v1/files", files={"file": upload}, data={"purpose": "batch"}).json()
        batch = http.post(
            "/v1/batches",
            json={
                "input_file_id": made["id"],
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            },
        ).json()
    return {"app": app["id"], "store": store["id"], "batch": batch["id"]}


def _open_watched(browser: Any, platform: Platform) -> tuple[Any, dict[str, list[str]]]:
    """A tab watching for violations from its first document on, signed in as the platform
    admin; the strict headers of the console's page checked on the way."""
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    context.add_init_script(WATCH)
    page = context.new_page()
    seen: dict[str, list[str]] = {"csp": [], "errors": []}
    page.on("pageerror", lambda error: seen["errors"].append(str(error)))
    page.on(
        "console",
        lambda m: "Content Security Policy" in m.text and seen["csp"].append(m.text),
    )
    response = page.goto(f"{platform.base_url}/console/")
    assert response is not None and response.ok
    headers = response.headers
    policy = [d.strip() for d in headers["content-security-policy"].split(";")]
    for directive in ("script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"):
        assert directive in policy, policy
    assert "'unsafe-inline'" not in headers["content-security-policy"]
    assert "'unsafe-eval'" not in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    page.fill("#signin-key", platform.admin_key)
    page.click("form button[type=submit]")
    page.wait_for_selector("#page-overview .stat", timeout=WAIT_MS)
    return page, seen


def _reported(page: Any, seen: dict[str, list[str]]) -> list[str]:
    """The violations the tab reported so far, as events and as console messages."""
    return [*page.evaluate(VIOLATIONS), *seen["csp"]]


def test_no_page_of_the_console_violates_its_content_security_policy(
    browser: Any, platform: Platform
) -> None:
    made = _objects(platform)
    page, seen = _open_watched(browser, platform)
    assert _reported(page, seen) == []  # the sign-in page and the overview

    # Every page of the navigation, by its link: no page is left out.
    nav = page.eval_on_selector_all("#nav a", "as => as.map(a => a.hash.slice(2))")
    assert sorted(nav) == sorted(READY), "a page without a READY selector"
    for name in nav:
        page.click(f"#nav a[href='#/{name}']")
        page.wait_for_selector(f"#page-{name} {READY[name]}", state="attached", timeout=WAIT_MS)
        assert _reported(page, seen) == [], name

    # The pages behind the lists, and a few things shown on request.
    subpages = {
        "apps/new": "#app-form #app-name",
        f"apps/{made['app']}": "#app-spend:not(:empty)",
        f"knowledge/{made['store']}": "#store-counts",
        f"batches/{made['batch']}": "#batch-error tr[data-custom-id=csp]",
    }
    for path, ready in subpages.items():
        page.evaluate(f"location.hash = '#/{path}'")
        page.wait_for_selector(f"#page-{path.split('/')[0]} {ready}", timeout=WAIT_MS)
        assert _reported(page, seen) == [], path
    page.click("#nav a[href='#/audit']")
    page.click("#audit-entries .audit-toggle >> nth=0")
    page.wait_for_selector("tr.audit-detail pre", timeout=WAIT_MS)
    page.click("#nav a[href='#/overview']")
    # a chart's tooltip, placed through the CSSOM (element.style.left), which the policy allows
    mark = "#page-overview figure.chart svg :is(rect, circle) >> nth=0"
    page.dispatch_event(mark, "mousemove", {"clientX": 200, "clientY": 300})
    expect(page.locator("#tooltip")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "csp-overview.png"), full_page=True)
    assert _reported(page, seen) == []
    assert seen["errors"] == [], seen["errors"]

    # What the policy refuses is refused and reported: an inline style and an inline script.
    page.evaluate("""() => {
        const main = document.getElementById("main");
        main.insertAdjacentHTML("beforeend", '<p id="csp-probe" style="color: red">probe</p>');
        const script = document.createElement("script");
        script.textContent = "window.__ran = true;";
        main.append(script);
    }""")
    expect(page.locator("#csp-probe")).not_to_have_css("color", "rgb(255, 0, 0)")
    page.wait_for_function(f"{VIOLATIONS}.length >= 2", timeout=WAIT_MS)
    assert page.evaluate("window.__ran") is None
    reported = page.evaluate(VIOLATIONS)
    assert [v.split(" at ")[0] for v in reported] == [
        "style-src-attr blocked inline",
        "script-src-elem blocked inline",
    ], reported
