"""Fine-tuning jobs, their checkpoints, and the price of a trained token.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("price_books") as batch:
        batch.add_column(
            sa.Column(
                "training_micros_per_mtok", sa.BigInteger(), nullable=False, server_default="0"
            )
        )
    op.create_table(
        "fine_tuning_jobs",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("base_served_name", sa.String(200), nullable=False),
        sa.Column("training_file_id", sa.String(40), nullable=False),
        sa.Column("validation_file_id", sa.String(40), nullable=True),
        sa.Column("suffix", sa.String(64), nullable=True),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("hyperparameters", sa.JSON(), nullable=False),
        sa.Column("resolved", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("control", sa.String(10), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("fine_tuned_model", sa.String(300), nullable=True),
        sa.Column("trained_tokens", sa.BigInteger(), nullable=True),
        sa.Column("estimated_tokens", sa.BigInteger(), nullable=True),
        sa.Column("reserved_micros", sa.BigInteger(), nullable=False),
        sa.Column("cost_micros", sa.BigInteger(), nullable=True),
        sa.Column("validation", sa.JSON(), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("work_item_id", sa.String(40), nullable=True),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("started_at", _WHEN, nullable=True),
        sa.Column("finished_at", _WHEN, nullable=True),
        sa.Column("estimated_finish", _WHEN, nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_fine_tuning_jobs_tenant_id_tenants"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_fine_tuning_jobs"),
    )
    op.create_index(
        "ix_fine_tuning_jobs_tenant_created", "fine_tuning_jobs", ["tenant_id", "created_at"]
    )
    op.create_table(
        "fine_tuning_checkpoints",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("job_id", sa.String(40), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["fine_tuning_jobs.id"],
            name="fk_fine_tuning_checkpoints_job_id_fine_tuning_jobs",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_fine_tuning_checkpoints"),
    )
    op.create_index(
        "ix_fine_tuning_checkpoints_job_step",
        "fine_tuning_checkpoints",
        ["job_id", "step"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("ix_fine_tuning_checkpoints_job_step", table_name="fine_tuning_checkpoints")
    op.drop_table("fine_tuning_checkpoints")
    op.drop_index("ix_fine_tuning_jobs_tenant_created", table_name="fine_tuning_jobs")
    op.drop_table("fine_tuning_jobs")
    with op.batch_alter_table("price_books") as batch:
        batch.drop_column("training_micros_per_mtok")
