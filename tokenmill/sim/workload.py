"""Workloads: recorded traces and synthetic arrivals, spread over a population of models.

Traces (read from ``shared/data``; see its README for sources and licences):
- Azure LLM inference trace 2023, conversation (Splitwise, ISCA 2024): arrival times and
  prompt/output token counts, one hour.
- Mooncake conversation trace (FAST 2025): arrival times, token counts and the hash ids of the
  prompt's 512-token blocks, so requests that share a prefix can be routed together.

A trace has no model names, so each request is given one of M models drawn from a Zipf
popularity (rank r has weight r^-s: a few hot models and a long tail of rare ones). Block ids
are salted with the model, since a prefix is only shared within one model.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tokenmill.sim.perf import ARCHITECTURES, ModelSpec, model_spec

MOONCAKE_BLOCK_TOKENS = 512


def trace_dir() -> Path:
    """Where the traces are: ``TOKENMILL_TRACE_DIR``, else ``../shared/data`` beside the
    checkout (or beside the working directory)."""
    configured = os.environ.get("TOKENMILL_TRACE_DIR")
    if configured:
        return Path(configured)
    candidates = [
        Path(__file__).resolve().parents[2].parent / "shared" / "data",
        Path.cwd().resolve().parent / "shared" / "data",
    ]
    return next((c for c in candidates if c.is_dir()), candidates[0])


AZURE_CONV = "azure_llm_2023_conv.csv"
MOONCAKE_CONV = "mooncake_conversation.jsonl"


@dataclass(frozen=True, slots=True)
class TraceRow:
    arrival_seconds: float
    prompt_tokens: int
    output_tokens: int
    block_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SimRequest:
    request_id: int
    arrival_seconds: float
    model_id: str
    prompt_tokens: int
    output_tokens: int
    block_hashes: tuple[int, ...] = ()


def load_azure(path: Path) -> list[TraceRow]:
    rows: list[TraceRow] = []
    start: datetime | None = None
    with path.open(newline="") as handle:
        for line in csv.DictReader(handle):
            # seven fractional digits: more than fromisoformat takes before Python 3.11's
            stamp = datetime.fromisoformat(line["TIMESTAMP"][:26])
            start = start or stamp
            rows.append(
                TraceRow(
                    (stamp - start).total_seconds(),
                    max(1, int(line["ContextTokens"])),
                    max(1, int(line["GeneratedTokens"])),
                )
            )
    rows.sort(key=lambda row: row.arrival_seconds)
    return rows


def load_mooncake(path: Path) -> list[TraceRow]:
    rows: list[TraceRow] = []
    with path.open() as handle:
        for line in handle:
            if not line.strip():
                continue
            item = json.loads(line)
            rows.append(
                TraceRow(
                    item["timestamp"] / 1000.0,
                    max(1, int(item["input_length"])),
                    max(1, int(item["output_length"])),
                    tuple(int(h) for h in item["hash_ids"]),
                )
            )
    rows.sort(key=lambda row: row.arrival_seconds)
    return rows


def poisson_arrivals(
    rate_per_second: float, duration_seconds: float, rng: random.Random
) -> list[float]:
    return gamma_arrivals(rate_per_second, 1.0, duration_seconds, rng)


def gamma_arrivals(
    rate_per_second: float, cv: float, duration_seconds: float, rng: random.Random
) -> list[float]:
    """Inter-arrival gaps from a Gamma law with mean 1/rate and coefficient of variation
    ``cv`` (1 is Poisson; above 1 is bursty)."""
    if rate_per_second <= 0 or cv <= 0:
        raise ValueError("rate and cv must be positive")
    shape = 1.0 / (cv * cv)
    scale = 1.0 / (rate_per_second * shape)
    times: list[float] = []
    now = rng.gammavariate(shape, scale)
    while now < duration_seconds:
        times.append(now)
        now += rng.gammavariate(shape, scale)
    return times


def overlay(rows: Sequence[TraceRow], copies: int, rng: random.Random) -> list[TraceRow]:
    """``copies`` copies of a trace, each rotated by a random offset within its span: the
    same hour at ``copies`` times the rate, with the trace's own burstiness kept."""
    if copies <= 1 or not rows:
        return list(rows)
    span = rows[-1].arrival_seconds + 1e-6
    out = list(rows)
    for _ in range(copies - 1):
        shift = rng.uniform(0, span)
        out += [
            TraceRow((r.arrival_seconds + shift) % span, r.prompt_tokens, r.output_tokens,
                     r.block_ids)
            for r in rows
        ]  # fmt: skip
    out.sort(key=lambda row: row.arrival_seconds)
    return out


def synthetic_rows(
    arrivals: Iterable[float], lengths_from: Sequence[TraceRow], rng: random.Random
) -> list[TraceRow]:
    """Synthetic arrivals with token lengths resampled from a recorded trace."""
    return [
        TraceRow(t, pick.prompt_tokens, pick.output_tokens)
        for t in arrivals
        for pick in [rng.choice(lengths_from)]
    ]


@dataclass(frozen=True, slots=True)
class ModelMix:
    """Shares of architectures among the served models, e.g. ``llama3.1-8b:0.6,...``."""

    shares: tuple[tuple[str, float], ...]

    @classmethod
    def parse(cls, text: str) -> ModelMix:
        shares: list[tuple[str, float]] = []
        for part in text.split(","):
            name, _, share = part.strip().partition(":")
            if name not in ARCHITECTURES:
                known = ", ".join(sorted(ARCHITECTURES))
                raise ValueError(f"unknown architecture {name!r} in model mix; known: {known}")
            shares.append((name, float(share or 1)))
        if not shares or min(s for _, s in shares) <= 0:
            raise ValueError("a model mix needs positive shares")
        return cls(tuple(shares))


DEFAULT_MIX = ModelMix((("llama3.1-8b", 0.5), ("llama3.2-3b", 0.2), ("qwen2.5-1.5b", 0.15),
                        ("qwen2.5-14b", 0.15)))  # fmt: skip


def build_models(count: int, mix: ModelMix, rng: random.Random) -> list[ModelSpec]:
    """``count`` models in popularity order; architectures by largest remainder, shuffled."""
    total = sum(share for _, share in mix.shares)
    quotas = [(name, count * share / total) for name, share in mix.shares]
    counts = {name: math.floor(q) for name, q in quotas}
    by_remainder = sorted(quotas, key=lambda item: item[1] - math.floor(item[1]), reverse=True)
    for name, _ in by_remainder[: count - sum(counts.values())]:
        counts[name] += 1
    names = [name for name, n in counts.items() for _ in range(n)]
    rng.shuffle(names)
    return [model_spec(f"m{index:03d}-{name}", name) for index, name in enumerate(names)]


def zipf_weights(count: int, exponent: float) -> list[float]:
    weights = [rank**-exponent for rank in range(1, count + 1)]
    total = sum(weights)
    return [w / total for w in weights]


def assign_models(
    rows: Sequence[TraceRow],
    models: Sequence[ModelSpec],
    *,
    zipf_exponent: float,
    speedup: float,
    duration_seconds: float | None,
    rng: random.Random,
    max_prompt_tokens: int | None = None,
) -> list[SimRequest]:
    """Requests from trace rows: time divided by ``speedup``, cut at ``duration_seconds``."""
    if speedup <= 0:
        raise ValueError("speedup must be positive")
    weights = zipf_weights(len(models), zipf_exponent)
    picks = rng.choices(range(len(models)), weights=weights, k=len(rows))
    salt = rng.random()
    for index, row in enumerate(rows):
        if row.block_ids:
            # a conversation's turns share their leading blocks (the first is often a system
            # prompt common to all): they go to one model, or their prefixes could not be reused
            key = row.block_ids[1] if len(row.block_ids) > 1 else row.block_ids[0]
            keyed = random.Random(f"{salt}:{key}")
            picks[index] = keyed.choices(range(len(models)), weights=weights)[0]
    requests: list[SimRequest] = []
    for row, pick in zip(rows, picks, strict=True):
        arrival = row.arrival_seconds / speedup
        if duration_seconds is not None and arrival >= duration_seconds:
            break
        prompt = (
            row.prompt_tokens
            if max_prompt_tokens is None
            else min(row.prompt_tokens, max_prompt_tokens)
        )
        model_salt = (pick + 1) << 40
        requests.append(
            SimRequest(
                request_id=len(requests),
                arrival_seconds=arrival,
                model_id=models[pick].model_id,
                prompt_tokens=prompt,
                output_tokens=row.output_tokens,
                block_hashes=tuple(model_salt | b for b in row.block_ids),
            )
        )
    return requests
