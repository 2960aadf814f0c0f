"""The Vector Stores API's objects and the rules for what a client may ask (pure).

A vector store, a file in it and a batch of files, as the repository records them and as the
API shows them (``as_openai``); ids, ``metadata``, ``expires_after`` and the statuses derived
from the files' statuses. Nothing here touches a database.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, Literal, Protocol, TypeVar

from tokenmill.errors import InvalidRequest

FileStatus = Literal["in_progress", "completed", "cancelled", "failed"]
FILE_STATUSES: tuple[FileStatus, ...] = ("in_progress", "completed", "cancelled", "failed")
ERROR_CODES = ("unsupported_file", "invalid_file", "server_error")
MAX_METADATA_KEYS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
MAX_NAME_CHARS = 256
MIN_EXPIRES_DAYS = 1
MAX_EXPIRES_DAYS = 365


def new_vector_store_id() -> str:
    return f"vs_{secrets.token_hex(12)}"


def new_batch_id() -> str:
    return f"vsfb_{secrets.token_hex(12)}"


def no_such_store(store_id: str) -> str:
    return f"No vector store found with id '{store_id}'."


def no_such_file(store_id: str, file_id: str) -> str:
    return f"No file found with id '{file_id}' in vector store '{store_id}'."


def no_such_batch(store_id: str, batch_id: str) -> str:
    return f"No file batch found with id '{batch_id}' in vector store '{store_id}'."


def parse_name(raw: object) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or len(raw) > MAX_NAME_CHARS:
        raise InvalidRequest(
            f"name must be a string of at most {MAX_NAME_CHARS} characters.", param="name"
        )
    return raw


def parse_metadata(raw: object, param: str = "metadata") -> dict[str, str]:
    """Up to 16 pairs: keys of at most 64 characters, string values of at most 512."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InvalidRequest("metadata must be an object.", param=param)
    if len(raw) > MAX_METADATA_KEYS:
        raise InvalidRequest(
            f"metadata may have at most {MAX_METADATA_KEYS} keys (got {len(raw)}).", param=param
        )
    clean: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_METADATA_KEY_CHARS:
            raise InvalidRequest(
                f"A metadata key is a string of 1 to {MAX_METADATA_KEY_CHARS} characters.",
                param=param,
            )
        if not isinstance(value, str) or len(value) > MAX_METADATA_VALUE_CHARS:
            raise InvalidRequest(
                f"metadata[{key!r}] must be a string of at most {MAX_METADATA_VALUE_CHARS} "
                "characters.",
                param=f"{param}.{key}",
            )
        clean[key] = value
    return clean


def parse_expires_after(raw: object) -> dict[str, Any] | None:
    """``{"anchor": "last_active_at", "days": 1..365}``, or None for a store that stays."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise InvalidRequest("expires_after must be an object.", param="expires_after")
    extra = sorted(str(k) for k in raw if k not in ("anchor", "days"))
    if extra:
        raise InvalidRequest(f"Unknown field(s): {', '.join(extra)}.", param="expires_after")
    if raw.get("anchor") != "last_active_at":
        raise InvalidRequest(
            f"Invalid value for 'expires_after.anchor': {raw.get('anchor')!r}; expected "
            "'last_active_at'.",
            param="expires_after.anchor",
        )
    days = raw.get("days")
    if (
        isinstance(days, bool)
        or not isinstance(days, int)
        or not MIN_EXPIRES_DAYS <= days <= MAX_EXPIRES_DAYS
    ):
        raise InvalidRequest(
            f"Invalid value for 'expires_after.days': {days!r}; expected an integer from "
            f"{MIN_EXPIRES_DAYS} to {MAX_EXPIRES_DAYS}.",
            param="expires_after.days",
        )
    return {"anchor": "last_active_at", "days": days}


def expiry(expires_after: Mapping[str, Any] | None, last_active_at: datetime) -> datetime | None:
    if expires_after is None:
        return None
    return last_active_at + timedelta(days=int(expires_after["days"]))


@dataclass(frozen=True, slots=True)
class FileCounts:
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0

    @classmethod
    def of(cls, by_status: Mapping[str, int]) -> FileCounts:
        return cls(**{s: int(by_status.get(s, 0)) for s in FILE_STATUSES})

    @property
    def total(self) -> int:
        return self.in_progress + self.completed + self.failed + self.cancelled

    def as_openai(self) -> dict[str, int]:
        return {
            "in_progress": self.in_progress,
            "completed": self.completed,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "total": self.total,
        }


def store_status(counts: FileCounts, expires_at: datetime | None, now: datetime) -> str:
    """``expired`` once past ``expires_at``; ``in_progress`` while a file is being indexed."""
    if expires_at is not None and expires_at <= now:
        return "expired"
    return "in_progress" if counts.in_progress else "completed"


def batch_status(stored: str, counts: FileCounts) -> str:
    """A batch is ``cancelled`` once cancelled, ``in_progress`` while a file is, ``failed``
    when every file failed, ``completed`` otherwise."""
    if stored == "cancelled":
        return "cancelled"
    if counts.in_progress:
        return "in_progress"
    if counts.total and counts.failed == counts.total:
        return "failed"
    return "completed"


def _seconds(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment is not None else None


@dataclass(frozen=True, slots=True)
class NewChunk:
    """A chunk ready to store: where it lies in the file's text, and its embedding."""

    position: int
    text: str
    char_start: int
    char_end: int
    token_count: int
    embedding: bytes  # float32, little-endian


@dataclass(frozen=True, slots=True)
class VectorStoreInfo:
    id: str
    tenant_id: str
    name: str | None
    metadata: dict[str, str]
    status: str
    file_counts: FileCounts
    usage_bytes: int
    expires_after: dict[str, Any] | None
    expires_at: datetime | None
    last_active_at: datetime
    created_at: datetime

    def as_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "vector_store",
            "created_at": _seconds(self.created_at),
            "name": self.name,
            "usage_bytes": self.usage_bytes,
            "file_counts": self.file_counts.as_openai(),
            "status": self.status,
            "expires_after": self.expires_after,
            "expires_at": _seconds(self.expires_at),
            "last_active_at": _seconds(self.last_active_at),
            "metadata": dict(self.metadata),
        }


@dataclass(frozen=True, slots=True)
class VectorStoreFileInfo:
    id: str  # the file's id
    vector_store_id: str
    tenant_id: str
    filename: str
    status: str
    last_error: dict[str, str] | None
    attributes: dict[str, Any]
    chunking_strategy: dict[str, Any]
    usage_bytes: int
    created_at: datetime
    batch_id: str | None = None

    def as_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "vector_store.file",
            "usage_bytes": self.usage_bytes,
            "created_at": _seconds(self.created_at),
            "vector_store_id": self.vector_store_id,
            "status": self.status,
            "last_error": self.last_error,
            "chunking_strategy": self.chunking_strategy,
            "attributes": dict(self.attributes),
        }


@dataclass(frozen=True, slots=True)
class FileBatchInfo:
    id: str
    vector_store_id: str
    tenant_id: str
    status: str
    file_counts: FileCounts
    created_at: datetime
    file_ids: tuple[str, ...] = field(default=())

    def as_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "vector_store.files_batch",
            "created_at": _seconds(self.created_at),
            "vector_store_id": self.vector_store_id,
            "status": self.status,
            "file_counts": self.file_counts.as_openai(),
        }


class Listed(Protocol):
    """What a page lists: an id (the cursor of the next page) and OpenAI's shape."""

    @property
    def id(self) -> str | int: ...

    def as_openai(self) -> dict[str, Any]: ...


T = TypeVar("T", bound=Listed)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing, in the order asked for."""

    data: list[T]
    has_more: bool

    def as_openai(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [item.as_openai() for item in self.data],
            "first_id": self.data[0].id if self.data else None,
            "last_id": self.data[-1].id if self.data else None,
            "has_more": self.has_more,
        }
