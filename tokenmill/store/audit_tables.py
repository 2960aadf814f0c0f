"""The audit log's table: one row per admin action, chained by hashes (``control.audit``).

It joins ``tables.Base``'s metadata when ``tokenmill.store`` is imported.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tokenmill.store.tables import Base


class AuditEntry(Base):
    """``hash`` is sha256 over ``prev_hash`` and the entry's other fields: changing, removing
    or reordering a row breaks every hash after it."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime]
    actor_key_id: Mapped[str] = mapped_column(String(40))
    actor_role: Mapped[str] = mapped_column(String(20))
    actor_tenant_id: Mapped[str | None] = mapped_column(String(40))
    tenant_id: Mapped[str | None] = mapped_column(String(40))  # the tenant acted upon
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(500))
    status: Mapped[int] = mapped_column(Integer)
    address: Mapped[str | None] = mapped_column(String(64))
    request: Mapped[Any] = mapped_column(JSON, nullable=True)
    before: Mapped[Any] = mapped_column(JSON, nullable=True)
    after: Mapped[Any] = mapped_column(JSON, nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_audit_tenant_seq", "tenant_id", "seq"),
        Index("ix_audit_created", "created_at"),
    )
