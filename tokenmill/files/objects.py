"""The Files API's object and the rules for what a client may ask: purposes, names, expiry.

Pure values and checks; nothing here touches a disk or a database.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tokenmill.errors import InvalidRequest

PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
# Purposes of files the platform writes (a batch's output and errors): listed, never uploaded.
WRITTEN_PURPOSES = ("batch_output",)
EXPIRES_ANCHORS = ("created_at",)
MIN_EXPIRES_SECONDS = 3600  # one hour
MAX_EXPIRES_SECONDS = 2_592_000  # thirty days
MAX_FILENAME_CHARS = 255
FILE_ID = re.compile(r"^file-[0-9a-f]{24}$")


def new_file_id() -> str:
    return f"file-{secrets.token_hex(12)}"


def is_file_id(value: str) -> bool:
    """The shape ``new_file_id`` makes; anything else names no file (and never a path)."""
    return FILE_ID.fullmatch(value) is not None


def validate_purpose(value: str | None, allowed: tuple[str, ...] = PURPOSES) -> str:
    if value is None or value == "":
        raise InvalidRequest("Missing required parameter: 'purpose'.", param="purpose")
    if value not in allowed:
        raise InvalidRequest(
            f"Invalid value for 'purpose': {value!r}; expected one of {', '.join(allowed)}.",
            param="purpose",
        )
    return value


def clean_filename(value: str | None) -> str:
    """The name a client gave, without any directory part; a missing name is refused."""
    name = (value or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name:
        raise InvalidRequest("The 'file' part has no filename.", param="file")
    if len(name) > MAX_FILENAME_CHARS or not name.isprintable():
        raise InvalidRequest(
            f"A filename has 1 to {MAX_FILENAME_CHARS} printable characters.", param="file"
        )
    return name


def parse_expires_after(anchor: str | None, seconds: str | None) -> int | None:
    """``expires_after[anchor]`` and ``expires_after[seconds]`` as sent: seconds, or None."""
    if anchor is None and seconds is None:
        return None
    if anchor not in EXPIRES_ANCHORS:
        raise InvalidRequest(
            f"Invalid value for 'expires_after.anchor': {anchor!r}; expected 'created_at'.",
            param="expires_after.anchor",
        )
    try:
        value = int(seconds or "")
    except ValueError:
        value = -1
    if not MIN_EXPIRES_SECONDS <= value <= MAX_EXPIRES_SECONDS:
        raise InvalidRequest(
            f"Invalid value for 'expires_after.seconds': {seconds!r}; expected an integer "
            f"from {MIN_EXPIRES_SECONDS} to {MAX_EXPIRES_SECONDS}.",
            param="expires_after.seconds",
        )
    return value


@dataclass(frozen=True, slots=True)
class FileInfo:
    """One stored file, as the repository records it."""

    id: str
    tenant_id: str
    key_id: str
    purpose: str
    filename: str
    size_bytes: int
    sha256: str
    created_at: datetime
    expires_at: datetime | None = None

    def as_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.size_bytes,
            "created_at": int(self.created_at.timestamp()),
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
            "expires_at": int(self.expires_at.timestamp()) if self.expires_at else None,
        }


@dataclass(frozen=True, slots=True)
class StoredSpan:
    """A file's bytes held from ``start`` until ``end`` (deleted or expired; None: still)."""

    tenant_id: str
    size_bytes: int
    start: datetime
    end: datetime | None


def no_such_file(file_id: str) -> str:
    return f"No such File object: {file_id}"
