"""Where a file's bytes live: a small interface, and the local disk under the data directory.

A write goes to a hidden temporary file next to its final place, the sha256 computed as the
bytes stream through; ``commit`` renames it into place, so a reader never sees half a file,
and ``abort`` removes it. Both are safe to call more than once.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO, Protocol

READ_CHUNK_BYTES = 1024 * 1024
SAFE_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}$")


class BlobWriter(Protocol):
    @property
    def size_bytes(self) -> int: ...

    @property
    def sha256(self) -> str: ...

    def write(self, chunk: bytes) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


class FileStorage(Protocol):
    def writer(self, tenant_id: str, file_id: str) -> BlobWriter: ...

    def read(self, tenant_id: str, file_id: str) -> Iterator[bytes]: ...

    def delete(self, tenant_id: str, file_id: str) -> None: ...


def _safe(name: str) -> str:
    """A tenant or file id as one path component: no separators, no ``..``."""
    if SAFE_NAME.fullmatch(name) is None or name.startswith("."):
        raise ValueError(f"not a safe storage name: {name!r}")
    return name


class HashingWriter:
    """Bytes written to a temporary file while their size and sha256 are counted."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file: IO[bytes] | None = file
        self._hash = hashlib.sha256()
        self._size_bytes = 0

    @property
    def size_bytes(self) -> int:
        return self._size_bytes

    @property
    def sha256(self) -> str:
        """Hex digest of the bytes written so far."""
        return self._hash.hexdigest()

    def write(self, chunk: bytes) -> None:
        if self._file is None:
            raise ValueError("write after commit or abort")
        self._file.write(chunk)
        self._hash.update(chunk)
        self._size_bytes += len(chunk)


class LocalBlobWriter(HashingWriter):
    """One blob being written to ``<final>.part``; visible only once committed."""

    def __init__(self, final: Path) -> None:
        self._final = final
        self._temp = final.with_name(f".{final.name}.part")
        final.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(open(self._temp, "xb"))  # noqa: SIM115 (closed in commit/abort)
        self._done = False

    def commit(self) -> None:
        if self._file is None:
            raise ValueError("commit after commit or abort")
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            os.replace(self._temp, self._final)
        except BaseException:
            self.abort()
            raise
        self._done = True

    def abort(self) -> None:
        """Drops the temporary file (a committed blob is the storage's ``delete`` to remove)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if not self._done:
            self._temp.unlink(missing_ok=True)


class LocalFileStorage:
    """``<root>/<tenant id>/<file id>``; the root is ``<data dir>/files``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, tenant_id: str, file_id: str) -> Path:
        return self.root / _safe(tenant_id) / _safe(file_id)

    def writer(self, tenant_id: str, file_id: str) -> LocalBlobWriter:
        return LocalBlobWriter(self.path(tenant_id, file_id))

    def read(self, tenant_id: str, file_id: str) -> Iterator[bytes]:
        """The bytes in chunks; raises ``FileNotFoundError`` at once when there are none."""
        handle = open(self.path(tenant_id, file_id), "rb")  # noqa: SIM115 (closed below)
        return _chunks(handle)

    def delete(self, tenant_id: str, file_id: str) -> None:
        self.path(tenant_id, file_id).unlink(missing_ok=True)


def _chunks(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(READ_CHUNK_BYTES):
            yield chunk
