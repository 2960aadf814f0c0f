"""The fleet: deployment versions, scaling and constraints, and each replica's run.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("version", sa.String(100), nullable=True))
        batch.add_column(
            sa.Column("idle_seconds", sa.Integer(), nullable=False, server_default="300")
        )
        batch.add_column(sa.Column("scaling", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("constraints", sa.JSON(), nullable=True))
        batch.add_column(_timestamp("updated_at", nullable=True))
    op.create_table(
        "replica_runs",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("deployment_id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=True),
        sa.Column("served_name", sa.String(300), nullable=False),
        sa.Column("node_id", sa.String(200), nullable=False),
        sa.Column("accelerator_ids", sa.JSON(), nullable=False),
        sa.Column("url", sa.String(300), nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
        _timestamp("started_at"),
        _timestamp("ready_at", nullable=True),
        _timestamp("stopped_at", nullable=True),
        sa.Column("restarts", sa.Integer(), nullable=False, server_default="0"),
        sa.ForeignKeyConstraint(
            ["deployment_id"], ["deployments.id"], name="fk_replica_runs_deployment_id_deployments"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_replica_runs"),
    )
    op.create_index("ix_replica_runs_deployment_id", "replica_runs", ["deployment_id"])


def downgrade() -> None:
    op.drop_index("ix_replica_runs_deployment_id", "replica_runs")
    op.drop_table("replica_runs")
    with op.batch_alter_table("deployments") as batch:
        for column in ("updated_at", "constraints", "scaling", "idle_seconds", "version"):
            batch.drop_column(column)
