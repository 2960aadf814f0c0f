"""Does a fine-tuning job starve serving? Base tokens/s with and without a job training.

    .venv/bin/python bench/training_load.py [--threads 1 2] [--serve-seconds 45]
        [--out bench/results/training_load.json]

For each ``--threads`` value (``TOKENMILL_TUNING_THREADS``) starts ``tokenmill serve`` with the
bundled SmolLM2-135M chat model (one replica), then with 16 streaming clients (as in
``bench/finetune.py``) measures the base model's tokens/s: first with nothing training, then
while a job trains (2,000 examples, so it outlasts the measurement), and finally cancels the
job and times how long it takes to say ``cancelled``. Prints a table and writes JSON; the
ratio (while training / idle) is what the default thread count is chosen by.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import openai

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.finetune import CHAT, POLL_SECONDS, ask, closed_loop, create_job, make_tenant
from bench.finetune_task import extraction_examples, jsonl
from bench.serving import start_platform

LONG_JOB_EXAMPLES = 2000
TRAINING_STARTS_TIMEOUT_SECONDS = 600


def wait_for_first_step(client: openai.OpenAI, job_id: str) -> float:
    """Seconds until the job reports its first training step."""
    began = time.perf_counter()
    while time.perf_counter() - began < TRAINING_STARTS_TIMEOUT_SECONDS:
        events = client.fine_tuning.jobs.list_events(job_id, limit=20).data
        if any(event.type == "metrics" for event in events):
            return time.perf_counter() - began
        status = client.fine_tuning.jobs.retrieve(job_id).status
        if status in ("failed", "cancelled", "succeeded"):
            raise RuntimeError(f"{job_id} {status} before the measurement")
        time.sleep(POLL_SECONDS)
    raise TimeoutError(f"{job_id} took no step in {TRAINING_STARTS_TIMEOUT_SECONDS} s")


def cancel_seconds(client: openai.OpenAI, job_id: str) -> float:
    """Seconds from ``cancel`` until the job says ``cancelled``."""
    began = time.perf_counter()
    client.fine_tuning.jobs.cancel(job_id)
    while client.fine_tuning.jobs.retrieve(job_id).status != "cancelled":
        time.sleep(0.1)
    return time.perf_counter() - began


def measure(threads: int, seconds: float) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix=f"tm-bench-training-load-{threads}-"))
    env = {
        "TOKENMILL_BUNDLED_MIN_REPLICAS": "1",
        "TOKENMILL_BUNDLED_MAX_REPLICAS": "1",
        "TOKENMILL_TUNING_THREADS": str(threads),
    }
    process, base, admin_key = start_platform(data_dir, [CHAT], env=env)
    try:
        key = make_tenant(base, admin_key)
        client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=5, timeout=600)
        ask(client, CHAT, "Hello", 4)
        idle = asyncio.run(closed_loop(base, key, [CHAT], seconds))
        data = jsonl(extraction_examples(LONG_JOB_EXAMPLES, 1, held_out=False))
        job_id, _ = create_job(client, data, "load", 1)
        starts = wait_for_first_step(client, job_id)
        training = asyncio.run(closed_loop(base, key, [CHAT], seconds))
        still = client.fine_tuning.jobs.retrieve(job_id).status
        cancelled = cancel_seconds(client, job_id)
    finally:
        process.terminate()
        process.wait(30)
    return {
        "tuning_threads": threads,
        "idle": idle,
        "while_training": training,
        "job_status_after_measurement": still,
        "first_step_seconds": starts,
        "cancel_seconds": cancelled,
        "ratio": training["tokens_per_second"] / idle["tokens_per_second"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--serve-seconds", type=float, default=45.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/training_load.json"))
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stops the platform
    report: dict[str, Any] = {
        "benchmark": "training_load",
        "cpu_count": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "runs": [measure(threads, args.serve_seconds) for threads in args.threads],
        "load_average_at_end": os.getloadavg(),
    }
    print(f"{'tuning threads':>14} {'idle tok/s':>11} {'training tok/s':>15} {'ratio':>6} "
          f"{'cancel s':>9}")  # fmt: skip
    for run in report["runs"]:
        print(
            f"{run['tuning_threads']:>14} {run['idle']['tokens_per_second']:>11.1f} "
            f"{run['while_training']['tokens_per_second']:>15.1f} {run['ratio']:>6.0%} "
            f"{run['cancel_seconds']:>9.1f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
