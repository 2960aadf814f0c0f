"""A stand-in for vLLM, SGLang and llama-server: their documented HTTP surface, no model.

These engines need GPUs (or a llama.cpp build we do not ship), so they cannot run on this
machine. This script imitates what the fleet relies on, as each engine documents it:

- the command line: each engine's own flags, parsed with argparse, unknown flags refused
  (exit 2), so an adapter's argv either starts the stand-in or fails like the engine would;
- ``GET /health``: vLLM and SGLang listen only once loaded; llama-server listens at once and
  answers 503 "Loading model" until loaded, then 200 ``{"status": "ok"}``;
- ``GET /v1/models`` and ``POST /v1/chat/completions`` (a canned reply, streamed or not, with
  ``usage``; a stream ends with a usage chunk when ``stream_options.include_usage`` is set);
- ``GET /metrics``: the engine's own metric names, labels and types, fed by the traffic it
  really served (requests beyond the engine's parallel limit wait, and are counted waiting).

Run: ``python standin.py --engine vllm [--loading-seconds S] [--token-delay-seconds D]
[--crash-if-exists PATH]`` followed by exactly the engine's arguments (for vLLM: ``serve MODEL
--host ...``). With ``--crash-if-exists``, a request that arrives while PATH exists kills the
process with SIGSEGV, as a native engine that crashes in a kernel would die.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REPLY = "The stand-in engine answers every prompt with this same reply."
REPLY_WORDS = REPLY.split(" ")  # one word, one token
LLAMA_CPP_METRICS = (  # (type, name, help) as llama-server's README lists them
    ("counter", "prompt_tokens_total", "Number of prompt tokens processed."),
    ("counter", "prompt_seconds_total", "Prompt process time"),
    ("counter", "tokens_predicted_total", "Number of generation tokens processed."),
    ("counter", "tokens_predicted_seconds_total", "Predict process time"),
    ("gauge", "requests_processing", "Number of requests processing."),
    ("gauge", "requests_deferred", "Number of requests deferred."),
)
VLLM_BLOCK_SIZE = 16
OWN_FLAGS = ("--engine", "--loading-seconds", "--token-delay-seconds", "--crash-if-exists")


def launcher(
    engine: str, *, loading_seconds: float = 0.0, token_delay_seconds: float = 0.0
) -> tuple[str, ...]:
    """The program an adapter should put before its own arguments to start this stand-in."""
    return (
        sys.executable, str(Path(__file__).resolve()), "--engine", engine,
        "--loading-seconds", str(loading_seconds),
        "--token-delay-seconds", str(token_delay_seconds),
    )  # fmt: skip


def engine_parser(engine: str) -> argparse.ArgumentParser:
    """The subset of each engine's flags the adapters use, spelled as the engine spells them."""
    if engine == "vllm":
        root = argparse.ArgumentParser(prog="vllm", allow_abbrev=False)
        sub = root.add_subparsers(dest="command", required=True)
        p = sub.add_parser("serve", allow_abbrev=False)
        p.add_argument("model_tag")
        p.add_argument("--host", default=None)
        p.add_argument("--port", type=int, default=8000)
        p.add_argument("--served-model-name", nargs="+", default=None)
        p.add_argument("--max-model-len", type=int, default=None)
        p.add_argument("--max-num-seqs", type=int, default=256)
        p.add_argument("--tensor-parallel-size", "-tp", type=int, default=1)
        p.add_argument("--gpu-memory-utilization", type=float, default=0.9)
        p.add_argument("--speculative-config", type=json.loads, default=None)
        return root
    if engine == "sglang":
        p = argparse.ArgumentParser(prog="sglang.launch_server", allow_abbrev=False)
        p.add_argument("--model-path", "--model", required=True)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=30000)
        p.add_argument("--served-model-name", default=None)
        p.add_argument("--context-length", type=int, default=None)
        p.add_argument("--max-running-requests", type=int, default=None)
        p.add_argument("--max-total-tokens", type=int, default=None)
        p.add_argument("--tp-size", "--tp", type=int, default=1)
        p.add_argument("--mem-fraction-static", type=float, default=None)
        p.add_argument("--enable-metrics", action="store_true")
        p.add_argument(
            "--speculative-algorithm", choices=["EAGLE", "EAGLE3", "NEXTN", "STANDALONE", "NGRAM"]
        )
        p.add_argument("--speculative-num-draft-tokens", type=int, default=None)
        return p
    if engine == "llama-server":
        p = argparse.ArgumentParser(prog="llama-server", allow_abbrev=False)
        p.add_argument("-m", "--model", required=True)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=8080)
        p.add_argument("-a", "--alias", default=None)
        p.add_argument("-c", "--ctx-size", type=int, default=0)
        p.add_argument("-np", "--parallel", type=int, default=1)
        p.add_argument("-t", "--threads", type=int, default=-1)
        p.add_argument("-ngl", "--gpu-layers", "--n-gpu-layers", default="auto")
        p.add_argument("--metrics", action="store_true")
        p.add_argument("-cb", "--cont-batching", action="store_true", default=True)
        p.add_argument("-nocb", "--no-cont-batching", dest="cont_batching", action="store_false")
        p.add_argument("-nr", "--no-repack", dest="repack", action="store_false")
        return p
    raise SystemExit(f"standin: unknown engine {engine!r}")


class Engine:
    """Traffic bookkeeping shared by the request threads, and each engine's metrics page."""

    def __init__(self, engine: str, args: argparse.Namespace, token_delay_seconds: float):
        self.engine = engine
        self.token_delay_seconds = token_delay_seconds
        self.crash_if_exists: Path | None = None
        self.loaded = threading.Event()
        self.lock = threading.Lock()
        if engine == "vllm":
            self.model = (args.served_model_name or [args.model_tag])[0]
            self.max_running, self.metrics_on = args.max_num_seqs, True
            self.kv_total_cells = int(4096 * args.gpu_memory_utilization) * VLLM_BLOCK_SIZE
        elif engine == "sglang":
            self.model = args.served_model_name or args.model_path
            self.max_running = args.max_running_requests or 64
            self.metrics_on = args.enable_metrics
            self.kv_total_cells = args.max_total_tokens or 65536
        else:
            self.model = args.alias or Path(args.model).name
            self.max_running, self.metrics_on = args.parallel, args.metrics
            self.kv_total_cells = args.ctx_size or 4096
        self.slots = threading.BoundedSemaphore(self.max_running)
        self.running = self.waiting = self.kv_used_cells = self.kv_used_blocks = 0
        self.prompt_tokens = self.generation_tokens = self.cached_tokens = 0
        self.generating_seconds = self.prompt_seconds = 0.0
        self.seen_prompts: list[list[str]] = []
        self._build_registry()

    def _build_registry(self) -> None:
        """vLLM's and SGLang's names, labels and types (both use prometheus_client too)."""
        self.registry = r = CollectorRegistry()
        vllm = self.engine == "vllm"
        p = "vllm:" if vllm else "sglang:"
        names = ["model_name", "engine"] if vllm else ["model_name"]
        self.labels = [self.model, "0"] if vllm else [self.model]

        def gauge(name: str, doc: str, read: Any) -> None:
            Gauge(p + name, doc, names, registry=r).labels(*self.labels).set_function(read)

        def counter(name: str, doc: str, extra: tuple[str, ...] = ()) -> Counter:
            return Counter(p + name, doc, [*names, *extra], registry=r)

        def histogram(name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
            return Histogram(p + name, doc, names, registry=r, buckets=buckets)

        gauge(
            "num_requests_running" if vllm else "num_running_reqs",
            "Number of requests in model execution batches.",
            lambda: self.running,
        )
        gauge(
            "num_requests_waiting" if vllm else "num_queue_reqs",
            "Number of requests waiting to be processed.",
            lambda: self.waiting,
        )
        gauge("kv_cache_usage_perc" if vllm else "token_usage", "KV-cache usage.", self._kv_usage)
        if vllm:
            info = ["block_size", "num_gpu_blocks", "enable_prefix_caching", "engine"]
            Gauge(
                p + "cache_config_info",
                "Information of the LLMEngine CacheConfig",
                info,
                registry=r,
            ).labels(
                str(VLLM_BLOCK_SIZE), str(self.kv_total_cells // VLLM_BLOCK_SIZE), "True", "0"
            ).set(1)
            self.queries = counter("prefix_cache_queries", "Prefix cache queries, in tokens.")
            self.hits = counter("prefix_cache_hits", "Prefix cache hits, in tokens.")
        else:
            gauge("num_used_tokens", "The number of used tokens.", lambda: self.kv_used_cells)
            gauge(
                "max_total_num_tokens",
                "Maximum tokens in the KV pool.",
                lambda: self.kv_total_cells,
            )
            gauge("cache_hit_rate", "The prefix cache hit rate.", self._hit_rate)
            self.hits = counter("cached_tokens", "Cached prompt tokens.", ("cache_source",))
        self.prompt_counter = counter("prompt_tokens", "Number of prefill tokens processed.")
        self.generation_counter = counter("generation_tokens", "Number of generation tokens.")
        self.ttft = histogram(
            "time_to_first_token_seconds", "Time to first token.", (0.01, 0.05, 0.1, 0.5, 1, 5)
        )
        self.itl = histogram(
            "inter_token_latency_seconds", "Inter-token latency.", (0.005, 0.01, 0.05, 0.1, 0.5, 1)
        )

    def _hit_rate(self) -> float:
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0

    def _kv_usage(self) -> float:
        if self.engine == "vllm":  # vLLM hands out whole blocks
            return self.kv_used_blocks / (self.kv_total_cells // VLLM_BLOCK_SIZE)
        return self.kv_used_cells / self.kv_total_cells

    def metrics_text(self) -> bytes:
        if self.engine != "llama-server":
            return generate_latest(self.registry)
        values = {
            "prompt_tokens_total": self.prompt_tokens,
            "prompt_seconds_total": self.prompt_seconds,
            "tokens_predicted_total": self.generation_tokens,
            "tokens_predicted_seconds_total": self.generating_seconds,
            "requests_processing": self.running,
            "requests_deferred": self.waiting,
        }
        lines = []
        for kind, name, doc in LLAMA_CPP_METRICS:  # no labels; HELP and TYPE for each
            lines += [f"# HELP llamacpp:{name} {doc}", f"# TYPE llamacpp:{name} {kind}"]
            lines.append(f"llamacpp:{name} {values[name]:.6g}")
        return ("\n".join(lines) + "\n").encode()

    def generate(self, prompt: list[str], max_tokens: int | None, emit: Any) -> tuple[int, str]:
        """Serve one request: wait for a slot, 'decode' the canned reply, account for it."""
        arrival = time.monotonic()
        words = REPLY_WORDS[:max_tokens] if max_tokens is not None else REPLY_WORDS
        with self.lock:
            self.waiting += 1
        self.slots.acquire()
        blocks = 0
        with self.lock:
            self.waiting -= 1
            self.running += 1
            cached = max((_common_prefix(prompt, seen) for seen in self.seen_prompts), default=0)
            self.seen_prompts.append(prompt)
            self.prompt_tokens += len(prompt)
            self.cached_tokens += cached
            self.prompt_counter.labels(*self.labels).inc(len(prompt))
            self._count_prefix(len(prompt), cached)
            self.kv_used_cells += len(prompt)
            blocks = math.ceil(len(prompt) / VLLM_BLOCK_SIZE)
            self.kv_used_blocks += blocks
        held, start, previous = len(prompt), time.monotonic(), None
        with self.lock:
            self.prompt_seconds += start - arrival
        try:
            for word in words:
                time.sleep(self.token_delay_seconds)
                now = time.monotonic()
                with self.lock:
                    if previous is None:
                        self.ttft.labels(*self.labels).observe(now - arrival)
                    else:
                        self.itl.labels(*self.labels).observe(now - previous)
                    self.generation_tokens += 1
                    self.generation_counter.labels(*self.labels).inc()
                    self.kv_used_cells += 1
                    held += 1
                    grown = math.ceil(held / VLLM_BLOCK_SIZE) - blocks
                    self.kv_used_blocks, blocks = self.kv_used_blocks + grown, blocks + grown
                previous = now
                emit(word)
        finally:
            with self.lock:
                self.generating_seconds += time.monotonic() - start
                self.running -= 1
                self.kv_used_cells -= held
                self.kv_used_blocks -= blocks
            self.slots.release()
        return len(words), "length" if len(words) < len(REPLY_WORDS) else "stop"

    def _count_prefix(self, queries: int, hits: int) -> None:
        if self.engine == "vllm":
            assert self.queries is not None
            self.queries.labels(*self.labels).inc(queries)
            self.hits.labels(*self.labels).inc(hits)
        elif self.engine == "sglang":
            self.hits.labels(*self.labels, "device").inc(hits)


def _common_prefix(a: list[str], b: list[str]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    engine: Engine

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode())

    def _loading(self) -> bool:
        if self.engine.loaded.is_set():
            return False
        error = {"code": 503, "message": "Loading model", "type": "unavailable_error"}
        self._json(503, {"error": error})
        return True

    def do_GET(self) -> None:
        e = self.engine
        if self.path in ("/health", "/v1/health"):
            if not self._loading():
                self._send(200, b'{"status":"ok"}' if e.engine == "llama-server" else b"")
        elif self.path == "/v1/models":
            owner = {"vllm": "vllm", "sglang": "sglang"}.get(e.engine, "llamacpp")
            model = {
                "id": e.model,
                "object": "model",
                "created": int(time.time()),
                "owned_by": owner,
            }
            self._json(200, {"object": "list", "data": [model]})
        elif self.path == "/metrics":
            if not e.metrics_on:
                self._send(
                    501 if e.engine == "llama-server" else 404, b"metrics are off", "text/plain"
                )
            else:
                self._send(200, e.metrics_text(), "text/plain; version=0.0.4; charset=utf-8")
        else:
            self._json(404, {"error": {"message": "Not Found", "code": 404}})

    def do_POST(self) -> None:
        if self.path != "/v1/chat/completions":
            self._json(404, {"error": {"message": "Not Found", "code": 404}})
            return
        if self._loading():
            return
        crash = self.engine.crash_if_exists
        if crash is not None and crash.exists():
            os.kill(os.getpid(), signal.SIGSEGV)
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        prompt = [w for m in request["messages"] for w in str(m.get("content", "")).split()]
        ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        base = {"id": ident, "created": created, "model": self.engine.model}

        def usage(completion: int) -> dict[str, int]:
            total = len(prompt) + completion
            return {
                "prompt_tokens": len(prompt),
                "completion_tokens": completion,
                "total_tokens": total,
            }

        if not request.get("stream"):
            words: list[str] = []
            n, reason = self.engine.generate(prompt, request.get("max_tokens"), words.append)
            message = {"role": "assistant", "content": " ".join(words)}
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": reason}
            self._json(
                200, {**base, "object": "chat.completion", "choices": [choice], "usage": usage(n)}
            )
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def event(payload: dict[str, Any] | str) -> None:
            data = payload if isinstance(payload, str) else json.dumps(payload)
            raw = f"data: {data}\n\n".encode()
            self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
            self.wfile.flush()

        def chunk(delta: dict[str, str], reason: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
            return {**base, "object": "chat.completion.chunk", "choices": [choice]}

        event(chunk({"role": "assistant", "content": ""}))
        first = [True]

        def emit(word: str) -> None:
            event(chunk({"content": word if first[0] else " " + word}))
            first[0] = False

        n, reason = self.engine.generate(prompt, request.get("max_tokens"), emit)
        event(chunk({}, reason))
        if (request.get("stream_options") or {}).get("include_usage"):
            event({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage(n)})
        event("[DONE]")
        self.wfile.write(b"0\r\n\r\n")


def main(argv: list[str]) -> int:
    split = 0
    while split < len(argv) and argv[split] in OWN_FLAGS:
        split += 2
    own = argparse.ArgumentParser(prog="standin", allow_abbrev=False)
    own.add_argument("--engine", required=True, choices=["vllm", "sglang", "llama-server"])
    own.add_argument("--loading-seconds", type=float, default=0.0)
    own.add_argument("--token-delay-seconds", type=float, default=0.0)
    own.add_argument("--crash-if-exists", type=Path, default=None)
    opts = own.parse_args(argv[:split])
    args = engine_parser(opts.engine).parse_args(argv[split:])  # unknown flags: exit 2
    model = Path(
        getattr(args, "model_tag", None) or getattr(args, "model_path", None) or args.model
    )
    if not model.exists():
        print(f"standin ({opts.engine}): no model at {model}", file=sys.stderr)
        return 1
    engine = Engine(opts.engine, args, opts.token_delay_seconds)
    engine.crash_if_exists = opts.crash_if_exists
    handler = type("BoundHandler", (Handler,), {"engine": engine})
    if opts.engine != "llama-server":  # these listen only once the model is loaded
        time.sleep(opts.loading_seconds)
    server = ThreadingHTTPServer((args.host or "0.0.0.0", args.port), handler)
    server.daemon_threads = True
    if opts.engine == "llama-server":
        threading.Timer(opts.loading_seconds, engine.loaded.set).start()
    else:
        engine.loaded.set()
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
