"""Evaluations and each model's result in them.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "evals",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("source", sa.JSON(), nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("regex", sa.Text(), nullable=True),
        sa.Column("limit_examples", sa.Integer(), nullable=True),
        sa.Column("publish", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("examples", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("work_item_id", sa.String(40), nullable=True),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.Column("started_at", _WHEN, nullable=True),
        sa.Column("finished_at", _WHEN, nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_evals_tenant_id_tenants"),
        sa.PrimaryKeyConstraint("id", name="pk_evals"),
    )
    op.create_index("ix_evals_tenant_created", "evals", ["tenant_id", "created_at"])
    op.create_table(
        "eval_results",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("eval_id", sa.String(40), nullable=False),
        sa.Column("model", sa.String(300), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.Column("source", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("created_at", _WHEN, nullable=False),
        sa.ForeignKeyConstraint(["eval_id"], ["evals.id"], name="fk_eval_results_eval_id_evals"),
        sa.PrimaryKeyConstraint("id", name="pk_eval_results"),
    )
    op.create_index("ix_eval_results_eval_model", "eval_results", ["eval_id", "model"], unique=True)
    op.create_index("ix_eval_results_model_created", "eval_results", ["model", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_eval_results_model_created", table_name="eval_results")
    op.drop_index("ix_eval_results_eval_model", table_name="eval_results")
    op.drop_table("eval_results")
    op.drop_index("ix_evals_tenant_created", table_name="evals")
    op.drop_table("evals")
