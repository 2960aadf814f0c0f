"""The dataset library: datasets and their immutable, content-hashed versions.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("next_version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(40), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_datasets_tenant_id_tenants"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_datasets"),
    )
    op.create_index("ix_datasets_tenant_name", "datasets", ["tenant_id", "name"], unique=True)
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("dataset_id", sa.String(40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("format", sa.String(20), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("train_rows", sa.Integer(), nullable=False),
        sa.Column("validation_rows", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("train_tokens", sa.BigInteger(), nullable=False),
        sa.Column("validation_tokens", sa.BigInteger(), nullable=False),
        sa.Column("tokenizer", sa.String(200), nullable=False),
        sa.Column("licence", sa.String(200), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("split", sa.JSON(), nullable=False),
        sa.Column("training_file_id", sa.String(40), nullable=True),
        sa.Column("blob", sa.String(100), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("published_at", _WHEN, nullable=True),
        sa.Column("created_by", sa.String(40), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name="fk_dataset_versions_dataset_id_datasets"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_dataset_versions"),
    )
    op.create_index(
        "ix_dataset_versions_dataset_version",
        "dataset_versions",
        ["dataset_id", "version"],
        unique=True,
    )
    op.create_index(
        "ix_dataset_versions_dataset_sha256",
        "dataset_versions",
        ["dataset_id", "sha256"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("ix_dataset_versions_dataset_sha256", table_name="dataset_versions")
    op.drop_index("ix_dataset_versions_dataset_version", table_name="dataset_versions")
    op.drop_table("dataset_versions")
    op.drop_index("ix_datasets_tenant_name", table_name="datasets")
    op.drop_table("datasets")
