"""The dataset library's objects as the admin API shows them: a dataset, its versions, and a
version's card; ids, names and the checks on what a caller may ask for. Pure values."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tokenmill.datasets.content import SPLITS, Split
from tokenmill.errors import InvalidRequest, NotFound

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
MAX_LICENCE_CHARS = 200
MAX_SOURCE_CHARS = 2000
MAX_PAGE_ROWS = 100
DEFAULT_PAGE_ROWS = 20


def new_dataset_id() -> str:
    return f"ds-{secrets.token_hex(12)}"


def new_version_id() -> str:
    return f"dsv-{secrets.token_hex(12)}"


def no_such_dataset(dataset: str) -> NotFound:
    return NotFound(f"No dataset found with id '{dataset}'.", param="dataset_id", code="not_found")


def no_such_version(dataset: str, version: object) -> NotFound:
    return NotFound(
        f"The dataset '{dataset}' has no version {version}.", param="version", code="not_found"
    )


def check_name(raw: object) -> str:
    if not isinstance(raw, str) or NAME.fullmatch(raw) is None:
        raise InvalidRequest(
            "A dataset name is 1 to 100 letters, digits, '.', '-' or '_', starting with a "
            "letter or digit.",
            param="name",
            code="invalid_value",
        )
    return raw


def name_from_filename(filename: str) -> str:
    """A file's name as a dataset name: ``support chats.jsonl`` -> ``support_chats``."""
    stem = filename.rsplit("/", 1)[-1]
    for suffix in (".jsonl", ".json", ".txt"):
        stem = stem.removesuffix(suffix)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:100]
    return name or "dataset"


def optional_text(raw: object, param: str, max_chars: int) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or len(raw) > max_chars:
        raise InvalidRequest(f"{param} is a string of at most {max_chars} characters.", param=param)
    return raw


def check_split(raw: object) -> Split:
    for split in SPLITS:
        if raw == split:
            return split
    raise InvalidRequest(
        f"split is one of {', '.join(SPLITS)}.", param="split", code="invalid_value"
    )


def check_page(offset: int, limit: int) -> None:
    if offset < 0:
        raise InvalidRequest("offset is 0 or more.", param="offset")
    if not 1 <= limit <= MAX_PAGE_ROWS:
        raise InvalidRequest(f"limit is 1 to {MAX_PAGE_ROWS}.", param="limit")


def _timestamp(when: datetime | None) -> int | None:
    return int(when.timestamp()) if when is not None else None


@dataclass(frozen=True, slots=True)
class DatasetVersionInfo:
    id: str
    dataset_id: str
    version: int
    sha256: str
    format: str
    rows: int
    train_rows: int
    validation_rows: int
    tokens: int
    train_tokens: int
    validation_tokens: int
    tokenizer: str
    licence: str | None
    source: str | None
    split: dict[str, Any]
    training_file_id: str | None
    blob: str
    size_bytes: int
    published_at: datetime | None
    created_by: str
    created_at: datetime

    @property
    def published(self) -> bool:
        return self.published_at is not None

    def card(self, dataset: DatasetInfo) -> dict[str, Any]:
        """What the version is: figures, provenance, and the content's sha256."""
        return {
            "object": "dataset.version",
            "id": self.id,
            "dataset_id": self.dataset_id,
            "name": dataset.name,
            "owner": dataset.tenant_id,
            "version": self.version,
            "format": self.format,
            "rows": self.rows,
            "tokens": self.tokens,
            "tokenizer": self.tokenizer,
            "splits": {
                "train": {"rows": self.train_rows, "tokens": self.train_tokens},
                "validation": {"rows": self.validation_rows, "tokens": self.validation_tokens},
            },
            "split": self.split,
            "licence": self.licence,
            "source": self.source,
            "training_file": self.training_file_id,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "published": self.published,
            "published_at": _timestamp(self.published_at),
            "created_at": _timestamp(self.created_at),
        }

    def reference(self) -> dict[str, Any]:
        """What a fine-tuning job and a model card keep of the version."""
        return {"id": self.dataset_id, "version": self.version, "sha256": self.sha256}


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    id: str
    tenant_id: str
    name: str
    created_by: str
    created_at: datetime
    versions: tuple[DatasetVersionInfo, ...] = ()  # those the reader may see, oldest first

    @property
    def latest(self) -> DatasetVersionInfo | None:
        return self.versions[-1] if self.versions else None

    def as_json(self, *, with_versions: bool = False) -> dict[str, Any]:
        latest = self.latest
        shown: dict[str, Any] = {
            "object": "dataset",
            "id": self.id,
            "name": self.name,
            "owner": self.tenant_id,
            "created_at": _timestamp(self.created_at),
            "published": any(v.published for v in self.versions),
            "latest_version": latest.card(self) if latest is not None else None,
        }
        if with_versions:
            shown["versions"] = [v.card(self) for v in self.versions]
        return shown
