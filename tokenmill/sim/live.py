"""Replaying requests on a live engine replica, to calibrate the simulator and check it.

Each request is a streamed ``/v1/completions`` call with a prompt of exactly the wanted number
of token ids (random ids, so no two prompts share a cached prefix) and end-of-generation
banned, so it produces exactly ``max_tokens`` tokens. Standard library only (one thread per
request): the simulator's core stays free of HTTP clients, and this is the one edge that
talks to a replica.
"""

from __future__ import annotations

import http.client
import json
import random
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from tokenmill.fleet.local import LocalReplica, ReplicaSpec, start_replica

# SmolLM2's end-of-generation and padding tokens; a -100 bias keeps a request generating
EOG_BAN = {"0": -100, "1": -100, "2": -100, "4": -100}
SAFE_TOKEN_IDS = range(200, 40000)


def cpu_busy_fraction(seconds: float = 1.0) -> float:
    """The share of all CPUs' time spent outside idle over the next ``seconds`` (Linux)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return idle, sum(fields)

    idle_before, total_before = sample()
    time.sleep(seconds)
    idle_after, total_after = sample()
    total = max(1, total_after - total_before)
    return 1.0 - (idle_after - idle_before) / total


def wait_until_quiet(
    busy_below: float = 0.15, timeout_seconds: float = 120.0, probe_seconds: float = 1.0
) -> float:
    """Waits for the machine to be nearly idle; returns the last busy share seen."""
    deadline = time.monotonic() + timeout_seconds
    busy = cpu_busy_fraction(probe_seconds)
    while busy >= busy_below and time.monotonic() < deadline:
        busy = cpu_busy_fraction(probe_seconds)
    return busy


@dataclass(frozen=True, slots=True)
class LiveRequest:
    arrival_seconds: float
    prompt_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class LiveOutcome:
    """Times in seconds from the start of the replay; token counts as the replica reported."""

    arrival_seconds: float
    prompt_tokens: int
    output_tokens: int
    first_token_seconds: float
    finish_seconds: float

    @property
    def ttft_seconds(self) -> float:
        return self.first_token_seconds - self.arrival_seconds

    @property
    def latency_seconds(self) -> float:
        return self.finish_seconds - self.arrival_seconds


def scaled_trace_slice(
    rows: Sequence[tuple[float, int, int]], start: int, count: int
) -> list[LiveRequest]:
    """Requests ``start`` to ``start + count`` of a trace, arrivals from the first of them,
    token counts scaled to a 135M model on two cores: prompts / 8 (16 to 512), outputs / 4
    (4 to 96)."""
    picked = rows[start : start + count]
    origin = picked[0][0]
    return [
        LiveRequest(t - origin, min(512, max(16, prompt // 8)), min(96, max(4, output // 4)))
        for t, prompt, output in picked
    ]


def start_smollm2(log_dir: Path, threads: int, *, max_running: int = 32) -> LocalReplica:
    from tokenmill.engine.__main__ import bundled_model_path

    spec = ReplicaSpec(
        model_id="sim-calibration",
        model_path=bundled_model_path(),
        threads=threads,
        context_tokens=4096,
        max_running=max_running,
    )
    replica = start_replica(spec, log_dir)
    replica.wait_ready(180)
    return replica


def _stream(
    url: str, model: str, request: LiveRequest, rng: random.Random
) -> tuple[float, int, int]:
    """Sends one request; returns (first token time, prompt tokens, completion tokens)."""
    target = urlparse(url)
    body = {
        "model": model,
        "prompt": [rng.choice(SAFE_TOKEN_IDS) for _ in range(request.prompt_tokens)],
        "max_tokens": request.output_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
        "logit_bias": EOG_BAN,
    }
    connection = http.client.HTTPConnection(
        target.hostname or "127.0.0.1", target.port, timeout=600
    )
    try:
        connection.request(
            "POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        if response.status != 200:
            raise RuntimeError(f"replica answered {response.status}: {response.read()[:300]!r}")
        first = 0.0
        prompt = completion = 0
        for line in response:
            if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                prompt = chunk["usage"]["prompt_tokens"]
                completion = chunk["usage"]["completion_tokens"]
            if not first and any(c.get("text") for c in chunk.get("choices") or []):
                first = time.perf_counter()
        return first, prompt, completion
    finally:
        connection.close()


def replay(
    url: str, model: str, requests: Sequence[LiveRequest], *, seed: int = 0
) -> list[LiveOutcome]:
    """Sends each request at its arrival time (relative to now); waits for all."""
    outcomes: list[LiveOutcome | None] = [None] * len(requests)
    errors: list[BaseException] = []
    start = time.perf_counter()

    def one(index: int, request: LiveRequest) -> None:
        try:
            delay = start + request.arrival_seconds - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sent = time.perf_counter() - start
            first, prompt, completion = _stream(
                url, model, request, random.Random(seed * 7919 + index)
            )
            done = time.perf_counter() - start
            outcomes[index] = LiveOutcome(sent, prompt, completion, first - start, done)
        except BaseException as exc:  # reported after every thread joined
            errors.append(exc)

    threads = [
        threading.Thread(target=one, args=(i, r), daemon=True) for i, r in enumerate(requests)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return [o for o in outcomes if o is not None]


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    throughput_tokens_per_second: float
    median_latency_seconds: float
    median_ttft_seconds: float


def summarize_replay(
    arrivals: Sequence[float],
    first_tokens: Sequence[float],
    finishes: Sequence[float],
    output_tokens: Sequence[int],
) -> ReplaySummary:
    """Throughput over the replay's span (first arrival to last finish) and medians."""
    span = max(finishes) - min(arrivals)
    return ReplaySummary(
        throughput_tokens_per_second=sum(output_tokens) / span,
        median_latency_seconds=statistics.median(
            f - a for a, f in zip(arrivals, finishes, strict=True)
        ),
        median_ttft_seconds=statistics.median(
            t - a for a, t in zip(arrivals, first_tokens, strict=True)
        ),
    )
