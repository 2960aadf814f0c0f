"""Leases, the fleet's published routes and gateways' load reports (separate roles).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("acquired_at", _WHEN, nullable=False),
        sa.Column("expires_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )
    op.create_table(
        "fleet_routes",
        sa.Column("key", sa.String(400), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_fleet_routes"),
    )
    op.create_table(
        "gateway_loads",
        sa.Column("gateway_id", sa.String(200), nullable=False),
        sa.Column("pool_key", sa.String(300), nullable=False),
        sa.Column("waiting", sa.Integer(), nullable=False),
        sa.Column("in_flight", sa.Integer(), nullable=False),
        sa.Column("arrived_total", sa.Integer(), nullable=False),
        sa.Column("idle_seconds", sa.Float(), nullable=True),
        sa.Column("replicas", sa.JSON(), nullable=False),
        sa.Column("updated_at", _WHEN, nullable=False),
        sa.PrimaryKeyConstraint("gateway_id", "pool_key", name="pk_gateway_loads"),
    )


def downgrade() -> None:
    op.drop_table("gateway_loads")
    op.drop_table("fleet_routes")
    op.drop_table("leases")
