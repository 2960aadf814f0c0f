"""Vector store storage over time: a span per indexed file (its chunks' and vectors' bytes,
from indexing until removal), billed per GiB-day like files at the ``vector_stores`` price.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "vector_store_storage",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("vector_store_id", sa.String(40), nullable=False),
        sa.Column("file_id", sa.String(40), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_vector_store_storage"),
    )
    op.create_index(
        "ix_vector_store_storage_store_file", "vector_store_storage", ["vector_store_id", "file_id"]
    )
    op.create_index("ix_vector_store_storage_started", "vector_store_storage", ["started_at"])
    # Files indexed before this revision are held from now on.
    op.execute(
        "INSERT INTO vector_store_storage "
        "(tenant_id, vector_store_id, file_id, size_bytes, started_at) "
        "SELECT tenant_id, vector_store_id, file_id, usage_bytes, CURRENT_TIMESTAMP "
        "FROM vector_store_files WHERE status = 'completed' AND usage_bytes > 0"
    )


def downgrade() -> None:
    op.drop_index("ix_vector_store_storage_started", "vector_store_storage")
    op.drop_index("ix_vector_store_storage_store_file", "vector_store_storage")
    op.drop_table("vector_store_storage")
