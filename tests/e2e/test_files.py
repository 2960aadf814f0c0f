"""The Files API through a live ``tokenmill serve`` with the official openai client: upload,
list, retrieve, download, delete; another tenant's key finds nothing."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.e2e.conftest import Platform
from tests.e2e.test_console import ARTIFACTS, WAIT_MS, _open, _visit
from tests.e2e.test_console import browser as browser  # the fixture, shared

BILLING_SYNC_SECONDS = 1.0  # the default: how soon a gateway sees a top-up


def _tenant_key(platform: Platform, name: str, credit_micros: int = 0) -> str:
    """An inference key of a new tenant (files need no admin role), with ``credit_micros`` of
    prepaid credit once the gateway has seen it (work that embeds is admitted against it)."""
    with platform.http() as http:
        tenant = http.post("/admin/v1/tenants", json={"name": name}).json()
        key = http.post(f"/admin/v1/tenants/{tenant['id']}/keys", json={"name": f"{name}-app"})
        if credit_micros:
            credit = {"amount_micros": credit_micros, "idempotency_key": f"{name}-credit"}
            assert http.post(f"/admin/v1/tenants/{tenant['id']}/credits", json=credit).is_success
    if credit_micros:
        time.sleep(BILLING_SYNC_SECONDS * 1.5)
    return str(key.json()["secret"])


def test_a_file_round_trips_through_the_openai_client(platform: Platform, tmp_path: Path) -> None:
    client = platform.client(_tenant_key(platform, "files-alpha"))
    data = b"".join(b'{"text": "line %d"}\n' % i for i in range(20_000))  # ~400 KB
    path = tmp_path / "notes.jsonl"
    path.write_bytes(data)

    with path.open("rb") as handle:
        created = client.files.create(file=handle, purpose="assistants")
    assert created.id.startswith("file-") and created.object == "file"
    assert created.bytes == len(data) and created.filename == "notes.jsonl"
    assert created.purpose == "assistants" and created.status == "processed"

    assert [f.id for f in client.files.list().data] == [created.id]
    assert [f.id for f in client.files.list(purpose="batch").data] == []
    retrieved = client.files.retrieve(created.id)
    assert retrieved.bytes == created.bytes and retrieved.created_at == created.created_at
    content = client.files.content(created.id).content
    assert hashlib.sha256(content).digest() == hashlib.sha256(data).digest()

    stored = platform.data_dir / "files"  # other tests' tenants keep their files here too
    assert [p.name for p in stored.rglob(created.id)] == [created.id]

    deleted = client.files.delete(created.id)
    assert deleted.id == created.id and deleted.deleted is True
    assert list(stored.rglob(created.id)) == []
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created.id)


def test_another_tenants_key_gets_404(platform: Platform) -> None:
    owner = platform.client(_tenant_key(platform, "files-owner"))
    stranger = platform.client(_tenant_key(platform, "files-stranger"))
    created = owner.files.create(file=("secret.txt", b"only mine"), purpose="user_data")
    for call in (stranger.files.retrieve, stranger.files.content, stranger.files.delete):
        with pytest.raises(openai.NotFoundError) as refused:
            call(created.id)
        assert refused.value.status_code == 404
        assert f"No such File object: {created.id}" in str(refused.value)
    assert stranger.files.list().data == []
    assert owner.files.content(created.id).content == b"only mine"


def test_a_bad_purpose_is_a_400_naming_purpose(platform: Platform) -> None:
    client = platform.client(_tenant_key(platform, "files-careless"))
    with pytest.raises(openai.BadRequestError) as refused:
        client.files.create(file=("a.txt", b"abc"), purpose="poems")  # type: ignore[arg-type]
    assert refused.value.status_code == 400
    assert refused.value.param == "purpose"


def test_the_console_uploads_downloads_and_deletes_a_file(
    browser: Any, platform: Platform, tmp_path: Path
) -> None:
    page = _open(browser, platform, platform.admin_key)
    page.on("dialog", lambda dialog: dialog.accept())
    _visit(page, "files", "#upload")
    source = tmp_path / "console-upload.jsonl"
    source.write_bytes(b'{"text": "from the console"}\n' * 40_000)  # ~1.2 MB: progress events
    page.set_input_files("#file-input", str(source))
    page.select_option("select[name=purpose]", "batch")
    page.click("#upload")
    page.wait_for_selector("#upload-status >> text=Uploaded", timeout=WAIT_MS)
    row = page.wait_for_selector("tr[data-file-id]", timeout=WAIT_MS)
    file_id = row.get_attribute("data-file-id")
    assert "console-upload.jsonl" in row.inner_text() and "batch" in row.inner_text()
    listed = platform.client().files.list().data
    assert [(f.id, f.bytes) for f in listed if f.id == file_id] == [
        (file_id, source.stat().st_size)
    ]
    page.screenshot(path=str(ARTIFACTS / "files.png"), full_page=True)

    with page.expect_download() as downloaded:
        page.click(f"tr[data-file-id='{file_id}'] button >> text=Download")
    assert Path(downloaded.value.path()).read_bytes() == source.read_bytes()

    page.click(f"tr[data-file-id='{file_id}'] button >> text=Delete")
    page.wait_for_selector(f"tr[data-file-id='{file_id}']", state="detached", timeout=WAIT_MS)
    assert all(f.id != file_id for f in platform.client().files.list().data)
    assert page.console_errors == [], page.console_errors
