"""The console's MCP servers page in headless Chromium against a live ``tokenmill serve``: the
test MCP server (``tests.plugins.mcp_server``) registered with headers, allowed tools and an
approval policy, its tools asked through the gateway, its error shown once it is gone, and it
deleted; a tenant admin refused a server on a private address that a platform admin, picking
the tenant, registers for it (trusted)."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.e2e.conftest import Platform
from tests.e2e.test_console import ARTIFACTS, WAIT_MS, _admin_get, _open, _visit
from tests.e2e.test_console import browser as browser  # the fixture, shared
from tests.plugins.mcp_server import running

SECRET = "sk-console-5b1e"
TOOLS = ["add", "capital", "fail", "hang", "huge", "whoami"]
TOOL_NAMES = "els => els.map(e => e.dataset.tool)"


def _register(page: Any, label: str, url: str, headers: dict[str, str] | None = None) -> None:
    page.fill("#mcp-label", label)
    page.fill("#mcp-url", url)
    for n, (name, value) in enumerate((headers or {}).items(), 1):
        if n > 1:
            page.click("#mcp-add-header")
        row = page.locator(f"#mcp-headers .header-row:nth-child({n})")
        row.locator("input[name=header_name]").fill(name)
        row.locator("input[name=header_value]").fill(value)
    page.click("#mcp-register button[type=submit]")


def _servers(platform: Platform, tenant_id: str) -> list[dict[str, Any]]:
    path = f"/admin/v1/tenants/{tenant_id}/mcp_servers"
    return list(_admin_get(platform, platform.admin_key, path)["data"])


def test_the_console_registers_a_server_lists_its_tools_and_deletes_it(
    browser: Any, platform: Platform
) -> None:
    tenant_id = _admin_get(platform, platform.admin_key, "/admin/v1/me")["tenant_id"]
    page = _open(browser, platform, platform.admin_key)
    page.on("dialog", lambda dialog: dialog.accept())
    _visit(page, "mcp", "#mcp-register")
    with running() as url:
        page.fill("#mcp-description", "Arithmetic and capitals.")
        page.fill("#mcp-allowed", "add, capital whoami")
        page.select_option("#mcp-approval", "never")
        _register(page, "calc", url, {"X-Api-Key": SECRET, "X-Team": "blue"})
        row = page.locator("#page-mcp tr[data-label=calc]")
        expect(row).to_have_count(1, timeout=WAIT_MS)
        (stored,) = [s for s in _servers(platform, tenant_id) if s["server_label"] == "calc"]
        assert row.get_attribute("data-server-id") == stored["id"]
        assert stored["server_url"] == url and stored["require_approval"] == "never"
        assert stored["headers"] == {"X-Api-Key": "<sealed>", "X-Team": "<sealed>"}
        assert stored["allowed_tools"] == ["add", "capital", "whoami"]
        assert stored["server_description"] == "Arithmetic and capitals."
        cells = [" ".join(c.split()) for c in row.locator("td").all_inner_texts()]
        assert cells[:6] == [
            "calc Arithmetic and capitals.",
            "streamable_http",
            url,
            "X-Api-Key X-Team",
            "add capital whoami",
            "never",
        ]
        assert SECRET not in page.content()
        # The form is ready for the next one: blank, one empty header row.
        assert page.input_value("#mcp-label") == ""
        assert page.locator("#mcp-headers .header-row").count() == 1

        row.locator("button", has_text="Tools").click()
        panel = page.locator("#mcp-tools")
        expect(panel).to_have_attribute("data-state", "listed", timeout=WAIT_MS)
        assert sorted(panel.locator(".mcp-tool").evaluate_all(TOOL_NAMES)) == TOOLS
        add = panel.locator(".mcp-tool[data-tool=add]")
        assert add.locator("code.name").inner_text() == "add(a, b)"
        assert add.locator(".description").inner_text() == "Adds two integers."
        assert panel.locator(".mcp-tool[data-tool=hang] code.name").inner_text() == "hang(seconds?)"
        refused = panel.locator(".mcp-tool:has(.badge)").evaluate_all(TOOL_NAMES)
        assert sorted(refused) == ["fail", "hang", "huge"]  # listed, but not allowed
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(ARTIFACTS / "mcp-tools.png"), full_page=True)

    # The server is gone: asking it again shows the gateway's error instead of tools.
    row.locator("button", has_text="Tools").click()
    expect(panel).to_have_attribute("data-state", "failed", timeout=WAIT_MS)
    expect(panel.locator(".notice.error")).to_contain_text("The MCP server 'calc' failed")
    assert panel.locator(".mcp-tool").count() == 0
    page.screenshot(path=str(ARTIFACTS / "mcp-unreachable.png"), full_page=True)

    row.locator("button.danger", has_text="Delete").click()
    expect(row).to_have_count(0, timeout=WAIT_MS)
    expect(panel).to_be_hidden()
    assert all(s["server_label"] != "calc" for s in _servers(platform, tenant_id))
    assert page.console_errors == [], page.console_errors


def test_a_platform_admin_registers_for_a_tenant_what_its_admin_may_not(
    browser: Any, platform: Platform
) -> None:
    with platform.http() as http:
        tenant = http.post("/admin/v1/tenants", json={"name": "console-mcp"}).json()
        created = http.post(
            f"/admin/v1/tenants/{tenant['id']}/keys",
            json={"name": "mcp-admin", "role": "tenant_admin"},
        ).json()
    with running() as url:
        # The tenant's own admin: a loopback address is refused, with the guard's reason.
        own = _open(browser, platform, created["secret"])
        _visit(own, "mcp", "#mcp-register", shot="mcp-tenant")
        _register(own, "local", url)
        status = own.locator("#mcp-register .form-status.error")
        expect(status).to_contain_text("private, loopback or reserved network", timeout=WAIT_MS)
        expect(status).to_contain_text("mcp_allowed_hosts")
        assert _servers(platform, tenant["id"]) == []
        own.screenshot(path=str(ARTIFACTS / "mcp-tenant-refused.png"), full_page=True)

        # A platform admin picks the tenant and registers the same server for it.
        page = _open(browser, platform, platform.admin_key)
        _visit(page, "mcp", "#mcp-register", shot="mcp-platform")
        page.select_option("#tenant", tenant["id"])
        heading = page.locator("#page-mcp .page-head")
        expect(heading).to_contain_text(f"tenant {tenant['id']}", timeout=WAIT_MS)
        _register(page, "local", url)
        expect(page.locator("#page-mcp tr[data-label=local]")).to_have_count(1, timeout=WAIT_MS)
        assert [s["server_label"] for s in _servers(platform, tenant["id"])] == ["local"]

        # Its admin now sees it and may ask it for its tools: the registration is trusted.
        own.reload()
        row = own.locator("#page-mcp tr[data-label=local]")
        expect(row).to_have_count(1, timeout=WAIT_MS)
        row.locator("button", has_text="Tools").click()
        panel = own.locator("#mcp-tools")
        expect(panel).to_have_attribute("data-state", "listed", timeout=WAIT_MS)
        assert sorted(panel.locator(".mcp-tool").evaluate_all(TOOL_NAMES)) == TOOLS
        assert panel.locator(".badge").count() == 0  # every tool allowed
    assert own.console_errors == [] and page.console_errors == []
