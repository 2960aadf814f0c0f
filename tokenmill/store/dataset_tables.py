"""The dataset library's tables (``tokenmill.datasets``): datasets and their versions.

A dataset is a tenant's name; a version is immutable content under it, stored as Parquet
through the Files API's storage (``blob`` names it under the owner's tenant). A version's
``sha256`` is its content's (``datasets.content``): one version per content and dataset.
These tables join ``tables.Base``'s metadata when ``tokenmill.store`` is imported.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tokenmill.store.tables import Base


class Dataset(Base):
    """A tenant's dataset: a name, and the number its next version gets."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    name: Mapped[str] = mapped_column(String(200))
    next_version: Mapped[int] = mapped_column(Integer)  # never reused, even after a delete
    created_by: Mapped[str] = mapped_column(String(40))  # a key id, or "cli"
    created_at: Mapped[datetime]

    __table_args__ = (Index("ix_datasets_tenant_name", "tenant_id", "name", unique=True),)


class DatasetVersion(Base):
    """One immutable version: its card's figures, its split, and where its rows are."""

    __tablename__ = "dataset_versions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"))
    version: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(20))  # chat or prompt_completion
    rows: Mapped[int] = mapped_column(Integer)
    train_rows: Mapped[int] = mapped_column(Integer)
    validation_rows: Mapped[int] = mapped_column(Integer)
    tokens: Mapped[int] = mapped_column(BigInteger)
    train_tokens: Mapped[int] = mapped_column(BigInteger)
    validation_tokens: Mapped[int] = mapped_column(BigInteger)
    tokenizer: Mapped[str] = mapped_column(String(200))  # the model whose tokens these are
    licence: Mapped[str | None] = mapped_column(String(200))
    source: Mapped[str | None] = mapped_column(Text)
    split: Mapped[dict[str, Any]] = mapped_column(JSON)  # how the validation rows were chosen
    training_file_id: Mapped[str | None] = mapped_column(String(40))
    blob: Mapped[str] = mapped_column(String(100))  # the Parquet file's storage name
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    published_at: Mapped[datetime | None]
    created_by: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_dataset_versions_dataset_version", "dataset_id", "version", unique=True),
        Index("ix_dataset_versions_dataset_sha256", "dataset_id", "sha256", unique=True),
    )
