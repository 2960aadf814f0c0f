"""Service levels per model and service tier, read from the usage records of a window.

For each (model, tier): requests, how many were answered, refusals and failures by error
code, time-to-first-token and time-per-output-token percentiles of streamed answers, how often
the first token came within the tier's target (attainment), and availability (the share of
requests the platform did not fail with a 5xx). Percentiles are computed here, not in SQL, so
they are the same on SQLite and PostgreSQL; the newest ``MAX_RECORDS`` of a window are read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from tokenmill.store.db import Database
from tokenmill.store.tables import UsageRecord

MAX_RECORDS = 200_000


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of already sorted values; None for none."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(slots=True)
class LevelRow:
    model: str
    service_tier: str
    requests: int = 0
    answered: int = 0
    server_errors: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # by error code
    ttft_target_seconds: float | None = None
    ttft_p50: float | None = None
    ttft_p95: float | None = None
    ttft_p99: float | None = None
    tpot_p50: float | None = None
    tpot_p99: float | None = None
    attainment: float | None = None  # streamed answers with the first token within target
    availability: float = 1.0

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class _Samples:
    ttft: list[float] = field(default_factory=list)
    tpot: list[float] = field(default_factory=list)


def service_levels(
    db: Database,
    targets: Mapping[str, float],
    *,
    tenant_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[LevelRow]:
    """One row per (model, tier) with requests in [since, until), of one tenant or all."""
    r = UsageRecord
    query = select(
        r.model,
        r.service_tier,
        r.status,
        r.http_status,
        r.error_code,
        r.stream,
        r.ttft_seconds,
        r.duration_seconds,
        r.completion_tokens,
    )
    if tenant_id is not None:
        query = query.where(r.tenant_id == tenant_id)
    if since is not None:
        query = query.where(r.created_at >= since)
    if until is not None:
        query = query.where(r.created_at < until)
    query = query.order_by(r.created_at.desc()).limit(MAX_RECORDS)
    rows: dict[tuple[str, str], LevelRow] = {}
    samples: dict[tuple[str, str], _Samples] = {}
    with db.session() as session:
        for model, tier, status, http, code, stream, first, duration, tokens in session.execute(
            query
        ):
            key = (model, tier)
            row = rows.get(key)
            if row is None:
                row = rows[key] = LevelRow(model, tier, ttft_target_seconds=targets.get(tier))
                samples[key] = _Samples()
            row.requests += 1
            if status == "ok":
                row.answered += 1
                if stream and first is not None:
                    samples[key].ttft.append(first)
                    if tokens > 1:
                        samples[key].tpot.append((duration - first) / (tokens - 1))
            elif code:
                row.errors[code] = row.errors.get(code, 0) + 1
            if http >= 500:
                row.server_errors += 1
    for key, row in rows.items():
        firsts, gaps = sorted(samples[key].ttft), sorted(samples[key].tpot)
        row.ttft_p50, row.ttft_p95, row.ttft_p99 = (
            percentile(firsts, f) for f in (0.5, 0.95, 0.99)
        )
        row.tpot_p50, row.tpot_p99 = percentile(gaps, 0.5), percentile(gaps, 0.99)
        target = row.ttft_target_seconds
        if firsts and target is not None:
            row.attainment = sum(1 for t in firsts if t <= target) / len(firsts)
        row.availability = 1 - row.server_errors / row.requests
    return [rows[key] for key in sorted(rows)]
