"""The console's Datasets page in headless Chromium against a live ``tokenmill serve``: a
tenant admin's dataset (made through the admin API) is listed, its card shows the splits, its
rows page forward and by split; a version added from the page's form is listed; a platform
admin publishes it from its page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.datasets.conftest import examples, jsonl
from tests.e2e.conftest import Platform
from tests.e2e.test_console import ARTIFACTS, CHAT_MODEL, WAIT_MS, _open, _visit
from tests.e2e.test_console import browser as browser  # the fixture, shared


def _tenant_admin(platform: Platform) -> str:
    with platform.http() as http:
        tenant = http.post("/admin/v1/tenants", json={"name": "datasets-console"}).json()
        made = http.post(
            f"/admin/v1/tenants/{tenant['id']}/keys",
            json={"name": "datasets-console-admin", "role": "tenant_admin"},
        ).json()
    return str(made["secret"])


def test_the_console_lists_shows_and_pages_datasets(
    browser: Any, platform: Platform, tmp_path: Path
) -> None:
    key = _tenant_admin(platform)
    rows = examples(25)
    upload = platform.client(key).files.create(file=("faq.jsonl", jsonl(rows)), purpose="fine-tune")
    with platform.http(key) as http:
        body = {
            "file_id": upload.id,
            "model": CHAT_MODEL,
            "validation_fraction": 0.2,
            "licence": "CC0-1.0",
        }
        made = http.post("/admin/v1/datasets", json=body)
    assert made.status_code == 200, made.text
    dataset = made.json()
    page = _open(browser, platform, key)

    _visit(page, "datasets", f"tr[data-dataset-id='{dataset['id']}']")
    assert "faq" in page.inner_text(f"tr[data-dataset-id='{dataset['id']}']")
    page.click(f"tr[data-dataset-id='{dataset['id']}'] a")
    page.wait_for_selector("#ds-rows tr[data-line]", timeout=WAIT_MS)
    assert page.inner_text("#ds-card-rows") == "25"
    assert page.inner_text("#ds-sha256") == dataset["version"]["sha256"]
    assert "CC0-1.0" in page.inner_text("#ds-card")
    assert page.inner_text("#ds-page") == "train: rows 1 to 10 of 20"
    first = page.eval_on_selector_all(
        "#ds-rows tr[data-line]", "rs => rs.map(r => +r.dataset.line)"
    )
    page.click("#ds-next")
    page.wait_for_selector("#ds-page >> text=train: rows 11 to 20 of 20", timeout=WAIT_MS)
    assert page.is_disabled("#ds-next")
    second = page.eval_on_selector_all(
        "#ds-rows tr[data-line]", "rs => rs.map(r => +r.dataset.line)"
    )
    assert not set(first) & set(second) and len(first + second) == 20
    page.click("#ds-split button[data-split=validation]")
    page.wait_for_selector("#ds-page >> text=validation: rows 1 to 5 of 5", timeout=WAIT_MS)
    line = int(page.get_attribute("#ds-rows tr[data-line]", "data-line") or 0)
    shown = page.inner_text(f"#ds-rows tr[data-line='{line}']")
    assert rows[line - 1]["messages"][0]["content"] in shown
    assert page.query_selector("#ds-publish") is None  # a tenant admin publishes nothing
    page.screenshot(path=str(ARTIFACTS / "dataset.png"), full_page=True)

    # A new version from the form: the file uploaded, the version added under the same name.
    source = tmp_path / "faq.jsonl"
    source.write_bytes(jsonl(examples(12, tag="b")))
    _visit(page, "datasets", "#ds-create")
    page.set_input_files("#ds-file-input", str(source))
    page.select_option("#ds-model", CHAT_MODEL)
    page.click("#ds-create")
    page.wait_for_selector("#ds-create-status >> text=Added faq version 2", timeout=WAIT_MS)
    assert "v2" in page.inner_text(f"tr[data-dataset-id='{dataset['id']}']")
    page.screenshot(path=str(ARTIFACTS / "datasets.png"), full_page=True)
    assert page.console_errors == [], page.console_errors

    # A platform admin publishes version 2 from its page.
    admin = _open(browser, platform, platform.admin_key)
    admin.evaluate(f"location.hash = '#/datasets/{dataset['id']}/2'")
    admin.click("#ds-publish")
    admin.wait_for_selector("#ds-card >> text=published", timeout=WAIT_MS)
    with platform.http(key) as http:
        card = http.get(f"/admin/v1/datasets/{dataset['id']}/versions/2").json()
    assert card["published"] is True, json.dumps(card)
    assert admin.console_errors == [], admin.console_errors
