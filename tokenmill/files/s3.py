"""File bytes in an S3-compatible object store (AWS S3, MinIO, Ceph, R2).

Keys are ``<prefix><tenant id>/<file id>``, the names checked as for the local disk. A write
spools to a temporary file while the sha256 and size are computed; ``commit`` uploads it in
one go (boto3 switches to multipart for large files), so a reader never sees half an object,
and ``abort`` drops the spool. Both are safe to call more than once. boto3 is imported only
when this storage is built; credentials come from boto3's usual chain.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Any

from tokenmill.files.storage import READ_CHUNK_BYTES, HashingWriter, _safe

SPOOL_IN_MEMORY_BYTES = 8 * 1024**2


class S3BlobWriter(HashingWriter):
    """One blob spooled locally; uploaded to ``key`` only on commit."""

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES)  # noqa: SIM115
        super().__init__(spool)  # closed in commit/abort

    def commit(self) -> None:
        if self._file is None:
            raise ValueError("commit after commit or abort")
        try:
            self._file.seek(0)
            self._client.upload_fileobj(self._file, self._bucket, self._key)
        finally:
            self.abort()

    def abort(self) -> None:
        """Drops the spool (a committed object is the storage's ``delete`` to remove)."""
        if self._file is not None:
            self._file.close()
            self._file = None


class S3FileStorage:
    """``s3://<bucket>/<prefix><tenant id>/<file id>``."""

    def __init__(self, client: Any, bucket: str, prefix: str = "files/") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    @classmethod
    def connect(
        cls, bucket: str, prefix: str, endpoint_url: str | None, region: str | None
    ) -> S3FileStorage:
        import boto3  # only when S3 is configured

        client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)
        return cls(client, bucket, prefix)

    def key(self, tenant_id: str, file_id: str) -> str:
        return f"{self.prefix}{_safe(tenant_id)}/{_safe(file_id)}"

    def writer(self, tenant_id: str, file_id: str) -> S3BlobWriter:
        return S3BlobWriter(self.client, self.bucket, self.key(tenant_id, file_id))

    def read(self, tenant_id: str, file_id: str) -> Iterator[bytes]:
        """The bytes in chunks; raises ``FileNotFoundError`` at once when there are none."""
        key = self.key(tenant_id, file_id)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except self.client.exceptions.NoSuchKey as exc:
            raise FileNotFoundError(f"s3://{self.bucket}/{key}") from exc
        return _chunks(response["Body"])

    def delete(self, tenant_id: str, file_id: str) -> None:
        """Idempotent: S3 answers a delete of a missing key with success."""
        self.client.delete_object(Bucket=self.bucket, Key=self.key(tenant_id, file_id))


def _chunks(body: Any) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(READ_CHUNK_BYTES)
    finally:
        body.close()
