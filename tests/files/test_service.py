"""Uploads within the limits; every refusal leaves nothing on disk or in the table."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.files.test_storage import files_under
from tokenmill.clock import ManualClock
from tokenmill.control.tenants import TenantRepository
from tokenmill.errors import InvalidRequest, NotFound, PayloadTooLarge
from tokenmill.files.objects import FileInfo
from tokenmill.files.repository import FileRepository
from tokenmill.files.service import FileLimits, FileService
from tokenmill.files.storage import LocalFileStorage
from tokenmill.store.db import Database


@pytest.fixture
def service(database: Database, clock: ManualClock, tmp_path: Path) -> FileService:
    return FileService(
        FileRepository(database, clock),
        LocalFileStorage(tmp_path / "files"),
        FileLimits(max_bytes=100, tenant_quota_bytes=250),
        clock,
    )


@pytest.fixture
def tenant(database: Database, clock: ManualClock) -> str:
    return TenantRepository(database, clock).create("alpha").id


def upload(
    service: FileService, tenant: str, data: bytes, expires_after_seconds: int | None = None
) -> FileInfo:
    started = service.start_upload(tenant, "key_1")
    for i in range(0, len(data), 7):
        started.write(data[i : i + 7])
    return service.finish_upload(started, "a.txt", "assistants", expires_after_seconds)


def test_an_upload_is_recorded_with_its_hash_and_read_back(
    service: FileService, tenant: str, tmp_path: Path
) -> None:
    data = b"0123456789" * 10
    info = upload(service, tenant, data)
    got = service.get(tenant, info.id)
    assert got.size_bytes == 100 and got.sha256 == hashlib.sha256(data).hexdigest()
    _, chunks = service.content(tenant, got.id)
    assert b"".join(chunks) == data
    assert files_under(tmp_path / "files") == [tmp_path / "files" / tenant / got.id]
    service.delete(tenant, got.id)
    assert files_under(tmp_path / "files") == []
    with pytest.raises(NotFound, match=f"No such File object: {got.id}"):
        service.get(tenant, got.id)
    with pytest.raises(NotFound):
        service.delete(tenant, got.id)


def test_one_byte_over_the_file_limit_is_refused_and_leaves_nothing(
    service: FileService, tenant: str, tmp_path: Path
) -> None:
    with pytest.raises(PayloadTooLarge) as refused:
        upload(service, tenant, b"x" * 101)
    assert refused.value.status == 413
    assert refused.value.message == "The file is larger than the limit of 100 bytes per file."
    assert files_under(tmp_path / "files") == []
    assert service.list(tenant).data == []


def test_an_empty_file_is_refused_and_leaves_nothing(
    service: FileService, tenant: str, tmp_path: Path
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        upload(service, tenant, b"")
    assert refused.value.status == 400 and refused.value.param == "file"
    assert files_under(tmp_path / "files") == []


def test_the_quota_refuses_while_streaming_and_frees_on_delete(
    service: FileService, tenant: str, tmp_path: Path
) -> None:
    first = upload(service, tenant, b"a" * 100)
    upload(service, tenant, b"b" * 100)
    with pytest.raises(PayloadTooLarge) as refused:
        upload(service, tenant, b"c" * 51)
    assert refused.value.code == "storage_quota_exceeded"
    assert len(files_under(tmp_path / "files")) == 2
    service.delete(tenant, first.id)
    upload(service, tenant, b"c" * 100)
    assert service.repository.stored_bytes(tenant) == 200


def test_expired_files_are_purged_from_disk(
    service: FileService, tenant: str, clock: ManualClock, tmp_path: Path
) -> None:
    info = upload(service, tenant, b"soon gone", expires_after_seconds=3600)
    assert service.get(tenant, info.id).expires_at is not None
    assert service.purge_expired() == 0
    clock.advance(3601)
    assert service.purge_expired() == 1
    assert files_under(tmp_path / "files") == []


def test_ids_not_of_the_file_shape_are_simply_not_found(service: FileService, tenant: str) -> None:
    for bad in ("../etc", "file-", "nope"):
        with pytest.raises(NotFound):
            service.get(tenant, bad)


async def test_the_sweep_loop_removes_expired_files(
    service: FileService, tenant: str, clock: ManualClock, tmp_path: Path
) -> None:
    import asyncio
    import contextlib

    from tokenmill.files.sweep import ExpiredFileSweep

    upload(service, tenant, b"kept")
    upload(service, tenant, b"soon gone", expires_after_seconds=3600)
    clock.advance(3601)
    task = asyncio.create_task(ExpiredFileSweep(service, 3600).run())
    for _ in range(200):
        if len(files_under(tmp_path / "files")) == 1:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert len(files_under(tmp_path / "files")) == 1
    assert [f.size_bytes for f in service.list(tenant).data] == [4]


def test_a_file_the_platform_writes_is_the_tenants_outside_its_limits(
    service: FileService, tenant: str
) -> None:
    data = b'{"custom_id": "a"}\n' * 20  # past the file limit (100) and the quota (250)
    info = service.write(tenant, "key_1", "batch_1_output.jsonl", "batch_output", data)
    assert info.purpose == "batch_output" and info.size_bytes == len(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert service.get(tenant, info.id) == info
    assert b"".join(service.content(tenant, info.id)[1]) == data
    assert [f.id for f in service.list(tenant, purpose="batch_output").data] == [info.id]
