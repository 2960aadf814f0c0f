"""Vector stores: stores, their files and file batches, chunks with their embeddings, and the
postings keyword search scores with BM25.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _row_id(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "vector_stores",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(256), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("expires_after", sa.JSON(), nullable=True),
        _timestamp("expires_at", nullable=True),
        _timestamp("last_active_at"),
        sa.Column("usage_bytes", sa.BigInteger(), nullable=False),
        sa.Column("chunks_version", sa.BigInteger(), nullable=False),
        _timestamp("created_at"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_vector_stores_tenant_id_tenants"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_vector_stores"),
    )
    op.create_index("ix_vector_stores_tenant_created", "vector_stores", ["tenant_id", "created_at"])
    op.create_table(
        "vector_store_files",
        sa.Column("vector_store_id", sa.String(40), nullable=False),
        sa.Column("file_id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("batch_id", sa.String(40), nullable=True),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("last_error", sa.JSON(), nullable=True),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("chunking_strategy", sa.JSON(), nullable=False),
        sa.Column("usage_bytes", sa.BigInteger(), nullable=False),
        _timestamp("created_at"),
        sa.ForeignKeyConstraint(
            ["vector_store_id"],
            ["vector_stores.id"],
            name="fk_vector_store_files_vector_store_id_vector_stores",
        ),
        sa.PrimaryKeyConstraint("vector_store_id", "file_id", name="pk_vector_store_files"),
    )
    op.create_index(
        "ix_vector_store_files_store_created",
        "vector_store_files",
        ["vector_store_id", "created_at"],
    )
    op.create_index("ix_vector_store_files_batch", "vector_store_files", ["batch_id"])
    op.create_table(
        "vector_store_file_batches",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("vector_store_id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        _timestamp("created_at"),
        sa.ForeignKeyConstraint(
            ["vector_store_id"],
            ["vector_stores.id"],
            name="fk_vector_store_file_batches_vector_store_id_vector_stores",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_vector_store_file_batches"),
    )
    op.create_index(
        "ix_vector_store_file_batches_vector_store_id",
        "vector_store_file_batches",
        ["vector_store_id"],
    )
    op.create_table(
        "vector_store_chunks",
        _row_id("id"),
        sa.Column("vector_store_id", sa.String(40), nullable=False),
        sa.Column("file_id", sa.String(40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("char_start", sa.Integer(), nullable=False),
        sa.Column("char_end", sa.Integer(), nullable=False),
        sa.Column("token_count", sa.Integer(), nullable=False),
        sa.Column("term_count", sa.Integer(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_vector_store_chunks"),
        sa.UniqueConstraint(
            "vector_store_id",
            "file_id",
            "position",
            name="uq_vector_store_chunks_vector_store_id",
        ),
    )
    op.create_index("ix_vector_store_chunks_file", "vector_store_chunks", ["file_id"])
    op.create_table(
        "vector_store_postings",
        sa.Column("vector_store_id", sa.String(40), nullable=False),
        sa.Column("term", sa.String(64), nullable=False),
        _row_id("chunk_id"),
        sa.Column("term_frequency", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "vector_store_id", "term", "chunk_id", name="pk_vector_store_postings"
        ),
    )
    op.create_index("ix_vector_store_postings_chunk", "vector_store_postings", ["chunk_id"])


def downgrade() -> None:
    op.drop_index("ix_vector_store_postings_chunk", "vector_store_postings")
    op.drop_table("vector_store_postings")
    op.drop_index("ix_vector_store_chunks_file", "vector_store_chunks")
    op.drop_table("vector_store_chunks")
    op.drop_index("ix_vector_store_file_batches_vector_store_id", "vector_store_file_batches")
    op.drop_table("vector_store_file_batches")
    op.drop_index("ix_vector_store_files_batch", "vector_store_files")
    op.drop_index("ix_vector_store_files_store_created", "vector_store_files")
    op.drop_table("vector_store_files")
    op.drop_index("ix_vector_stores_tenant_created", "vector_stores")
    op.drop_table("vector_stores")
