"""Live traffic over a recent window, read from the usage records: the console's overview.

Requests, token throughput, time to first token and errors over the last ``window_seconds``,
for one tenant or all of them, with the same numbers per time bucket for a chart. The
summary is a pure function of the records (``summarize``); the repository only reads them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from tokenmill.billing.usage import UsageEvent, UsageRepository
from tokenmill.clock import Clock
from tokenmill.store.db import Database
from tokenmill.store.tables import UsageRecord

MAX_WINDOW_SECONDS = 24 * 3600
BUCKETS = 30


@dataclass(frozen=True, slots=True)
class Sample:
    """What the overview needs of one usage record."""

    created_at: datetime
    prompt_tokens: int
    completion_tokens: int
    ttft_seconds: float | None
    status: str


@dataclass(frozen=True, slots=True)
class Bucket:
    start: str  # ISO 8601, UTC
    requests: int
    prompt_tokens: int
    completion_tokens: int
    errors: int


@dataclass(frozen=True, slots=True)
class Overview:
    window_seconds: int
    until: str
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    prompt_tokens_per_second: float
    completion_tokens_per_second: float
    ttft_mean_seconds: float | None
    ttft_p50_seconds: float | None
    ttft_p95_seconds: float | None
    series: list[Bucket]

    def as_json(self) -> dict[str, Any]:
        return {"object": "overview", **asdict(self)}


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of sorted ``values``; None when there are none."""
    if not values:
        return None
    rank = max(1, math.ceil(fraction * len(values)))
    return values[rank - 1]


def summarize(samples: Iterable[Sample], until: datetime, window_seconds: int) -> Overview:
    """The overview of the samples in ``(until - window_seconds, until]``."""
    since = until - timedelta(seconds=window_seconds)
    step = window_seconds / BUCKETS
    counts = [[0, 0, 0, 0] for _ in range(BUCKETS)]  # requests, prompt, completion, errors
    ttfts: list[float] = []
    for sample in samples:
        if not since < sample.created_at <= until:
            continue
        index = min(BUCKETS - 1, int((sample.created_at - since).total_seconds() / step))
        bucket = counts[index]
        bucket[0] += 1
        bucket[1] += sample.prompt_tokens
        bucket[2] += sample.completion_tokens
        bucket[3] += sample.status == "error"
        if sample.ttft_seconds is not None and sample.status == "ok":
            ttfts.append(sample.ttft_seconds)
    ttfts.sort()
    totals = [sum(bucket[i] for bucket in counts) for i in range(4)]
    series = [
        Bucket((since + timedelta(seconds=i * step)).isoformat(), *bucket)
        for i, bucket in enumerate(counts)
    ]
    return Overview(
        window_seconds=window_seconds,
        until=until.isoformat(),
        requests=totals[0],
        errors=totals[3],
        prompt_tokens=totals[1],
        completion_tokens=totals[2],
        prompt_tokens_per_second=totals[1] / window_seconds,
        completion_tokens_per_second=totals[2] / window_seconds,
        ttft_mean_seconds=sum(ttfts) / len(ttfts) if ttfts else None,
        ttft_p50_seconds=percentile(ttfts, 0.5),
        ttft_p95_seconds=percentile(ttfts, 0.95),
        series=series,
    )


class UsageOverview:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def summary(self, tenant_id: str | None, window_seconds: int) -> Overview:
        """Over the last ``window_seconds`` (1 s to a day); all tenants when ``tenant_id`` is
        None."""
        if not 1 <= window_seconds <= MAX_WINDOW_SECONDS:
            raise ValueError(f"window_seconds is between 1 and {MAX_WINDOW_SECONDS}")
        until = self._clock.utcnow()
        r = UsageRecord
        query = select(
            r.created_at, r.prompt_tokens, r.completion_tokens, r.ttft_seconds, r.status
        ).where(r.created_at > until - timedelta(seconds=window_seconds))
        if tenant_id is not None:
            query = query.where(r.tenant_id == tenant_id)
        with self._db.session() as session:
            samples = [Sample(*row) for row in session.execute(query)]
        return summarize(samples, until, window_seconds)

    def record(self, request_id: str) -> UsageEvent | None:
        """One request's usage record, once the gateway's recorder has written it."""
        return UsageRepository(self._db).get(request_id)
