"""Evaluations' tables (``tokenmill.evals``): an evaluation, and each model's result in it.

A result row per (evaluation, model) is what a model card reads: the latest ones of the
reader's tenant, and those a platform admin published. These tables join ``tables.Base``'s
metadata when ``tokenmill.store`` is imported.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tokenmill.store.tables import Base


class Evaluation(Base):
    __tablename__ = "evals"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    key_id: Mapped[str] = mapped_column(String(40))
    source: Mapped[dict[str, Any]] = mapped_column(JSON)  # a file id, or a dataset's split
    models: Mapped[list[str]] = mapped_column(JSON)
    metrics: Mapped[list[str]] = mapped_column(JSON)
    regex: Mapped[str | None] = mapped_column(Text)
    limit_examples: Mapped[int | None] = mapped_column(Integer)
    publish: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(20))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    examples: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    work_item_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_evals_tenant_created", "tenant_id", "created_at"),)


class EvaluationResult(Base):
    """One model's figures in one evaluation (``metrics.Tally.summary``)."""

    __tablename__ = "eval_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    eval_id: Mapped[str] = mapped_column(ForeignKey("evals.id"))
    model: Mapped[str] = mapped_column(String(300))
    tenant_id: Mapped[str] = mapped_column(String(40))
    published: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[dict[str, Any]] = mapped_column(JSON)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_eval_results_eval_model", "eval_id", "model", unique=True),
        Index("ix_eval_results_model_created", "model", "created_at"),
    )
