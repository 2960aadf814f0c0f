"""Local file storage: the sha256 as streamed, atomic commit, abort and delete leave nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tokenmill.files.storage import LocalFileStorage


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_a_committed_blob_has_its_bytes_and_sha256(tmp_path: Path) -> None:
    storage = LocalFileStorage(tmp_path)
    writer = storage.writer("ten_a", "file-1")
    chunks = [b"hello ", b"world", b"\x00" * 100_000]
    for chunk in chunks:
        writer.write(chunk)
    assert writer.size_bytes == 100_011
    assert writer.sha256 == hashlib.sha256(b"".join(chunks)).hexdigest()
    writer.commit()
    assert files_under(tmp_path) == [tmp_path / "ten_a" / "file-1"]
    assert b"".join(storage.read("ten_a", "file-1")) == b"".join(chunks)


def test_nothing_is_visible_before_commit(tmp_path: Path) -> None:
    storage = LocalFileStorage(tmp_path)
    writer = storage.writer("ten_a", "file-1")
    writer.write(b"half")
    assert not storage.path("ten_a", "file-1").exists()
    with pytest.raises(FileNotFoundError):
        storage.read("ten_a", "file-1")
    writer.commit()
    assert storage.path("ten_a", "file-1").read_bytes() == b"half"


def test_abort_removes_the_temporary_file_and_is_safe_twice(tmp_path: Path) -> None:
    storage = LocalFileStorage(tmp_path)
    writer = storage.writer("ten_a", "file-1")
    writer.write(b"x" * 1000)
    assert len(files_under(tmp_path)) == 1  # the hidden part file
    writer.abort()
    writer.abort()
    assert files_under(tmp_path) == []
    with pytest.raises(ValueError):
        writer.write(b"more")


def test_abort_after_commit_keeps_the_blob_and_delete_removes_it(tmp_path: Path) -> None:
    storage = LocalFileStorage(tmp_path)
    writer = storage.writer("ten_a", "file-1")
    writer.write(b"kept")
    writer.commit()
    writer.abort()
    assert storage.path("ten_a", "file-1").read_bytes() == b"kept"
    storage.delete("ten_a", "file-1")
    storage.delete("ten_a", "file-1")
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("name", ["..", "../x", "a/b", ".hidden", "", "a\\b"])
def test_names_that_could_leave_the_root_are_refused(tmp_path: Path, name: str) -> None:
    storage = LocalFileStorage(tmp_path)
    with pytest.raises(ValueError):
        storage.path("ten_a", name)
    with pytest.raises(ValueError):
        storage.path(name, "file-1")
