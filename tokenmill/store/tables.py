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
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy import false as sa_false
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
    share_weight: Mapped[int | None] = mapped_column(Integer)  # fair share; null is 1
    service_tier: Mapped[str | None] = mapped_column(String(20))  # default tier; null: default
    service_tiers: Mapped[list[str] | None]  # tiers its keys may use; null: all


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
    revoked_at: Mapped[datetime | None] = mapped_column(index=True)
    updated_at: Mapped[datetime | None] = mapped_column(index=True)  # terms last changed
    monthly_budget_micros: Mapped[int | None] = mapped_column(BigInteger)
    rpm_limit: Mapped[int | None] = mapped_column(Integer)
    tpm_limit: Mapped[int | None] = mapped_column(Integer)
    concurrency_limit: Mapped[int | None] = mapped_column(Integer)
    service_tier: Mapped[str | None] = mapped_column(String(20))  # null: the tenant's
    service_tiers: Mapped[list[str] | None]  # within the tenant's; null: the tenant's


class Model(Base):
    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    owner_tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"))
    task: Mapped[str] = mapped_column(String(20))
    artifact: Mapped[str] = mapped_column(String(1000))
    context_tokens: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    engine: Mapped[str] = mapped_column(String(40), default="tokenmill", server_default="tokenmill")
    card: Mapped[dict[str, Any] | None]
    published: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    default_version: Mapped[str | None] = mapped_column(String(100))
    updated_at: Mapped[datetime | None]


class ModelVersion(Base):
    """One artifact of a model with its engine settings; ``facts`` are read off the artifact."""

    __tablename__ = "model_versions"

    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"), primary_key=True)
    version: Mapped[str] = mapped_column(String(100), primary_key=True)
    artifact: Mapped[str] = mapped_column(String(1000))
    sha256: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    settings: Mapped[dict[str, Any]]
    facts: Mapped[dict[str, Any]]
    measured: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]


class ModelAlias(Base):
    """A stable name (``chat-small``) for one version; moving it needs no client change."""

    __tablename__ = "model_aliases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"))
    version: Mapped[str] = mapped_column(String(100))
    owner_tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"))
    updated_at: Mapped[datetime]


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
    version: Mapped[str | None] = mapped_column(String(100))
    idle_seconds: Mapped[int] = mapped_column(Integer, default=300, server_default="300")
    # {"target_load_per_replica", "scale_out_delay_seconds", "scale_in_delay_seconds"}
    scaling: Mapped[dict[str, Any] | None]
    # {"accelerator_kind", "region"}
    constraints: Mapped[dict[str, Any] | None]
    updated_at: Mapped[datetime | None]
    # Why its replicas keep failing to come up, while they do (None: healthy).
    failing_reason: Mapped[str | None] = mapped_column(Text)
    failing_since: Mapped[datetime | None]


class ReplicaRun(Base):
    """One replica's life, from start to stop: where it ran and, for dedicated ones, its bill."""

    __tablename__ = "replica_runs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id"), index=True)
    tenant_id: Mapped[str | None] = mapped_column(String(40))
    served_name: Mapped[str] = mapped_column(String(300))
    node_id: Mapped[str] = mapped_column(String(200))
    accelerator_ids: Mapped[list[str]]
    url: Mapped[str | None] = mapped_column(String(300))
    state: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime]
    ready_at: Mapped[datetime | None]
    stopped_at: Mapped[datetime | None]
    restarts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    exit_reason: Mapped[str | None] = mapped_column(Text)  # how a failed replica ended


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
    service_tier: Mapped[str] = mapped_column(
        String(20), default="default", server_default="default"
    )
    app_id: Mapped[str | None] = mapped_column(String(40))  # the App a response ran for

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
    storage_gib_day_micros: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    training_micros_per_mtok: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    service_tier: Mapped[str] = mapped_column(
        String(20), default="default", server_default="default"
    )

    __table_args__ = (
        UniqueConstraint(
            "model", "service_tier", "effective_at", name="uq_price_books_model_tier_at"
        ),
    )


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


class WorkItem(Base):
    """One piece of background work (indexing a file, a fine-tuning job, a batch), leased by a
    worker while it runs; ``kind`` says which handler runs it."""

    __tablename__ = "work_items"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(60))
    tenant_id: Mapped[str | None] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(20))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    run_after: Mapped[datetime]
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None]
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    progress: Mapped[float | None] = mapped_column(Float)
    result: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_work_items_claim", "status", "kind", "run_after"),
        Index("ix_work_items_tenant", "tenant_id", "created_at"),
    )


class WorkEvent(Base):
    """What a work item said while it ran: messages and metrics, in order."""

    __tablename__ = "work_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("work_items.id"), index=True)
    at: Mapped[datetime]
    level: Mapped[str] = mapped_column(String(10))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None]


class StoredFile(Base):
    """One file of the Files API; its bytes live in the file store, not in the database.

    Deleting marks ``deleted_at`` (the row stays, for the record); listings and the storage a
    tenant is counted for skip deleted and expired files.
    """

    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    key_id: Mapped[str] = mapped_column(String(40))
    purpose: Mapped[str] = mapped_column(String(20))
    filename: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_files_tenant_created", "tenant_id", "created_at"),)


class VectorStore(Base):
    """A vector store: a tenant's searchable collection of files.

    ``chunks_version`` grows whenever the store's chunks change, so a process holding a store's
    vectors in memory knows, with one small read, when to load them again.
    """

    __tablename__ = "vector_stores"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    name: Mapped[str | None] = mapped_column(String(256))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    status: Mapped[str] = mapped_column(String(20))
    expires_after: Mapped[dict[str, Any] | None]
    expires_at: Mapped[datetime | None]
    last_active_at: Mapped[datetime]
    usage_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    chunks_version: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime]

    __table_args__ = (Index("ix_vector_stores_tenant_created", "tenant_id", "created_at"),)


class VectorStoreFile(Base):
    """A file in a vector store (its id is the file's id), and how its indexing went."""

    __tablename__ = "vector_store_files"

    vector_store_id: Mapped[str] = mapped_column(ForeignKey("vector_stores.id"), primary_key=True)
    file_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(40))
    batch_id: Mapped[str | None] = mapped_column(String(40))
    filename: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20))
    last_error: Mapped[dict[str, Any] | None]
    attributes: Mapped[dict[str, Any]]
    chunking_strategy: Mapped[dict[str, Any]]
    usage_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_vector_store_files_store_created", "vector_store_id", "created_at"),
        Index("ix_vector_store_files_batch", "batch_id"),
    )


class VectorStoreFileBatch(Base):
    """Files added to a vector store together; its counts come from its files' statuses."""

    __tablename__ = "vector_store_file_batches"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    vector_store_id: Mapped[str] = mapped_column(ForeignKey("vector_stores.id"), index=True)
    tenant_id: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime]


class VectorStoreChunk(Base):
    """One chunk of an indexed file: its text, where it lies in the file's text, its
    attributes (a copy of the file's), its embedding (float32, little-endian) and its length
    in search terms (for BM25)."""

    __tablename__ = "vector_store_chunks"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    vector_store_id: Mapped[str] = mapped_column(String(40))
    file_id: Mapped[str] = mapped_column(String(40))
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    char_start: Mapped[int] = mapped_column(Integer)
    char_end: Mapped[int] = mapped_column(Integer)
    token_count: Mapped[int] = mapped_column(Integer)
    term_count: Mapped[int] = mapped_column(Integer)
    attributes: Mapped[dict[str, Any]]
    embedding: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (
        UniqueConstraint("vector_store_id", "file_id", "position"),
        Index("ix_vector_store_chunks_file", "file_id"),
    )


class VectorStorePosting(Base):
    """Keyword search's inverted index: how often a term occurs in a chunk of a store.

    A search reads a term's postings in key order: SQLite keeps the rows in that order (without
    rowid) and PostgreSQL's key index carries the frequency, so neither visits rows one by one.
    """

    __tablename__ = "vector_store_postings"

    vector_store_id: Mapped[str] = mapped_column(String(40))
    term: Mapped[str] = mapped_column(String(64))
    chunk_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    term_frequency: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        PrimaryKeyConstraint(
            "vector_store_id",
            "term",
            "chunk_id",
            name="pk_vector_store_postings",
            postgresql_include=["term_frequency"],
        ),
        Index("ix_vector_store_postings_chunk", "chunk_id"),
        {"sqlite_with_rowid": False},
    )


class VectorStoreStorage(Base):
    """A file's indexed bytes (chunks and vectors) held in a store from ``started_at`` until
    ``ended_at`` (None: still held): what vector store storage is billed on, day by day."""

    __tablename__ = "vector_store_storage"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    tenant_id: Mapped[str] = mapped_column(String(40))
    vector_store_id: Mapped[str] = mapped_column(String(40))
    file_id: Mapped[str] = mapped_column(String(40))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_vector_store_storage_store_file", "vector_store_id", "file_id"),
        Index("ix_vector_store_storage_started", "started_at"),
    )


class Batch(Base):
    """A batch of the Batch API: an input file of requests run in the background, the output
    and error files it wrote, and where it is in its life (one timestamp per status)."""

    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    key_id: Mapped[str] = mapped_column(String(40))
    endpoint: Mapped[str] = mapped_column(String(40))
    input_file_id: Mapped[str] = mapped_column(String(40))
    completion_window: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20))
    total: Mapped[int] = mapped_column(Integer, default=0)
    completed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    output_file_id: Mapped[str | None] = mapped_column(String(40))
    error_file_id: Mapped[str | None] = mapped_column(String(40))
    errors: Mapped[dict[str, Any] | None]  # validation errors: {"object": "list", "data": [...]}
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    work_item_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]
    in_progress_at: Mapped[datetime | None]
    finalizing_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]
    expired_at: Mapped[datetime | None]
    cancelling_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    expires_at: Mapped[datetime]

    __table_args__ = (Index("ix_batches_tenant_created", "tenant_id", "created_at"),)


class BatchLine(Base):
    """One finished line of a batch: its answer (status code and body) or its error. A line
    with a row is never run again, so a batch resumed after a restart picks up where it was."""

    __tablename__ = "batch_lines"

    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id"), primary_key=True)
    line_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    custom_id: Mapped[str] = mapped_column(Text)
    status_code: Mapped[int | None] = mapped_column(Integer)
    request_id: Mapped[str | None] = mapped_column(String(64))
    response: Mapped[dict[str, Any] | None]
    error: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]
