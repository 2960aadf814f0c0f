"""When an API key's terms last changed, so every gateway can drop its cached copy.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_api_keys_updated_at", "api_keys", ["updated_at"])
    op.create_index("ix_api_keys_revoked_at", "api_keys", ["revoked_at"])


def downgrade() -> None:
    op.drop_index("ix_api_keys_revoked_at", table_name="api_keys")
    op.drop_index("ix_api_keys_updated_at", table_name="api_keys")
    op.drop_column("api_keys", "updated_at")
