"""S3 storage through the service: settings pointing at moto's server standing in for S3."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from tokenmill.clock import ManualClock
from tokenmill.control.tenants import TenantRepository
from tokenmill.files.s3 import S3FileStorage
from tokenmill.files.service import FileService
from tokenmill.settings import Settings
from tokenmill.store.db import Database


def test_file_service_built_with_a_bucket_stores_in_moto_s3_server(
    moto_s3_server_url: str,
    moto_s3_bucket: tuple[Any, str],
    database: Database,
    clock: ManualClock,
    tmp_path: Path,
) -> None:
    client, bucket = moto_s3_bucket
    settings = Settings(
        data_dir=tmp_path,
        files_s3_bucket=bucket,
        files_s3_endpoint_url=moto_s3_server_url,
        files_s3_prefix="tm/files/",
        files_s3_region="us-east-1",
    )
    service = FileService.build(settings, database, clock)
    assert isinstance(service.storage, S3FileStorage)
    tenant = TenantRepository(database, clock).create("acme")
    body = b"line\n" * 50_000
    started = service.start_upload(tenant.id, "key_1")
    for i in range(0, len(body), 64 * 1024):
        started.write(body[i : i + 64 * 1024])
    info = service.finish_upload(started, "notes.txt", "assistants")
    assert info.size_bytes == len(body) and info.sha256 == hashlib.sha256(body).hexdigest()
    listing = client.list_objects_v2(Bucket=bucket)
    assert [item["Key"] for item in listing["Contents"]] == [f"tm/files/{tenant.id}/{info.id}"]
    stored = client.get_object(Bucket=bucket, Key=f"tm/files/{tenant.id}/{info.id}")["Body"]
    assert hashlib.sha256(stored.read()).digest() == hashlib.sha256(body).digest()
    _, chunks = service.content(tenant.id, info.id)
    assert b"".join(chunks) == body
    assert not (tmp_path / "files").exists()


def test_without_a_bucket_the_files_stay_on_local_disk(
    database: Database, clock: ManualClock, tmp_path: Path
) -> None:
    service = FileService.build(Settings(data_dir=tmp_path), database, clock)
    assert not isinstance(service.storage, S3FileStorage)


def test_a_missing_object_reads_as_file_not_found(moto_s3_bucket: tuple[Any, str]) -> None:
    client, bucket = moto_s3_bucket
    with pytest.raises(FileNotFoundError):
        S3FileStorage(client, bucket).read("ten_a", "never-written")


def test_a_file_past_the_multipart_threshold_goes_up_in_parts_and_reads_back(
    moto_s3_bucket: tuple[Any, str],
) -> None:
    client, bucket = moto_s3_bucket
    storage = S3FileStorage(client, bucket)
    body = bytes(range(256)) * (9 * 4096)  # 9 MiB, past boto3's 8 MiB multipart threshold
    writer = storage.writer("ten_a", "big")
    for i in range(0, len(body), 1024 * 1024):
        writer.write(body[i : i + 1024 * 1024])
    writer.commit()
    etag = client.head_object(Bucket=bucket, Key="files/ten_a/big")["ETag"]
    assert "-" in etag  # a multipart object's ETag is <md5 of part md5s>-<parts>
    assert b"".join(storage.read("ten_a", "big")) == body
