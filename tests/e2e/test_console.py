"""The web console in headless Chromium against a live ``tokenmill serve``.

Signs in, creates a key and sees its secret once, chats in the playground, sees the tokens in
the usage charts, and checks a tenant admin sees only its own tenant. Every page is saved as
a screenshot under ``tests/artifacts/console/``.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Platform

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "console"
CHAT_MODEL = "smollm2-135m-instruct"
PAGES = ("overview", "models", "deployments", "keys", "usage", "playground")
WAIT_MS = 60_000


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the browser tests)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if shutil.which(CHROMIUM) is None:
        _unavailable(f"{CHROMIUM} is missing: apt-get install chromium (make test does)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed: pip install -e '.[test]'")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def _open(browser: Any, platform: Platform, key: str) -> Any:
    """A new tab, signed in with ``key``, on the overview."""
    page = browser.new_context(viewport={"width": 1360, "height": 900}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.console_errors = errors
    page.goto(f"{platform.base_url}/console")
    page.fill("#signin-key", key)
    page.click("form button[type=submit]")
    page.wait_for_selector("#page-overview .stat", timeout=WAIT_MS)
    return page


def _visit(page: Any, name: str, ready: str, shot: str | None = None) -> None:
    page.evaluate(f"location.hash = '#/{name}'")
    page.wait_for_selector(f"#page-{name} {ready}", state="attached", timeout=WAIT_MS)
    page.screenshot(path=str(ARTIFACTS / f"{shot or name}.png"), full_page=True)
    assert page.console_errors == [], page.console_errors


def _admin_get(platform: Platform, key: str, path: str) -> Any:
    with platform.http(key) as http:
        response = http.get(path)
    response.raise_for_status()
    return response.json()


def test_an_admin_signs_in_creates_a_key_chats_and_sees_the_usage(
    browser: Any, platform: Platform
) -> None:
    page = _open(browser, platform, platform.admin_key)
    me = _admin_get(platform, platform.admin_key, "/admin/v1/me")
    assert page.inner_text("#identity").endswith("platform admin")

    # Keys: the secret is shown once, works, and is gone after a reload.
    _visit(page, "keys", "table.grid")
    page.fill("#key-name", "console-bot")
    page.click("#page-keys form button[type=submit]")
    secret = page.wait_for_selector("#new-secret", timeout=WAIT_MS).inner_text()
    assert secret.startswith("tm-")
    page.wait_for_selector("tr >> text=console-bot")
    page.screenshot(path=str(ARTIFACTS / "keys-created.png"), full_page=True)
    with platform.http(secret) as http:
        assert http.get("/v1/models").status_code == 200
    page.reload()
    page.wait_for_selector("#page-keys tr >> text=console-bot", timeout=WAIT_MS)
    assert page.query_selector("#new-secret") is None
    assert secret not in page.content()
    page.screenshot(path=str(ARTIFACTS / "keys.png"), full_page=True)

    # Playground: a streamed answer, then its usage and its recorded cost.
    _visit(page, "playground", "#prompt")
    page.select_option("select[name=model]", CHAT_MODEL)
    page.fill("input[name=max_tokens]", "24")
    page.select_option("select[name=service_tier]", "flex")
    page.fill("#prompt", "Say hello in three words.")
    page.click("#send")
    answer = page.wait_for_selector(".message.assistant .content:not(:empty)", timeout=WAIT_MS)
    _wait_for(page, ".message.assistant .meta", lambda text: "cost $" in text, "playground")
    assert answer.inner_text().strip()
    meta = page.inner_text(".message.assistant .meta")
    used = re.search(r"(\d+) prompt \+ (\d+) completion tokens", meta)
    assert used is not None and int(used[1]) > 0 and int(used[2]) > 0, meta
    request_id = page.get_attribute(".message.assistant .meta", "data-request-id")
    record = platform.usage(request_id)
    assert (record.prompt_tokens, record.completion_tokens) == (int(used[1]), int(used[2]))
    assert "flex tier" in meta and record.service_tier == "flex"
    page.screenshot(path=str(ARTIFACTS / "playground.png"), full_page=True)

    # Usage: today's bar in "Tokens by day" carries the tokens the API reports for today.
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    usage_path = f"/admin/v1/tenants/{me['tenant_id']}/usage?group_by=day"
    rows = {r["group"]: r for r in _admin_get(platform, platform.admin_key, usage_path)["data"]}
    assert rows[today]["completion_tokens"] >= record.completion_tokens
    bar = f"#page-usage rect[data-label='{today[5:]}'][data-series=completion]"
    _visit(page, "usage", bar.removeprefix("#page-usage "))
    assert float(page.get_attribute(bar, "data-value")) == rows[today]["completion_tokens"]
    prompt_bar = bar.replace("completion", "prompt")
    assert float(page.get_attribute(prompt_bar, "data-value")) == rows[today]["prompt_tokens"]
    assert page.query_selector(f"#page-usage rect[data-series=spend][data-label='{today[5:]}']")

    # The statement downloads as CSV.
    page.click("#page-usage form button[type=submit] >> text=Show statement")
    with page.expect_download() as download:
        page.click("#download-csv", timeout=WAIT_MS)
    page.screenshot(path=str(ARTIFACTS / "usage-statement.png"), full_page=True)
    csv_text = Path(download.value.path()).read_text()
    assert csv_text.startswith("model,requests,") and CHAT_MODEL in csv_text

    # Overview: the request is counted, and the replica that served it is listed.
    _visit(page, "overview", ".stat")
    page.select_option("#page-overview select[name=window]", "3600")
    _wait_for_text(page, "#page-overview .stat-value", lambda values: int(values[0]) >= 1)
    page.wait_for_selector("#page-overview td >> text=ready", timeout=WAIT_MS)
    page.screenshot(path=str(ARTIFACTS / "overview.png"), full_page=True)

    _visit(page, "models", "dl.card")
    assert page.query_selector(f"#page-models td >> text={CHAT_MODEL}")
    _visit(page, "deployments", "table.grid")
    assert page.console_errors == []


def test_a_tenant_admin_sees_only_its_own_tenant(browser: Any, platform: Platform) -> None:
    admin_tenant = _admin_get(platform, platform.admin_key, "/admin/v1/me")["tenant_id"]
    with platform.http() as http:
        tenant = http.post("/admin/v1/tenants", json={"name": "console-beta"}).json()
        created = http.post(
            f"/admin/v1/tenants/{tenant['id']}/keys",
            json={"name": "beta-admin", "role": "tenant_admin"},
        ).json()
    page = _open(browser, platform, created["secret"])
    assert page.inner_text("#identity").endswith("tenant admin")
    options = page.eval_on_selector_all("#tenant option", "os => os.map(o => o.value)")
    assert options == [tenant["id"]]
    page.screenshot(path=str(ARTIFACTS / "tenant-overview.png"), full_page=True)

    for name, ready in (("keys", "table.grid"), ("usage", ".stats"), ("models", "dl.card")):
        _visit(page, name, ready, shot=f"tenant-{name}")
        text = page.inner_text("main")
        assert "console-bot" not in text and admin_tenant not in text, name
        if name == "keys":
            rows = page.eval_on_selector_all(
                "#page-keys tr[data-key-id]", "rs => rs.map(r => r.dataset.keyId)"
            )
            assert rows == [created["id"]]
    _visit(page, "deployments", "h1", shot="tenant-deployments")
    _visit(page, "playground", "#prompt", shot="tenant-playground")

    # The browser's own calls to the other tenant answer 404, as if it did not exist.
    statuses = _statuses(
        page,
        [
            f"/admin/v1/tenants/{admin_tenant}",
            f"/admin/v1/tenants/{admin_tenant}/keys",
            f"/admin/v1/tenants/{admin_tenant}/usage?group_by=day",
            f"/admin/v1/overview?tenant_id={admin_tenant}",
        ],
    )
    assert statuses == [404, 404, 404, 404]
    listed = _admin_get(platform, created["secret"], "/admin/v1/tenants")["data"]
    assert [t["id"] for t in listed] == [tenant["id"]]
    own_keys = _admin_get(platform, created["secret"], f"/admin/v1/tenants/{tenant['id']}/keys")
    assert [k["name"] for k in own_keys["data"]] == ["beta-admin"]


def _wait_for(
    page: Any, selector: str, accept: Any, shot: str, timeout_seconds: float = 60
) -> None:
    """Until the text of ``selector`` satisfies ``accept``; a screenshot when it never does."""
    deadline = time.monotonic() + timeout_seconds
    text = ""
    while time.monotonic() < deadline:
        found = page.query_selector(selector)
        text = found.inner_text() if found is not None else ""
        if accept(text):
            return
        page.wait_for_timeout(250)
    page.screenshot(path=str(ARTIFACTS / f"{shot}-failed.png"), full_page=True)
    raise AssertionError(f"{selector} never matched: {text!r}; errors: {page.console_errors}")


def _wait_for_text(page: Any, selector: str, accept: Any, timeout_seconds: float = 60) -> None:
    """Until the numbers in the elements matching ``selector`` satisfy ``accept``."""
    deadline = time.monotonic() + timeout_seconds
    values: list[str] = []
    while time.monotonic() < deadline:
        values = [
            v.replace(",", "")
            for v in page.eval_on_selector_all(selector, "es => es.map(e => e.textContent)")
        ]
        if values and all(re.fullmatch(r"[\d.]+|—", v) for v in values[:1]) and accept(values):
            return
        page.wait_for_timeout(500)
    raise AssertionError(f"{selector} never matched: {values}")


def _statuses(page: Any, paths: list[str]) -> list[int]:
    """What the browser's own calls with the signed-in key answer."""
    return list(
        page.evaluate(
            """async (paths) => {
                const key = sessionStorage.getItem("tokenmill.key");
                const out = [];
                for (const path of paths) {
                    const r = await fetch(path, {headers: {authorization: `Bearer ${key}`}});
                    out.push(r.status);
                }
                return out;
            }""",
            paths,
        )
    )
