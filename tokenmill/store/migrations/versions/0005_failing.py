"""Deployments that keep failing to start say why; failed replica runs say how they ended.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("failing_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("replica_runs") as batch:
        batch.add_column(sa.Column("exit_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("replica_runs") as batch:
        batch.drop_column("exit_reason")
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("failing_since")
        batch.drop_column("failing_reason")
