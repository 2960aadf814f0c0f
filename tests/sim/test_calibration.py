"""The simulator's CPU engine model against our real engine, on a slice of the Azure trace.

A slice of the Azure conversation trace (first 40 requests, arrival times as recorded, token
counts scaled down to suit a 135M model on two cores: prompts / 8, outputs / 4) is replayed on
a live replica of the bundled SmolLM2, then in the simulator with the committed calibration
(``tokenmill/sim/calibration/cpu_smollm2.json``). Throughput and median latency must agree
within 15%. Other load on the machine slows the real engine and not the simulator: run it on
a quiet machine. It compares speeds, so it is not part of the suite (marked ``timing``): run
``pytest -m timing`` after recalibrating with ``bench/calibrate_sim.py`` on the machine at hand.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tokenmill.sim.live import (
    LiveRequest,
    ReplaySummary,
    replay,
    scaled_trace_slice,
    start_smollm2,
    summarize_replay,
    wait_until_quiet,
)
from tokenmill.sim.perf import cpu_profile
from tokenmill.sim.run import simulate_replica
from tokenmill.sim.workload import AZURE_CONV, SimRequest, load_azure, trace_dir

SLICE = 40
TOLERANCE = 0.15
ATTEMPTS = 3

pytestmark = [pytest.mark.model, pytest.mark.timing]


def trace_slice() -> list[LiveRequest]:
    rows = load_azure(trace_dir() / AZURE_CONV)
    return scaled_trace_slice(
        [(r.arrival_seconds, r.prompt_tokens, r.output_tokens) for r in rows], 0, SLICE
    )


def replay_on_the_engine(tmp_path: Path, requests: list[LiveRequest]) -> ReplaySummary:
    replica = start_smollm2(tmp_path, threads=min(2, os.cpu_count() or 1))
    try:
        replay(replica.url, "sim-calibration", [LiveRequest(0.0, 16, 2)])  # warm up
        outcomes = replay(replica.url, "sim-calibration", requests, seed=5)
    finally:
        replica.stop()
    assert [o.output_tokens for o in outcomes] == [r.output_tokens for r in requests]
    return summarize_replay(
        [o.arrival_seconds for o in outcomes],
        [o.first_token_seconds for o in outcomes],
        [o.finish_seconds for o in outcomes],
        [o.output_tokens for o in outcomes],
    )


def agrees(simulated: ReplaySummary, real: ReplaySummary) -> bool:
    return simulated.throughput_tokens_per_second == pytest.approx(
        real.throughput_tokens_per_second, rel=TOLERANCE
    ) and simulated.median_latency_seconds == pytest.approx(
        real.median_latency_seconds, rel=TOLERANCE
    )


def test_simulated_replica_agrees_with_the_real_engine(tmp_path: Path) -> None:
    """Up to ``ATTEMPTS`` replays on the real engine: on this shared virtual machine the same
    slice's median latency moved between 0.91 s and 1.55 s from one replay to the next with
    nothing else running, so one replay can miss a simulator that is right. A simulator that
    is off misses every time."""
    busy = wait_until_quiet(busy_below=0.25, timeout_seconds=60)
    if busy >= 0.25 and not os.environ.get("CI"):  # CI runs nothing beside the tests
        pytest.skip(f"other programs keep the CPUs {busy:.0%} busy; timings would be theirs")
    requests = trace_slice()
    simulated_requests = [
        SimRequest(i, r.arrival_seconds, "smollm2", r.prompt_tokens, r.output_tokens)
        for i, r in enumerate(requests)
    ]
    records = simulate_replica(cpu_profile(), simulated_requests)
    simulated = summarize_replay(
        [r.request.arrival_seconds for r in records],
        [r.first_token_seconds or 0.0 for r in records],
        [r.finish_seconds or 0.0 for r in records],
        [r.request.output_tokens for r in records],
    )
    reals = []
    for attempt in range(ATTEMPTS):
        reals.append(replay_on_the_engine(tmp_path / str(attempt), requests))
        print(f"real {reals[-1]}\nsimulated {simulated}")
        if agrees(simulated, reals[-1]):
            return
    raise AssertionError(f"the simulator ({simulated}) missed every replay: {reals}")
