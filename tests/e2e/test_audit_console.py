"""The console's Audit page in headless Chromium against a live ``tokenmill serve``: a platform
admin's actions on a new tenant (created, its limits patched many times, a patch refused, a key
issued) listed newest first with their method, path and status, paged with "Older", filtered
to the tenant; the patch opened with its changed field marked before and after; the key's
secret nowhere on the page; the hash chain verified intact. The tenant's own admin sees only its
tenant's entries, its own refused action among them, and neither the filter nor the chain."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.e2e.conftest import Platform
from tests.e2e.test_console import (
    ARTIFACTS,
    WAIT_MS,
    _admin_get,
    _open,
    _statuses,
    _visit,
)
from tests.e2e.test_console import browser as browser  # the fixture, shared

PAGE = 50  # entries a page of the console shows
ROWS = "#audit-entries tbody tr:not(.audit-detail)"
ROW_FIELDS = "rs => rs.map(r => [r.dataset.method, r.dataset.path, Number(r.dataset.status)])"
SEQS = "rs => rs.map(r => Number(r.dataset.seq))"


def _entries(platform: Platform, key: str, query: str = "") -> list[dict[str, Any]]:
    return list(_admin_get(platform, key, f"/admin/v1/audit?limit=1000{query}")["data"])


def test_a_platform_admin_reads_pages_filters_opens_and_verifies_the_log(
    browser: Any, platform: Platform
) -> None:
    with platform.http() as http:
        tenant = http.post("/admin/v1/tenants", json={"name": "audit-console"}).json()
        path = f"/admin/v1/tenants/{tenant['id']}"
        for n in range(PAGE):  # enough entries about the tenant for a second page
            assert http.patch(path, json={"tpm_limit": 1000 + n}).is_success
        assert http.patch(path, json={"rpm_limit": 120}).is_success
        assert http.patch(path, json={"rpm_limit": -5}).status_code == 400
        created = http.post(f"{path}/keys", json={"name": "audit-admin", "role": "tenant_admin"})
        secret = created.json()["secret"]
    logged = _entries(platform, platform.admin_key)
    (creation,) = [e for e in logged if e["path"] == "/admin/v1/tenants" and
                   (e["after"] or {}).get("id") == tenant["id"]]  # fmt: skip
    assert creation["tenant_id"] == tenant["id"]  # the new tenant's first entry

    # Every tenant's entries, newest first: the key, the refused patch, the patch.
    page = _open(browser, platform, platform.admin_key)
    _visit(page, "audit", ROWS)
    expect(page.locator("#audit-scope")).to_have_text("all tenants")
    expect(page.locator("#audit-total")).to_have_text(f"{PAGE}+ entries")
    assert page.locator(ROWS).evaluate_all(ROW_FIELDS)[:3] == [
        ["POST", f"{path}/keys", 200],
        ["PATCH", path, 400],
        ["PATCH", path, 200],
    ]
    newest = page.locator(ROWS).first
    cells = [" ".join(c.split()) for c in newest.locator("td").all_inner_texts()]
    assert cells[2] == f"{logged[0]['actor_key_id']} platform admin"
    assert cells[3:6] == [f"audit-console {tenant['id']}", f"POST {path}/keys", "200"]
    assert newest.get_attribute("data-outcome") == "ok"
    refused = page.locator(ROWS).nth(1)
    assert refused.get_attribute("data-outcome") == "warn"
    expect(refused.locator(".badge")).to_have_class("badge pending")

    # "Older": the next page, the tenant's creation on it, no entry twice.
    page.click("#audit-older")
    expect(page.locator(f"{ROWS}[data-seq='{creation['seq']}']")).to_have_count(1)
    seqs = page.locator(ROWS).evaluate_all(SEQS)
    assert seqs == sorted(set(seqs), reverse=True) and len(seqs) > PAGE
    created_row = page.locator(f"{ROWS}[data-seq='{creation['seq']}']")
    assert created_row.get_attribute("data-tenant-id") == tenant["id"]
    assert created_row.locator("td").nth(3).inner_text() == f"audit-console\n{tenant['id']}"

    # The tenant alone: only entries about it.
    page.fill("#audit-tenant", tenant["id"])
    page.click("#audit-filter button[type=submit]")
    expect(page.locator("#audit-scope")).to_have_text("tenant audit-console")
    expect(page.locator(f"{ROWS}[data-seq='{creation['seq']}']")).to_have_count(0)
    expect(page.locator(ROWS)).to_have_count(PAGE)
    tenants = page.locator(ROWS).evaluate_all("rs => rs.map(r => r.dataset.tenantId)")
    assert set(tenants) == {tenant["id"]}
    expect(page.locator("#audit-older")).to_be_visible()

    # The patch opened: the request, and rpm_limit marked before and after.
    patch = page.locator(ROWS).nth(2)
    patch.locator(".audit-toggle").click()
    detail = page.locator(f"tr.audit-detail[data-seq='{patch.get_attribute('data-seq')}']")
    expect(detail).to_be_visible()
    assert detail.locator(".audit-changes code").all_inner_texts() == ["rpm_limit"]
    assert detail.locator("[data-part=before] mark").all_inner_texts() == ['"rpm_limit": null']
    assert detail.locator("[data-part=after] mark").all_inner_texts() == ['"rpm_limit": 120']
    assert '"tpm_limit": 1049' in detail.locator("[data-part=after] pre").inner_text()
    request = detail.locator("[data-part=request] pre").inner_text()
    assert " ".join(request.split()) == '{ "rpm_limit": 120 }'
    expect(patch.locator(".audit-toggle")).to_have_attribute("aria-expanded", "true")

    # The key's issue opened: its secret redacted, nowhere on the page.
    key_row = page.locator(ROWS).first
    key_row.locator(".audit-toggle").click()
    issued = page.locator(f"tr.audit-detail[data-seq='{key_row.get_attribute('data-seq')}']")
    expect(issued.locator("[data-part=after] pre")).to_contain_text('"secret": "[redacted]"')
    assert secret not in page.content()
    page.screenshot(path=str(ARTIFACTS / "audit.png"), full_page=True)

    # The chain: every entry checked, intact.
    page.click("#audit-verify")
    verified = page.locator("#audit-verification")
    expect(verified).to_have_attribute("data-state", "intact", timeout=WAIT_MS)
    checked = _admin_get(platform, platform.admin_key, "/admin/v1/audit/verify")
    assert checked["intact"] and checked["entries"] >= len(logged)
    expect(verified).to_have_text(f"intact {checked['entries']:,} entries checked")
    assert page.console_errors == [], page.console_errors


def test_a_tenant_admin_sees_only_its_tenant_and_no_chain(browser: Any, platform: Platform) -> None:
    admin_tenant = _admin_get(platform, platform.admin_key, "/admin/v1/me")["tenant_id"]
    with platform.http() as http:
        tenant = http.post("/admin/v1/tenants", json={"name": "audit-own"}).json()
        path = f"/admin/v1/tenants/{tenant['id']}"
        made = http.post(f"{path}/keys", json={"name": "own-admin", "role": "tenant_admin"})
        key = made.json()["secret"]
    with platform.http(key) as http:
        assert http.patch(path, json={"rpm_limit": 10**6}).status_code == 403
        bot = http.post(f"{path}/keys", json={"name": "own-bot"}).json()

    page = _open(browser, platform, key)
    _visit(page, "audit", ROWS, shot="audit-tenant")
    expect(page.locator("#audit-scope")).to_have_text("tenant audit-own")
    expect(page.locator("#audit-verify")).to_have_count(0)
    expect(page.locator("#audit-filter")).to_have_count(0)
    assert page.locator(ROWS).evaluate_all(ROW_FIELDS) == [
        ["POST", f"{path}/keys", 200],
        ["PATCH", path, 403],
        ["POST", f"{path}/keys", 200],
        ["POST", "/admin/v1/tenants", 200],
    ]
    roles = page.locator(f"{ROWS} td:nth-child(3) div.muted").all_inner_texts()
    assert roles == ["tenant admin", "tenant admin", "platform admin", "platform admin"]
    # the platform's operators are not named to a tenant admin
    actors = page.locator(f"{ROWS} td:nth-child(3)").all_inner_texts()
    assert [a.startswith("not shown") for a in actors] == [False, False, True, True]
    assert page.locator(ROWS).nth(1).get_attribute("data-outcome") == "warn"
    seqs = page.locator(ROWS).evaluate_all(SEQS)
    assert seqs == [e["seq"] for e in _entries(platform, key)]
    assert key not in page.content() and bot["secret"] not in page.content()
    statuses = _statuses(
        page, ["/admin/v1/audit/verify", f"/admin/v1/audit?tenant_id={admin_tenant}"]
    )
    assert statuses == [403, 404]  # the chain is the platform's; another tenant does not exist
    assert page.console_errors == [], page.console_errors
