"""The console's Apps page in headless Chromium against a live ``tokenmill serve``: an App built
with the builder (the chat model, instructions with a variable and its default, output limits,
blocked topics), saved again with changed instructions, the two versions compared and the second
published; one short chat turn with the published version answered with its tokens and the
App's recorded spend; a key issued that may call only the App; and a platform admin who picks
another tenant told that the page stays on its own."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.e2e.conftest import Platform
from tests.e2e.test_advice_console import BILLING_SYNC_SECONDS
from tests.e2e.test_console import ARTIFACTS, CHAT_MODEL, WAIT_MS, _admin_get, _open, _visit
from tests.e2e.test_console import browser as browser  # the fixture, shared

RUN_MS = 180_000  # the first chat may wait for the chat model's replica to start
FIRST = "You are a terse assistant for {{product}}. Answer in one short sentence."
SECOND = "You are a cheerful assistant for {{product}}. Answer in one short sentence."
TOPICS = ["medical advice", "legal advice"]


def _get(platform: Platform, path: str) -> Any:
    return _admin_get(platform, platform.admin_key, path)


def _build(page: Any) -> str:
    """A new App made with the builder; its id."""
    page.click("#app-new")
    page.wait_for_selector("#page-apps #app-form #app-name", timeout=WAIT_MS)
    page.fill("#app-name", "Console helper")
    page.select_option("#app-model", CHAT_MODEL)
    page.fill("#app-instructions", FIRST)
    expect(page.locator("#app-variables input")).to_have_count(1)
    page.fill("#app-var-product", "tokenmill")
    page.fill("#app-max-output", "32")
    page.fill("#app-guard-max", "32")
    page.fill("#app-blocked", "\n".join(TOPICS))
    # Function tools are checked as JSON before anything is sent.
    page.fill("#app-functions", "[{oops")
    expect(page.locator("#app-functions-status")).to_contain_text("not valid JSON")
    page.click("#app-save")
    expect(page.locator("#app-form .form-status.error")).to_contain_text("Function tools")
    page.fill("#app-functions", "")
    page.evaluate("window.scrollTo(0, 0)")  # the sticky header at the top of the full page
    page.screenshot(path=str(ARTIFACTS / "apps-new.png"), full_page=True)
    page.click("#app-save")
    page.wait_for_selector("#app-versions tr[data-version='1']", timeout=WAIT_MS)
    app_id = page.url.split("#/apps/")[1]
    assert app_id.startswith("app_")
    return app_id


def test_the_console_builds_versions_publishes_and_tests_an_app(
    browser: Any, platform: Platform
) -> None:
    tenant_id = _get(platform, "/admin/v1/me")["tenant_id"]
    page = _open(browser, platform, platform.admin_key)
    _visit(page, "apps", "#app-new")
    app_id = _build(page)
    first = _get(platform, f"/v1/apps/{app_id}/versions/1")["config"]
    assert first == {
        "model": CHAT_MODEL,
        "instructions": FIRST,
        "variables": {"product": "tokenmill"},
        "vector_store_ids": [],
        "functions": [],
        "mcp": [],
        "search": "auto",
        "max_output_tokens": 32,
        "guardrails": {"max_output_tokens": 32, "blocked_topics": TOPICS},
        "steps": {"rewrite_model": None},
    }
    expect(page.locator("#app-head")).to_contain_text("unpublished")
    assert page.input_value("#app-instructions") == FIRST  # version 1, loaded to go on from
    assert page.input_value("#app-var-product") == "tokenmill"

    # A second version: the instructions changed, with a note.
    page.fill("#app-instructions", SECOND)
    page.fill("#app-note", "cheerful")
    page.click("#app-save")
    expect(page.locator("#app-saved")).to_have_text("Saved version 2.", timeout=WAIT_MS)
    second = _get(platform, f"/v1/apps/{app_id}/versions/2")
    assert second["note"] == "cheerful" and second["config"] == {**first, "instructions": SECOND}
    row = page.locator("#app-versions tr[data-version='2']")
    expect(row).to_contain_text("editing")
    assert row.locator("td").nth(1).inner_text() == "cheerful"
    expect(page.locator("#app-chat-version")).to_have_text("Testing version 2 as saved")

    # The diff of 1 and 2: the instructions, before and after.
    assert page.input_value("#app-diff-from") == "1" and page.input_value("#app-diff-to") == "2"
    page.click("#app-diff-run")
    changes = page.locator("#app-diff tr[data-path]")
    expect(changes).to_have_count(1, timeout=WAIT_MS)
    api_diff = _get(platform, f"/v1/apps/{app_id}/diff?from=1&to=2")["changes"]
    assert [c["path"] for c in api_diff] == ["instructions"]
    assert changes.locator("td").all_inner_texts() == ["instructions", f'"{FIRST}"', f'"{SECOND}"']
    page.screenshot(path=str(ARTIFACTS / "apps-diff.png"), full_page=True)

    # Published: the App's calls without a version get version 2.
    row.locator("button.publish").click()
    expect(row.locator(".badge.published")).to_have_count(1, timeout=WAIT_MS)
    expect(page.locator("#app-head")).to_contain_text("published v2")
    assert row.locator("button.publish").is_disabled()
    assert _get(platform, f"/v1/apps/{app_id}")["published_version"] == 2

    # One short turn with version 2: the answer, its tokens, and what was recorded for the App.
    page.fill("#app-chat-input", "Say hello.")
    page.click("#app-chat-send")
    turn = page.locator("#app-chat-log .turn").last
    expect(turn).to_have_attribute(
        "data-status", re.compile("^(completed|incomplete)$"), timeout=RUN_MS
    )
    response_id = turn.get_attribute("data-response-id")
    assert response_id is not None and response_id.startswith("resp_")
    stored = _get(platform, f"/v1/responses/{response_id}")
    assert stored["prompt"]["id"] == app_id and stored["prompt"]["version"] == "2"
    assert stored["model"] == CHAT_MODEL and stored["max_output_tokens"] == 32
    assert "cheerful assistant for tokenmill" in stored["instructions"]
    usage = stored["usage"]
    assert 0 < usage["output_tokens"] <= 32
    tokens = f"{usage['input_tokens']:,} input + {usage['output_tokens']:,} output tokens"
    assert tokens in turn.locator(".turn-meta").inner_text()
    assert turn.locator(".message.assistant .content").last.inner_text().strip()
    cost = turn.locator(".turn-cost")
    expect(cost).to_contain_text("App spend since this turn began: $", timeout=WAIT_MS)
    usage_path = f"/admin/v1/tenants/{tenant_id}/usage?group_by=app"
    (recorded,) = [r for r in _get(platform, usage_path)["data"] if r["group"] == app_id]
    assert recorded["requests"] == 1  # one model call, attributed to the App
    assert recorded["completion_tokens"] == usage["output_tokens"]
    assert int(cost.get_attribute("data-cost-micros") or -1) == recorded["cost_micros"]
    expect(page.locator("#app-spend")).to_contain_text("This App so far: 1 request, $")
    expect(page.locator("#app-chat-thread")).to_contain_text(response_id)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "app.png"), full_page=True)

    # A key that may call only this App: shown once; refused elsewhere, and a blocked topic is
    # refused before any model is called.
    page.fill("#app-key-name", "console-app-key")
    page.click("#app-key-form button[type=submit]")
    secret = page.wait_for_selector("#app-key-secret", timeout=WAIT_MS).inner_text()
    assert secret.startswith("tm-app-")
    page.evaluate("window.scrollTo(0, 0)")
    with platform.http(secret) as http:
        assert http.get("/v1/models").status_code == 403
        refused = http.post(f"/v1/apps/{app_id}/chat", json={"message": "Any legal advice?"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "blocked_topic"
    page.screenshot(path=str(ARTIFACTS / "app-key.png"), full_page=True)

    # The public page: off until turned on here, then served with no key.
    assert httpx.get(f"{platform.base_url}/apps/{app_id}", timeout=30).status_code == 404
    page.click("#app-embed-toggle")
    url = page.wait_for_selector("#app-embed-url", timeout=WAIT_MS).inner_text()
    assert url.endswith(f"/apps/{app_id}")
    public = httpx.get(url, timeout=30)
    assert public.status_code == 200 and "<title>Console helper</title>" in public.text
    page.screenshot(path=str(ARTIFACTS / "app-embed.png"), full_page=True)
    credit = {"amount_micros": 1_000_000, "idempotency_key": "app-visitors"}
    with platform.http() as http:  # the page's own key is held to the tenant's credit
        assert http.post(f"/admin/v1/tenants/{tenant_id}/credits", json=credit).is_success
    time.sleep(BILLING_SYNC_SECONDS * 1.5)  # until the gateway has seen it
    _visitor_asks(browser, url)

    # The list: the App, its versions, requests (the turn, the refusal, the visitor's), spend.
    _visit(page, "apps", f"tr[data-app-id='{app_id}']", shot="apps")
    cells = page.locator(f"tr[data-app-id='{app_id}'] td").all_inner_texts()
    assert cells[:4] == ["Console helper", app_id, "v2", "v2"] and cells[5] == "3"
    assert page.console_errors == [], page.console_errors


def _visitor_asks(browser: Any, url: str) -> None:
    """A visitor with no key asks on the public page, under its own strict policy: the
    page's script runs (by its nonce), the answer comes, and the browser reports nothing."""
    visitor = browser.new_page()
    errors: list[str] = []
    visitor.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    visitor.on("pageerror", lambda e: errors.append(str(e)))
    try:
        visitor.goto(url)
        visitor.fill("#message", "What can you help with?")
        visitor.click("#ask button[type=submit]")
        expect(visitor.locator(".turn.bot")).not_to_have_text("…", timeout=WAIT_MS)
        assert visitor.locator(".turn.bot.error").count() == 0, visitor.inner_text(".turn.bot")
        visitor.screenshot(path=str(ARTIFACTS / "app-public-page.png"), full_page=True)
    finally:
        visitor.close()
    assert errors == [], errors


def test_a_platform_admin_picking_another_tenant_is_told_the_page_stays_on_its_own(
    browser: Any, platform: Platform
) -> None:
    with platform.http() as http:
        other = http.post("/admin/v1/tenants", json={"name": "console-apps"}).json()
    me = _get(platform, "/admin/v1/me")
    page = _open(browser, platform, platform.admin_key)
    _visit(page, "apps", "#app-new")
    assert page.locator("#apps-tenant-note").count() == 0
    page.select_option("#tenant", other["id"])
    note = page.locator("#page-apps #apps-tenant-note")
    expect(note).to_contain_text(f"signed-in key's own tenant ({me['tenant_id']})", timeout=WAIT_MS)
    expect(note).to_contain_text(f"picked above ({other['id']})")
    listed = _get(platform, "/v1/apps")["data"]
    expect(page.locator("#page-apps tr[data-app-id]")).to_have_count(len(listed))
    page.screenshot(path=str(ARTIFACTS / "apps-other-tenant.png"), full_page=True)
    assert page.console_errors == [], page.console_errors


def test_the_builder_takes_knowledge_and_tools_and_keeps_what_it_does_not_show(
    browser: Any, platform: Platform
) -> None:
    """No model is called: a configuration is only checked when it is saved."""
    tenant_id = _get(platform, "/admin/v1/me")["tenant_id"]
    store = platform.client().vector_stores.create(name="apps-builder")
    with platform.http() as http:
        server = http.post(
            f"/admin/v1/tenants/{tenant_id}/mcp_servers",
            json={"label": "wiki", "url": "http://127.0.0.1:9/mcp", "require_approval": "never"},
        )
        assert server.status_code == 200, server.text
        made = http.post(
            "/v1/apps",
            json={
                "name": "Tools helper",
                "config": {
                    "model": CHAT_MODEL,
                    "instructions": "Help with {{topic}}.",
                    "top_p": 0.9,  # not in the builder: kept
                    "mcp": [
                        {"server_label": "wiki", "allowed_tools": ["search"],
                         "require_approval": "never"}
                    ],
                },
            },
        )  # fmt: skip
        assert made.status_code == 200, made.text
    app_id = made.json()["id"]
    page = _open(browser, platform, platform.admin_key)
    _visit(page, "apps", f"tr[data-app-id='{app_id}']")
    page.click(f"tr[data-app-id='{app_id}'] a")
    page.wait_for_selector("#app-versions tr[data-version='1']", timeout=WAIT_MS)
    wiki = page.locator("#app-mcp .mcp-choice[data-label=wiki]")
    assert wiki.locator("input[type=checkbox]").is_checked()
    assert wiki.locator("select").input_value() == "never"
    box = page.locator(f"#app-stores input[value='{store.id}']")
    assert not box.is_checked() and page.locator("#app-search").is_disabled()
    assert page.input_value("#app-var-topic") == ""  # no default: each call gives it
    expect(page.locator("#app-chat-var-topic")).to_have_attribute("placeholder", "required")

    box.check()
    page.fill("#app-max-results", "3")
    page.select_option("#app-search", "always")
    page.select_option("#app-rewrite", CHAT_MODEL)
    page.fill("#app-functions", '[{"name": "get_order", "parameters": {"type": "object"}}]')
    expect(page.locator("#app-functions-status")).to_have_text("1 function")
    wiki.locator("select").select_option("always")
    page.fill("#app-temperature", "0.3")
    page.fill("#app-note", "knowledge and tools")
    page.click("#app-save")
    expect(page.locator("#app-saved")).to_have_text("Saved version 2.", timeout=WAIT_MS)
    second = _get(platform, f"/v1/apps/{app_id}/versions/2")["config"]
    assert second["vector_store_ids"] == [store.id] and second["max_num_results"] == 3
    assert second["search"] == "always" and second["steps"] == {"rewrite_model": CHAT_MODEL}
    assert second["functions"] == [{"name": "get_order", "parameters": {"type": "object"}}]
    assert second["mcp"] == [
        {"server_label": "wiki", "allowed_tools": ["search"], "require_approval": "always"}
    ]
    assert second["top_p"] == 0.9 and second["temperature"] == 0.3
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "app-tools.png"), full_page=True)

    # Version 1 opened again: the builder and the test chat are on it.
    page.locator("#app-versions tr[data-version='1'] button.open").click()
    expect(page.locator("#app-chat-version")).to_have_text("Testing version 1 as saved")
    assert not box.is_checked() and page.input_value("#app-functions") == ""
    page.click("#app-diff-run")
    api_diff = _get(platform, f"/v1/apps/{app_id}/diff?from=1&to=2")["changes"]
    paths = page.locator("#app-diff tr[data-path]").evaluate_all(
        "rows => rows.map(r => r.dataset.path)"
    )
    assert paths == [c["path"] for c in api_diff] and "mcp[0].require_approval" in paths
    assert page.console_errors == [], page.console_errors
