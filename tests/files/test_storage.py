"""File storage, on local disk and on moto's server standing in for S3: the sha256 as
streamed, nothing visible before commit, abort and delete leave nothing."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tokenmill.files.s3 import S3FileStorage
from tokenmill.files.storage import FileStorage, LocalFileStorage


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


StoredNames = Callable[[], list[str]]


@pytest.fixture(params=["local_disk", "s3_on_moto_server"])
def storage_and_names(
    request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[FileStorage, StoredNames]:
    """A storage, and what it holds as ``tenant/file`` names (temporary files included)."""
    if request.param == "local_disk":
        local = LocalFileStorage(tmp_path)
        return local, lambda: [p.relative_to(tmp_path).as_posix() for p in files_under(tmp_path)]
    client, bucket = request.getfixturevalue("moto_s3_bucket")
    s3 = S3FileStorage(client, bucket, prefix="files/")

    def keys() -> list[str]:
        listing: dict[str, Any] = client.list_objects_v2(Bucket=bucket)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    return s3, keys


def test_a_committed_blob_has_its_bytes_and_sha256(
    storage_and_names: tuple[FileStorage, StoredNames],
) -> None:
    storage, names = storage_and_names
    writer = storage.writer("ten_a", "file-1")
    chunks = [b"hello ", b"world", b"\x00" * 100_000]
    for chunk in chunks:
        writer.write(chunk)
    assert writer.size_bytes == 100_011
    assert writer.sha256 == hashlib.sha256(b"".join(chunks)).hexdigest()
    writer.commit()
    assert [n.removeprefix("files/") for n in names()] == ["ten_a/file-1"]
    assert b"".join(storage.read("ten_a", "file-1")) == b"".join(chunks)


def test_nothing_is_visible_before_commit(
    storage_and_names: tuple[FileStorage, StoredNames],
) -> None:
    storage, _ = storage_and_names
    writer = storage.writer("ten_a", "file-1")
    writer.write(b"half")
    with pytest.raises(FileNotFoundError):
        storage.read("ten_a", "file-1")
    writer.commit()
    assert b"".join(storage.read("ten_a", "file-1")) == b"half"


def test_abort_leaves_nothing_and_is_safe_twice(
    storage_and_names: tuple[FileStorage, StoredNames],
) -> None:
    storage, names = storage_and_names
    writer = storage.writer("ten_a", "file-1")
    writer.write(b"x" * 1000)
    writer.abort()
    writer.abort()
    assert names() == []
    with pytest.raises(ValueError):
        writer.write(b"more")
    with pytest.raises(ValueError):
        writer.commit()
    with pytest.raises(FileNotFoundError):
        storage.read("ten_a", "file-1")


def test_abort_after_commit_keeps_the_blob_and_delete_removes_it(
    storage_and_names: tuple[FileStorage, StoredNames],
) -> None:
    storage, names = storage_and_names
    writer = storage.writer("ten_a", "file-1")
    writer.write(b"kept")
    writer.commit()
    writer.abort()
    assert b"".join(storage.read("ten_a", "file-1")) == b"kept"
    storage.delete("ten_a", "file-1")
    storage.delete("ten_a", "file-1")
    assert names() == []
    with pytest.raises(FileNotFoundError):
        storage.read("ten_a", "file-1")


def test_a_local_part_file_is_hidden_next_to_its_place(tmp_path: Path) -> None:
    storage = LocalFileStorage(tmp_path)
    writer = storage.writer("ten_a", "file-1")
    writer.write(b"x")
    assert files_under(tmp_path) == [tmp_path / "ten_a" / ".file-1.part"]
    assert not storage.path("ten_a", "file-1").exists()
    writer.abort()


@pytest.mark.parametrize("name", ["..", "../x", "a/b", ".hidden", "", "a\\b"])
def test_names_that_could_leave_the_root_are_refused(
    storage_and_names: tuple[FileStorage, StoredNames], name: str
) -> None:
    storage, _ = storage_and_names
    with pytest.raises(ValueError):
        storage.writer("ten_a", name)
    with pytest.raises(ValueError):
        storage.read(name, "file-1")
    with pytest.raises(ValueError):
        storage.delete("ten_a", name)
