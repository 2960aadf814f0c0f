"""Keyword postings read in key order: SQLite's table without rowid (its rows clustered by
store, term and chunk), PostgreSQL's key index carrying the term frequency (index-only scans).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = "vector_store_id, term, chunk_id, term_frequency"


def _postings(name: str, *, with_rowid: bool) -> None:
    op.create_table(
        name,
        sa.Column("vector_store_id", sa.String(40), nullable=False),
        sa.Column("term", sa.String(64), nullable=False),
        sa.Column("chunk_id", sa.Integer(), nullable=False),
        sa.Column("term_frequency", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("vector_store_id", "term", "chunk_id", name=f"pk_{name}"),
        sqlite_with_rowid=with_rowid,
    )


def _rebuild_sqlite(*, with_rowid: bool) -> None:
    _postings("vector_store_postings_new", with_rowid=with_rowid)
    op.execute(
        f"INSERT INTO vector_store_postings_new ({COLUMNS}) "
        f"SELECT {COLUMNS} FROM vector_store_postings"
    )
    op.drop_index("ix_vector_store_postings_chunk", "vector_store_postings")
    op.drop_table("vector_store_postings")
    op.rename_table("vector_store_postings_new", "vector_store_postings")
    op.create_index("ix_vector_store_postings_chunk", "vector_store_postings", ["chunk_id"])


def _primary_key(include: str) -> None:
    op.execute(
        "ALTER TABLE vector_store_postings DROP CONSTRAINT pk_vector_store_postings, "
        "ADD CONSTRAINT pk_vector_store_postings PRIMARY KEY (vector_store_id, term, chunk_id)"
        + include
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(with_rowid=False)
    else:
        _primary_key(" INCLUDE (term_frequency)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(with_rowid=True)
    else:
        _primary_key("")
