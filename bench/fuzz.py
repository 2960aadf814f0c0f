"""The long fuzz: schemathesis against a live platform's own ``/openapi.json``.

    .venv/bin/python bench/fuzz.py [--examples 200] [--seed 0] [--out bench/results/fuzz.json]

The same platform and checks as tests/gateway/test_fuzz.py (tests/gateway/fuzzing.py: the
gateway as ``tokenmill serve`` builds it, in front of an instant test replica, seeded with a
file, a vector store, a batch, a response, an App and a deployment), with ``--examples``
schema-valid and as many schema-invalid requests per operation instead of a few. Prints a
table (operation, examples, 5xx, errors not in OpenAI's shape, other failures, with a few
failing requests under each) and writes it as JSON. Exits 1 when anything failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.gateway.fuzzing import fuzz, live_platform, report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/fuzz.json"))
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch, live_platform(Path(scratch)) as platform:
        tallies = fuzz(platform, args.examples, args.seed)
    seconds = time.monotonic() - started
    print(report(tallies))
    totals = {
        "operations": len(tallies),
        "examples": sum(t.examples for t in tallies),
        "server_errors": sum(t.server_errors for t in tallies),
        "unshaped_errors": sum(t.unshaped for t in tallies),
        "other_failures": sum(t.other for t in tallies),
    }
    print(
        f"\n{totals['operations']} operations, {totals['examples']} requests in {seconds:.0f} s: "
        f"{totals['server_errors']} 5xx, {totals['unshaped_errors']} errors out of shape, "
        f"{totals['other_failures']} other failures"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "fuzz",
        "examples_per_operation_and_mode": args.examples,
        "seed": args.seed,
        "seconds": round(seconds, 1),
        **totals,
        "by_operation": [t.as_json() for t in tallies],
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return (
        1 if totals["server_errors"] or totals["unshaped_errors"] or totals["other_failures"] else 0
    )


if __name__ == "__main__":
    sys.exit(main())
