"""Apps and their versions; usage records name the App a response ran for.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "apps",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("published_version", sa.Integer(), nullable=True),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("embed", sa.Boolean(), nullable=False),
        sa.Column("embed_key_id", sa.String(40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_apps_tenant_id_tenants"),
        sa.PrimaryKeyConstraint("id", name="pk_apps"),
    )
    op.create_index("ix_apps_tenant", "apps", ["tenant_id"])
    op.create_table(
        "app_versions",
        sa.Column("app_id", sa.String(40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("note", sa.String(500), nullable=True),
        sa.Column("created_by", sa.String(40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["app_id"], ["apps.id"], name="fk_app_versions_app_id_apps"),
        sa.PrimaryKeyConstraint("app_id", "version", name="pk_app_versions"),
    )
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(sa.Column("app_id", sa.String(40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("app_id")
    op.drop_table("app_versions")
    op.drop_index("ix_apps_tenant", "apps")
    op.drop_table("apps")
