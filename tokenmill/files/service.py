"""Files for a tenant: upload within the limits, read, list, delete. Used by the gateway and CLI.

An upload is a ``FileUpload``: bytes go to a temporary blob as they arrive and are counted
against the per-file limit and the room left in the tenant's quota; ``finish`` checks the
quota again under the repository's lock, records the file and renames the blob into place.
Any refusal aborts the blob, so a refused upload leaves nothing on disk or in the table.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from tokenmill.clock import Clock
from tokenmill.errors import InvalidRequest, NotFound, PayloadTooLarge
from tokenmill.files.objects import FileInfo, is_file_id, new_file_id, no_such_file
from tokenmill.files.repository import FilePage, FileRepository, quota_message
from tokenmill.files.s3 import S3FileStorage
from tokenmill.files.storage import BlobWriter, FileStorage, LocalFileStorage
from tokenmill.settings import Settings
from tokenmill.store.db import Database

UNLIMITED_BYTES = 2**62


@dataclass(frozen=True, slots=True)
class FileLimits:
    max_bytes: int
    tenant_quota_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> FileLimits:
        return cls(settings.files_max_bytes, settings.files_tenant_quota_bytes)


def too_large_message(max_bytes: int) -> str:
    return f"The file is larger than the limit of {max_bytes} bytes per file."


class FileUpload:
    """One upload in flight; ``abort`` is safe to call on every path, any number of times."""

    def __init__(
        self,
        tenant_id: str,
        key_id: str,
        file_id: str,
        writer: BlobWriter,
        limits: FileLimits,
        used_bytes: int,
    ) -> None:
        self.tenant_id = tenant_id
        self.key_id = key_id
        self.file_id = file_id
        self._writer = writer
        self._limits = limits
        self._used_bytes = used_bytes
        self.committed = False

    @property
    def size_bytes(self) -> int:
        return self._writer.size_bytes

    @property
    def sha256(self) -> str:
        return self._writer.sha256

    def commit(self) -> None:
        self._writer.commit()
        self.committed = True

    def write(self, chunk: bytes) -> None:
        size = self._writer.size_bytes + len(chunk)
        if size > self._limits.max_bytes:
            self.abort()
            raise PayloadTooLarge(too_large_message(self._limits.max_bytes), param="file")
        if self._used_bytes + size > self._limits.tenant_quota_bytes:
            self.abort()
            raise PayloadTooLarge(
                quota_message(self._limits.tenant_quota_bytes, self._used_bytes),
                param="file",
                code="storage_quota_exceeded",
            )
        self._writer.write(chunk)

    def abort(self) -> None:
        self._writer.abort()


class FileService:
    def __init__(
        self, repository: FileRepository, storage: FileStorage, limits: FileLimits, clock: Clock
    ) -> None:
        self.repository = repository
        self.storage = storage
        self.limits = limits
        self._clock = clock

    @classmethod
    def build(cls, settings: Settings, db: Database, clock: Clock) -> FileService:
        storage: FileStorage
        if settings.files_s3_bucket:
            storage = S3FileStorage.connect(
                settings.files_s3_bucket,
                settings.files_s3_prefix,
                settings.files_s3_endpoint_url,
                settings.files_s3_region,
            )
        else:
            storage = LocalFileStorage(settings.ensure_data_dir() / "files")
        return cls(FileRepository(db, clock), storage, FileLimits.from_settings(settings), clock)

    def start_upload(self, tenant_id: str, key_id: str) -> FileUpload:
        file_id = new_file_id()
        used = self.repository.stored_bytes(tenant_id)
        writer = self.storage.writer(tenant_id, file_id)
        return FileUpload(tenant_id, key_id, file_id, writer, self.limits, used)

    def finish_upload(
        self,
        upload: FileUpload,
        filename: str,
        purpose: str,
        expires_after_seconds: int | None = None,
    ) -> FileInfo:
        """Records the file and makes its bytes visible; on any refusal, aborts the upload."""
        try:
            if upload.size_bytes == 0:
                raise InvalidRequest("The file is empty.", param="file", code="empty_file")
            now = self._clock.utcnow()
            expires_at = None
            if expires_after_seconds is not None:
                expires_at = now + timedelta(seconds=expires_after_seconds)
            info = FileInfo(
                id=upload.file_id,
                tenant_id=upload.tenant_id,
                key_id=upload.key_id,
                purpose=purpose,
                filename=filename,
                size_bytes=upload.size_bytes,
                sha256=upload.sha256,
                created_at=now,
                expires_at=expires_at,
            )
            return self.repository.add(info, self.limits.tenant_quota_bytes, upload.commit)
        except BaseException:
            upload.abort()
            if upload.committed:  # placed, but the row was not written: take it away again
                self.storage.delete(upload.tenant_id, upload.file_id)
            raise

    def write(
        self, tenant_id: str, key_id: str, filename: str, purpose: str, data: bytes
    ) -> FileInfo:
        """A file the platform writes for a tenant (a batch's output): recorded like an upload,
        outside the tenant's quota (it holds the results of work already paid for)."""
        file_id = new_file_id()
        writer = self.storage.writer(tenant_id, file_id)
        writer.write(data)
        info = FileInfo(
            id=file_id,
            tenant_id=tenant_id,
            key_id=key_id,
            purpose=purpose,
            filename=filename,
            size_bytes=writer.size_bytes,
            sha256=writer.sha256,
            created_at=self._clock.utcnow(),
        )
        try:
            return self.repository.add(info, UNLIMITED_BYTES, writer.commit)
        except BaseException:
            writer.abort()
            self.storage.delete(tenant_id, file_id)
            raise

    def get(self, tenant_id: str, file_id: str) -> FileInfo:
        found = self.repository.get(tenant_id, file_id) if is_file_id(file_id) else None
        if found is None:
            raise NotFound(no_such_file(file_id), param="file_id")
        return found

    def content(self, tenant_id: str, file_id: str) -> tuple[FileInfo, Iterator[bytes]]:
        info = self.get(tenant_id, file_id)
        try:
            return info, self.storage.read(tenant_id, file_id)
        except FileNotFoundError:
            raise NotFound(no_such_file(file_id), param="file_id") from None

    def list(
        self,
        tenant_id: str,
        *,
        purpose: str | None = None,
        limit: int = 10_000,
        order: str = "desc",
        after: str | None = None,
    ) -> FilePage:
        return self.repository.list(
            tenant_id, purpose=purpose, limit=limit, order=order, after=after
        )

    def delete(self, tenant_id: str, file_id: str) -> FileInfo:
        found = self.repository.mark_deleted(tenant_id, file_id) if is_file_id(file_id) else None
        if found is None:
            raise NotFound(no_such_file(file_id), param="file_id")
        self.storage.delete(tenant_id, file_id)
        return found

    def purge_expired(self) -> int:
        """Removes expired files' bytes and marks them deleted; returns how many."""
        expired = self.repository.expired()
        for info in expired:
            self.repository.mark_expired_deleted(info.id)
            self.storage.delete(info.tenant_id, info.id)
        return len(expired)
