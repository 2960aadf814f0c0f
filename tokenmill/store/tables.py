"""SQLAlchemy 2 tables. Schema changes go through an Alembic migration in ``migrations/``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints: SQLite alters tables by copying them (Alembic batch mode), which can only
# drop or change a constraint that has a name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on every database.

    SQLite has no time zones: SQLAlchemy stores the wall time and hands back a naive value.
    This type refuses naive input, stores UTC, and marks what it reads as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: records are stored in UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime]
    monthly_budget_micros: Mapped[int | None] = mapped_column(BigInteger)
    rpm_limit: Mapped[int | None] = mapped_column(Integer)
    tpm_limit: Mapped[int | None] = mapped_column(Integer)
    concurrency_limit: Mapped[int | None] = mapped_column(Integer)
    # {model: {"rpm": n, "tpm": n, "concurrency": n}}: limits per tenant per model.
    model_limits: Mapped[dict[str, Any] | None]


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(20))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    scopes: Mapped[list[str]]
    allowed_models: Mapped[list[str] | None]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    monthly_budget_micros: Mapped[int | None] = mapped_column(BigInteger)
    rpm_limit: Mapped[int | None] = mapped_column(Integer)
    tpm_limit: Mapped[int | None] = mapped_column(Integer)
    concurrency_limit: Mapped[int | None] = mapped_column(Integer)


class Model(Base):
    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    owner_tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"))
    task: Mapped[str] = mapped_column(String(20))
    artifact: Mapped[str] = mapped_column(String(1000))
    context_tokens: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]


class Deployment(Base):
    __tablename__ = "deployments"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"), index=True)
    mode: Mapped[str] = mapped_column(String(20))
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"))
    engine: Mapped[str] = mapped_column(String(40))
    settings: Mapped[dict[str, Any]]
    min_replicas: Mapped[int] = mapped_column(Integer)
    max_replicas: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime]


class UsageRecord(Base):
    """One row per request that passed authentication; ``request_id`` makes writes idempotent."""

    __tablename__ = "usage_records"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(40))
    key_id: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(200))
    endpoint: Mapped[str] = mapped_column(String(40))
    stream: Mapped[bool] = mapped_column(Boolean)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger)
    cached_tokens: Mapped[int] = mapped_column(BigInteger)
    completion_tokens: Mapped[int] = mapped_column(BigInteger)
    ttft_seconds: Mapped[float | None] = mapped_column(Float)
    duration_seconds: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(20))
    http_status: Mapped[int] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    cost_micros: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    __table_args__ = (
        Index("ix_usage_tenant_created", "tenant_id", "created_at"),
        Index("ix_usage_key_created", "key_id", "created_at"),
    )


class PriceBookEntry(Base):
    """One version of a model's price, in effect from ``effective_at`` until the next version."""

    __tablename__ = "price_books"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    model: Mapped[str] = mapped_column(String(200))
    effective_at: Mapped[datetime]
    input_micros_per_mtok: Mapped[int] = mapped_column(BigInteger)
    cached_input_micros_per_mtok: Mapped[int] = mapped_column(BigInteger)
    output_micros_per_mtok: Mapped[int] = mapped_column(BigInteger)
    request_micros: Mapped[int] = mapped_column(BigInteger)
    accelerator_hour_micros: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("model", "effective_at", name="uq_price_books_model_at"),)


class LedgerEntry(Base):
    """Append-only money movements; a tenant's balance is the sum of its entries.

    ``amount_micros`` is signed: top-ups are positive, usage debits negative. The
    ``idempotency_key`` (``usage:<request id>`` for usage) makes every write safe to repeat.
    """

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(20))
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    key_id: Mapped[str | None] = mapped_column(String(40))
    model: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_ledger_tenant_created", "tenant_id", "created_at"),
        Index("ix_ledger_created", "created_at"),
    )
