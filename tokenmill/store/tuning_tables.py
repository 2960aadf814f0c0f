"""Fine-tuning's tables: jobs and the checkpoints they keep (``tokenmill.tuning``).

A job's events are its work item's events (``work_events``). These tables join
``tables.Base``'s metadata when ``tokenmill.store`` is imported.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tokenmill.store.tables import Base


class FineTuningJob(Base):
    """One fine-tuning job, in OpenAI's terms, with what billing and the worker keep."""

    __tablename__ = "fine_tuning_jobs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    key_id: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(200))  # the base model as the client named it
    base_served_name: Mapped[str] = mapped_column(String(200))
    training_file_id: Mapped[str] = mapped_column(String(40))
    validation_file_id: Mapped[str | None] = mapped_column(String(40))
    suffix: Mapped[str | None] = mapped_column(String(64))
    seed: Mapped[int] = mapped_column(BigInteger)
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON)  # as asked: "auto" or numbers
    resolved: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # as trained
    status: Mapped[str] = mapped_column(String(20))
    control: Mapped[str | None] = mapped_column(String(10))  # "pause" or "cancel", when asked
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    fine_tuned_model: Mapped[str | None] = mapped_column(String(300))
    trained_tokens: Mapped[int | None] = mapped_column(BigInteger)
    estimated_tokens: Mapped[int | None] = mapped_column(BigInteger)
    reserved_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_micros: Mapped[int | None] = mapped_column(BigInteger)
    validation: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the files' reports
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    work_item_id: Mapped[str | None] = mapped_column(String(40))
    runs: Mapped[int] = mapped_column(Integer, default=0)  # work items started (resumes)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    estimated_finish: Mapped[datetime | None]

    __table_args__ = (Index("ix_fine_tuning_jobs_tenant_created", "tenant_id", "created_at"),)


class FineTuningCheckpoint(Base):
    """A checkpoint a job kept (one per epoch, and one when paused), with its metrics."""

    __tablename__ = "fine_tuning_checkpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("fine_tuning_jobs.id"))
    step: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    path: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]

    __table_args__ = (Index("ix_fine_tuning_checkpoints_job_step", "job_id", "step", unique=True),)
