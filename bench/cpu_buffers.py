"""What llama.cpp's extra weight buffers are worth on this CPU, per bundled model and weights.

    .venv/bin/python bench/cpu_buffers.py [--rounds 3] [--out bench/results/cpu_buffers.json]

The extra buffers hold llama.cpp's repacked weights (faster kernels for some types on x86)
and, on AMX CPUs, the AMX buffer that crashes (``tokenmill/engine/cpu.py``). For SmolLM2's
Q4_1 file, its F16 copy (what ``--weights auto`` computes with) and Gemma 3's Q4_K_M file,
with the buffers on and off: prefill tokens/s (a 256-token prompt), one sequence's decode
(ms a token) and 16 sequences decoded together (tokens/s). Each measurement runs in its own
process (a crash is a row, not the end of the run); on and off alternate, medians over the
rounds. The ratio off/on is what turning the buffers off costs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tokenmill.catalog.bundled import bundled_model
from tokenmill.engine.cpu import has_amx, read_cpu_flags
from tokenmill.engine.weights import compute_weights
from tokenmill.fleet.local import describe_exit

PROMPT_TOKENS = 256
DECODE_TOKENS = 48
STREAMS = 16
THREADS = 2


def measure(weights: str, extra_buffers: bool) -> dict[str, float]:
    """Runs in a child process: loads the weights and times prefill and decode."""
    from tokenmill.engine.runner import DecodeEntry, LlamaRunner

    runner = LlamaRunner(
        weights,
        context_tokens=1024,
        kv_cache_tokens=STREAMS * 128 + 1024,
        max_step_tokens=PROMPT_TOKENS,
        slots=STREAMS,
        threads=THREADS,
        extra_buffers=extra_buffers,
    )
    text = " ".join(f"word{i % 97}" for i in range(400))
    prompt = runner.tokenize(text)[:PROMPT_TOKENS]
    runner.decode([DecodeEntry(0, prompt[:32], 0, (31,))])  # first-call costs
    runner.clear()
    started = time.perf_counter()
    runner.decode([DecodeEntry(0, prompt, 0, (len(prompt) - 1,))])
    prefill = len(prompt) / (time.perf_counter() - started)
    started = time.perf_counter()
    for i in range(DECODE_TOKENS):
        runner.decode([DecodeEntry(0, [prompt[i]], len(prompt) + i, (0,))])
    single_ms = (time.perf_counter() - started) / DECODE_TOKENS * 1000
    runner.clear()
    short = prompt[:16]
    runner.decode([DecodeEntry(s, short, 0, (len(short) - 1,)) for s in range(STREAMS)])
    started = time.perf_counter()
    for i in range(DECODE_TOKENS):
        runner.decode([DecodeEntry(s, [short[i % 16]], 16 + i, (0,)) for s in range(STREAMS)])
    batched = STREAMS * DECODE_TOKENS / (time.perf_counter() - started)
    runner.close()
    return {"prefill_tok_s": prefill, "single_ms_per_token": single_ms, "batched_tok_s": batched}


def run_child(weights: Path, extra_buffers: bool) -> dict[str, float] | str:
    command = [sys.executable, __file__, "--child", str(weights), str(int(extra_buffers))]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        return describe_exit(done.returncode)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/cpu_buffers.json"))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], bool(int(args.child[1])))))
        return
    cache = Path(tempfile.mkdtemp(prefix="tm-weights-"))
    smollm2 = bundled_model("smollm2-135m-instruct").path()
    files = {
        "SmolLM2 Q4_1 file": smollm2,
        "SmolLM2 F16 copy": compute_weights(smollm2, "f16", cache),
        "Gemma 3 Q4_K_M file": bundled_model("gemma-3-270m").path(),
    }
    flags = read_cpu_flags()
    report: dict[str, object] = {"cpu_has_amx": has_amx(flags), "rounds": args.rounds, "rows": []}
    rows: list[dict[str, object]] = []
    for name, path in files.items():
        runs: dict[bool, list[dict[str, float] | str]] = {True: [], False: []}
        for _ in range(args.rounds):
            for on in (True, False):
                runs[on].append(run_child(path, on))
        row: dict[str, object] = {"weights": name}
        for on in (True, False):
            label = "on" if on else "off"
            crashed = next((r for r in runs[on] if isinstance(r, str)), None)
            if crashed:
                row[label] = crashed
                continue
            good = [r for r in runs[on] if isinstance(r, dict)]
            row[label] = {k: statistics.median(r[k] for r in good) for k in good[0]}
        if isinstance(row["on"], dict) and isinstance(row["off"], dict):
            on_, off = row["on"], row["off"]
            row["off_over_on"] = {
                "prefill": off["prefill_tok_s"] / on_["prefill_tok_s"],
                "single_decode": on_["single_ms_per_token"] / off["single_ms_per_token"],
                "batched_decode": off["batched_tok_s"] / on_["batched_tok_s"],
            }
        rows.append(row)
    report["rows"] = rows
    print(f"CPU has AMX: {report['cpu_has_amx']}; medians of {args.rounds} alternating rounds")
    print(f"{'weights':<22}{'buffers':<9}{'prefill tok/s':>14}{'1 seq ms/tok':>14}"
          f"{'16 seqs tok/s':>15}")  # fmt: skip
    for row in rows:
        for label in ("on", "off"):
            found = row[label]
            if isinstance(found, str):
                print(f"{row['weights']:<22}{label:<9}{found:>43}")
            else:
                assert isinstance(found, dict)
                print(
                    f"{row['weights']:<22}{label:<9}{found['prefill_tok_s']:>14.0f}"
                    f"{found['single_ms_per_token']:>14.2f}{found['batched_tok_s']:>15.0f}"
                )
        ratios = row.get("off_over_on")
        if isinstance(ratios, dict):
            print(
                f"{'':<22}{'off/on':<9}{ratios['prefill']:>14.2f}"
                f"{ratios['single_decode']:>14.2f}{ratios['batched_decode']:>15.2f}"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
