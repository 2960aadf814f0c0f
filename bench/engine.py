"""The built-in engine under load, through its HTTP API, against llama-cpp-python's server.

    .venv/bin/python bench/engine.py [--quick] [--out bench/results/engine.json]

One run, same model file, same threads. Streaming requests with prompts of about 100 tokens
and 128 output tokens (end-of-generation banned, so every request makes exactly 128) from
1, 4, 16 and 32 clients whose arrivals do not line up; then, on our engine: a 1,500-token
prompt arriving while 16 streams decode (chunked prefill), a second request sharing a
1,000-token prefix (prefix cache), and prompt-lookup speculation on a copy-heavy prompt.
Our engine computes with an F16 copy of the Q4_1 file (``--weights auto``); rows at 1 and 16
clients with ``--weights file`` show what that copy is worth. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson

from tokenmill.catalog.bundled import bundled_model
from tokenmill.fleet.local import free_port

EOG_BAN = {"0": -100, "1": -100, "2": -100, "4": -100}
WORDS = [
    "river",
    "mountain",
    "lantern",
    "copper",
    "harbor",
    "meadow",
    "silver",
    "thunder",
    "orchard",
    "canyon",
    "velvet",
    "glacier",
    "compass",
    "ember",
    "willow",
    "falcon",
    "prairie",
    "marble",
    "beacon",
    "tide",
]


@dataclass
class Stream:
    started: float
    token_times: list[float] = field(default_factory=list)
    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    service_tier: str | None = None  # as the reply reports it

    @property
    def ttft(self) -> float:
        return self.token_times[0] - self.started

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.token_times, self.token_times[1:], strict=False)]


def prompt(i: int, words: int = 58) -> str:
    body = " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(words))
    return f"Request {i}. Continue this list of words: {body}"


async def stream_chat(
    session: aiohttp.ClientSession,
    url: str,
    content: str,
    max_tokens: int,
    headers: dict[str, str] | None = None,
    model: str = "bench",
    into: Stream | None = None,
    **extra: object,
) -> Stream:
    """``into``: the stream to fill in (so a caller that cancels keeps what arrived)."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
        "logit_bias": EOG_BAN,
        **extra,
    }
    result = into or Stream(started=time.perf_counter())
    async with session.post(f"{url}/v1/chat/completions", json=body, headers=headers) as resp:
        if resp.status != 200:
            raise RuntimeError(f"{resp.status}: {await resp.text()}")
        async for line in resp.content:
            if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                continue
            chunk = orjson.loads(line[6:])
            result.service_tier = chunk.get("service_tier", result.service_tier)
            if chunk.get("usage"):
                result.prompt_tokens = chunk["usage"]["prompt_tokens"]
                result.completion_tokens = chunk["usage"]["completion_tokens"]
            for choice in chunk.get("choices") or []:
                text = (choice.get("delta") or {}).get("content")
                if text:
                    result.token_times.append(time.perf_counter())
                    result.text += text
    return result


async def load(
    url: str, concurrency: int, window_seconds: float, max_tokens: int, cycle_seconds: float
) -> dict:
    """``concurrency`` clients, each sending one stream after another.

    Clients start spread over one request's duration (``cycle_seconds``), so arrivals do not
    line up; tokens/s counts the tokens that arrived in a window after every client started.
    """
    stagger = cycle_seconds / concurrency
    begin = time.perf_counter()
    opens = begin + stagger * (concurrency - 1) + min(cycle_seconds, 5.0)
    closes = opens + window_seconds
    streams: list[Stream] = []

    async def client(index: int, session: aiohttp.ClientSession) -> None:
        await asyncio.sleep(index * stagger)
        n = 0
        while time.perf_counter() < closes:
            streams.append(await stream_chat(session, url, prompt(index * 1000 + n), max_tokens))
            n += 1

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600)) as session:
        await asyncio.gather(*(client(i, session) for i in range(concurrency)))
    tokens = sum(1 for s in streams for t in s.token_times if opens <= t < closes)
    gaps = [g for s in streams for g in s.gaps()]
    return {
        "concurrency": concurrency,
        "requests": len(streams),
        "window_seconds": window_seconds,
        "tokens_in_window": tokens,
        "tokens_per_second": tokens / window_seconds,
        "ttft_p50_s": statistics.median(s.ttft for s in streams),
        "tpot_p50_s": statistics.median(gaps) if gaps else None,
    }


async def chunked_prefill(url: str, streams: int = 16, long_words: int = 1400) -> dict:
    """Streams decode; a long prompt arrives; how much do the streams' token gaps grow?"""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600)) as session:
        running = [
            asyncio.create_task(stream_chat(session, url, prompt(100 + i), 160))
            for i in range(streams)
        ]
        await asyncio.sleep(4)
        arrived = time.perf_counter()
        long = await stream_chat(session, url, prompt(999, long_words), 8)
        first_token = long.token_times[0]
        results = await asyncio.gather(*running)
    during = [
        g
        for s in results
        for a, b in zip(s.token_times, s.token_times[1:], strict=False)
        if arrived <= b <= first_token
        for g in [b - a]
    ]
    everything = [g for s in results for g in s.gaps()]
    during.sort()
    p99 = during[max(0, int(len(during) * 0.99) - 1)] if during else float("nan")
    median = statistics.median(everything)
    return {
        "long_prompt_ttft_s": first_token - arrived,
        "gaps_during_prefill": len(during),
        "tpot_p99_during_prefill_s": p99,
        "tpot_median_s": median,
        "ratio": p99 / median,
    }


async def prefix_cache(url: str, prefix_words: int = 920) -> dict:
    shared = prompt(4242, prefix_words)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600)) as session:
        first = await stream_chat(session, url, shared + "\nQuestion one: which word is first?", 4)
        second = await stream_chat(session, url, shared + "\nQuestion two: which is last?", 4)
    return {
        "first_ttft_s": first.ttft,
        "second_ttft_s": second.ttft,
        "ratio": second.ttft / first.ttft,
    }


class StartFailed(RuntimeError):
    pass


COPY_TEXT = (
    "The old lighthouse stood on the red cliffs above the harbor, where fishing boats came "
    "home each evening with their nets full of silver fish. The keeper, a quiet man named "
    "Elias, climbed the one hundred and twelve steps every night to light the great lamp. "
    "He kept a journal of every ship that passed, every storm that struck the coast, and "
    "every bird that rested on the railing of the gallery. In winter the wind howled "
    "through the cracks in the stone walls, and Elias wrapped himself in wool blankets "
    "while he watched the dark sea for the lights of ships in trouble."
)


async def speculation(url_off: str, url_on: str) -> dict:
    """Single stream, copy-heavy prompt: decode rate with and without prompt lookup."""
    content = (
        "Rewrite the following text exactly, changing only the word 'red' to 'grey':\n\n"
        + COPY_TEXT
    )
    rates, texts = {}, {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600)) as session:
        for name, url in (("off", url_off), ("on", url_on)):
            await stream_chat(session, url, "warm up", 4)
            result = await stream_chat(session, url, content, 220, logit_bias={})
            span = result.token_times[-1] - result.token_times[0]
            rates[name] = (result.completion_tokens - 1) / span
            texts[name] = result.text
    return {
        "decode_tokens_per_second_off": rates["off"],
        "decode_tokens_per_second_on": rates["on"],
        "speedup": rates["on"] / rates["off"],
        "identical_output": texts["on"] == texts["off"],
        "completion_chars": len(texts["off"]),
    }


class Engine:
    """A server process on a free port for the length of a ``with`` block."""

    def __init__(self, command: list[str], log: Path) -> None:
        self.command = command
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> str:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        self.process = start([*self.command, "--port", str(port)], url, self.log)
        return url

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            stop(self.process)


def start(command: list[str], url: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StartFailed(f"{command[2]} exited; see {log}")
        try:
            urllib.request.urlopen(f"{url}/v1/models", timeout=1)
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise StartFailed(f"{url} did not come up; see {log}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results/engine.json"))
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="shorter measuring windows")
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    model = str(bundled_model("smollm2-135m-instruct").path())
    logs = Path(os.environ.get("TMPDIR", "/tmp"))
    levels = (1, 4, 16, 32)
    window = 15.0 if args.quick else 40.0
    # one request's duration at each level, roughly: spreads the clients' first arrivals
    cycle = {1: 2.0, 4: 4.0, 16: 12.0, 32: 20.0}
    report: dict = {"benchmark": "engine", "threads": args.threads, "model": model}

    def ours(*extra: str) -> Engine:
        """A fresh replica for each measurement, so none inherits another's cache."""
        return Engine(
            [sys.executable, "-m", "tokenmill.engine", "--model", model, "--served-name",
             "bench", "--threads", str(args.threads), "--log-level", "warning", *extra],
            logs / "bench-engine-tokenmill.log",
        )  # fmt: skip

    report["tokenmill"] = []
    for c in levels:
        with ours() as url:
            report["tokenmill"].append(asyncio.run(load(url, c, window, 128, cycle[c])))
    # the same engine computing with the file's own Q4_1 weights instead of the F16 copy
    report["tokenmill_file_weights"] = []
    for c in (1, 16):
        with ours("--weights", "file") as url:
            report["tokenmill_file_weights"].append(
                asyncio.run(load(url, c, window, 128, cycle[c]))
            )
    with ours() as url:
        report["chunked_prefill"] = asyncio.run(chunked_prefill(url))
    with ours() as url:
        report["prefix_cache"] = asyncio.run(prefix_cache(url))
    with ours() as url_off, ours("--speculative-tokens", "6") as url_on:
        report["speculation"] = asyncio.run(speculation(url_off, url_on))
    write(args.out, report)

    if not args.skip_baseline:
        baseline = Engine(
            [sys.executable, "-m", "llama_cpp.server", "--model", model, "--n_threads",
             str(args.threads), "--n_threads_batch", str(args.threads), "--n_ctx", "4096",
             "--verbose", "False", "--interrupt_requests", "False"],
            logs / "bench-engine-llama-cpp-server.log",
        )  # fmt: skip
        try:
            with baseline as url:
                report["llama_cpp_server"] = [asyncio.run(load(url, 16, window, 128, cycle[16]))]
        except StartFailed as failed:
            print(f"baseline not measured: {failed} (install with: pip install -e '.[bench]')")

    single = report["tokenmill"][0]["tokens_per_second"]
    print(
        f"{'engine':<22} {'conc':>4} {'tok/s':>8} {'x single':>8} {'ttft p50':>9} {'tpot p50':>9}"
    )
    for name in ("tokenmill", "tokenmill_file_weights", "llama_cpp_server"):
        for row in report.get(name, []):
            print(
                f"{name:<22} {row['concurrency']:>4} {row['tokens_per_second']:>8.1f} "
                f"{row['tokens_per_second'] / single:>8.2f} {row['ttft_p50_s']:>8.2f}s "
                f"{row['tpot_p50_s'] * 1000:>7.1f}ms"
            )
    c16 = next(r for r in report["tokenmill"] if r["concurrency"] == 16)
    report["goals"] = {
        "c16_over_c1": c16["tokens_per_second"] / single,
    }
    if "llama_cpp_server" in report:
        base = report["llama_cpp_server"][0]["tokens_per_second"]
        report["goals"]["c16_over_llama_cpp_server_c16"] = c16["tokens_per_second"] / base
    report["goals"]["chunked_prefill_p99_over_median"] = report["chunked_prefill"]["ratio"]
    report["goals"]["prefix_cache_ttft_ratio"] = report["prefix_cache"]["ratio"]
    report["goals"]["speculation_speedup"] = report["speculation"]["speedup"]
    report["goals"]["speculation_identical_output"] = report["speculation"]["identical_output"]
    shown = ("chunked_prefill", "prefix_cache", "speculation", "goals")
    print(json.dumps({key: report[key] for key in shown}, indent=2))
    write(args.out, report)
    print(f"wrote {args.out}")


def write(out: Path, report: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
