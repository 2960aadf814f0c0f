"""Billing: price books, the ledger, usage cost, budgets and rate limits on tenants and keys.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_LIMITS = ("rpm_limit", "tpm_limit", "concurrency_limit")


def _timestamp(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "price_books",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        _timestamp("effective_at"),
        sa.Column("input_micros_per_mtok", sa.BigInteger(), nullable=False),
        sa.Column("cached_input_micros_per_mtok", sa.BigInteger(), nullable=False),
        sa.Column("output_micros_per_mtok", sa.BigInteger(), nullable=False),
        sa.Column("request_micros", sa.BigInteger(), nullable=False),
        sa.Column("accelerator_hour_micros", sa.BigInteger(), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_price_books"),
        sa.UniqueConstraint("model", "effective_at", name="uq_price_books_model_at"),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("amount_micros", sa.BigInteger(), nullable=False),
        sa.Column("idempotency_key", sa.String(100), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=True),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("note", sa.String(500), nullable=True),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_entries"),
        sa.UniqueConstraint("idempotency_key", name="uq_ledger_entries_idempotency_key"),
    )
    op.create_index("ix_ledger_tenant_created", "ledger_entries", ["tenant_id", "created_at"])
    op.create_index("ix_ledger_created", "ledger_entries", ["created_at"])
    with op.batch_alter_table("usage_records") as batch:
        batch.add_column(
            sa.Column("cost_micros", sa.BigInteger(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("monthly_budget_micros", sa.BigInteger(), nullable=True))
        for name in _LIMITS:
            batch.add_column(sa.Column(name, sa.Integer(), nullable=True))
        batch.add_column(sa.Column("model_limits", sa.JSON(), nullable=True))
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("monthly_budget_micros", sa.BigInteger(), nullable=True))
        for name in _LIMITS:
            batch.add_column(sa.Column(name, sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        for name in (*_LIMITS, "monthly_budget_micros"):
            batch.drop_column(name)
    with op.batch_alter_table("tenants") as batch:
        for name in ("model_limits", *_LIMITS, "monthly_budget_micros"):
            batch.drop_column(name)
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("cost_micros")
    op.drop_index("ix_ledger_created", table_name="ledger_entries")
    op.drop_index("ix_ledger_tenant_created", table_name="ledger_entries")
    op.drop_table("ledger_entries")
    op.drop_table("price_books")
