"""The Files API through a live ``tokenmill serve`` with the official openai client: upload,
list, retrieve, download, delete; another tenant's key finds nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import openai
import pytest

from tests.e2e.conftest import Platform


def _tenant_key(platform: Platform, name: str) -> str:
    """An inference key of a new tenant: files need no admin role."""
    with platform.http() as http:
        tenant = http.post("/admin/v1/tenants", json={"name": name}).json()
        key = http.post(f"/admin/v1/tenants/{tenant['id']}/keys", json={"name": f"{name}-app"})
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

    stored = platform.data_dir / "files"
    assert [p.name for p in stored.rglob("file-*")] == [created.id]

    deleted = client.files.delete(created.id)
    assert deleted.id == created.id and deleted.deleted is True
    assert list(stored.rglob("file-*")) == []
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
