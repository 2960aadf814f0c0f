"""Service tiers: a default and the allowed tiers per tenant and key, prices per tier, and the
tier each request was served in.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("tenants", "api_keys"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("service_tier", sa.String(20), nullable=True))
            batch.add_column(sa.Column("service_tiers", sa.JSON(), nullable=True))
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(
            sa.Column("service_tier", sa.String(20), nullable=False, server_default="default")
        )
    with op.batch_alter_table("price_books") as batch:
        batch.add_column(
            sa.Column("service_tier", sa.String(20), nullable=False, server_default="default")
        )
        batch.drop_constraint("uq_price_books_model_at", type_="unique")
        batch.create_unique_constraint(
            "uq_price_books_model_tier_at", ["model", "service_tier", "effective_at"]
        )


def downgrade() -> None:
    with op.batch_alter_table("price_books") as batch:
        batch.drop_constraint("uq_price_books_model_tier_at", type_="unique")
        batch.create_unique_constraint("uq_price_books_model_at", ["model", "effective_at"])
        batch.drop_column("service_tier")
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("service_tier")
    for table in ("tenants", "api_keys"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("service_tiers")
            batch.drop_column("service_tier")
