"""Our own engines: ``tokenmill`` (chat and completions over llama.cpp) and ``tokenmill-embed``.

Flags: ``tokenmill/engine/__main__.py`` (``python -m tokenmill.engine``) and the embeddings
engine's ``python -m tokenmill.engine.embed --model DIR --served-name NAME --host H --port P
--threads N``. Metric names: ``tokenmill/engine/metrics.py`` (vLLM's names, ``tokenmill:``
instead of ``vllm:``). Health: ``GET /health`` answers 200 once the model is loaded (the
server only listens after loading).
"""

from __future__ import annotations

import sys

from tokenmill.errors import InvalidRequest
from tokenmill.fleet.engines.base import (
    EngineAdapter,
    LaunchSettings,
    ReplicaMetrics,
    Samples,
    usage_fraction,
)

_OFFLINE_ENV = {"HF_HUB_OFFLINE": "1"}


def _refuse_gpu_settings(engine: str, settings: LaunchSettings) -> None:
    """Our engines run on CPU: asking them for GPUs is a deployment mistake, not a hint."""
    if settings.accelerators or settings.gpu_memory_fraction is not None:
        raise InvalidRequest(
            f"The '{engine}' engine runs on CPU threads; it takes no accelerators and no "
            "gpu_memory_fraction. Use vllm or sglang for GPUs.",
            param="accelerators",
        )


def parse_tokenmill_metrics(text: str) -> ReplicaMetrics:
    """``tokenmill:*`` metrics onto ours (the same names, so this is mostly bookkeeping).

    Generation counters and histograms are optional: the embeddings engine generates nothing.
    """
    s = Samples(text)
    used = s.count("tokenmill:kv_cache_used_cells")
    total = s.count("tokenmill:kv_cache_total_cells")
    ttft_sum, ttft_count = s.histogram("tokenmill:time_to_first_token_seconds")
    tpot_sum, tpot_count = s.histogram("tokenmill:time_per_output_token_seconds")
    return ReplicaMetrics(
        requests_running=s.required_count("tokenmill", "tokenmill:num_requests_running"),
        requests_waiting=s.required_count("tokenmill", "tokenmill:num_requests_waiting"),
        prompt_tokens_total=s.count("tokenmill:prompt_tokens_total") or 0,
        generation_tokens_total=s.count("tokenmill:generation_tokens_total") or 0,
        kv_cache_used_cells=used,
        kv_cache_total_cells=total,
        kv_cache_usage=usage_fraction(used, total),
        prefix_cache_hits=s.count("tokenmill:prefix_cache_hits_total"),
        prefix_cache_queries=s.count("tokenmill:prefix_cache_queries_total"),
        ttft_seconds_sum=ttft_sum,
        ttft_seconds_count=ttft_count,
        tpot_seconds_sum=tpot_sum,
        tpot_seconds_count=tpot_count,
    )


def _replica_args(engine: str, settings: LaunchSettings) -> list[str]:
    """The flags both of our engines take: model, name, address and threads."""
    _refuse_gpu_settings(engine, settings)
    args = [
        "--model", str(settings.model_path),
        "--served-name", settings.served_name,
        "--host", settings.host,
        "--port", str(settings.port),
    ]  # fmt: skip
    if settings.threads is not None:
        args += ["--threads", str(settings.threads)]
    return args


class TokenmillAdapter(EngineAdapter):
    """``python -m tokenmill.engine``: continuous batching over llama.cpp, on CPU."""

    name = "tokenmill"

    def __init__(self, launcher: tuple[str, ...] = (sys.executable, "-m", "tokenmill.engine")):
        super().__init__(launcher)

    def arguments(self, settings: LaunchSettings) -> list[str]:
        args = [
            *_replica_args(self.name, settings),
            "--context-tokens", str(settings.context_tokens),
            "--speculative-tokens", str(settings.speculative_tokens),
        ]  # fmt: skip
        if settings.kv_cache_tokens is not None:
            args += ["--kv-cache-tokens", str(settings.kv_cache_tokens)]
        if settings.max_running is not None:
            args += ["--max-running", str(settings.max_running)]
        if settings.extra_buffers is not None:
            args += ["--extra-buffers", settings.extra_buffers]
        if settings.scheduling is not None:
            args += ["--scheduling", settings.scheduling]
        if settings.adapters_dir is not None:
            args += ["--adapters-dir", str(settings.adapters_dir)]
        return args

    def env(self, settings: LaunchSettings) -> dict[str, str]:
        return dict(_OFFLINE_ENV)

    def parse_metrics(self, text: str) -> ReplicaMetrics:
        return parse_tokenmill_metrics(text)


class TokenmillEmbedAdapter(EngineAdapter):
    """``python -m tokenmill.engine.embed``: sentence embeddings on CPU.

    It takes only the model directory, name, address and threads; generation settings
    (context, running sequences, speculation, KV cache) have no meaning for it and are not
    passed. Its metrics use the ``tokenmill:`` names; it needs at least the two request gauges.
    """

    name = "tokenmill-embed"

    def __init__(
        self, launcher: tuple[str, ...] = (sys.executable, "-m", "tokenmill.engine.embed")
    ):
        super().__init__(launcher)

    def arguments(self, settings: LaunchSettings) -> list[str]:
        return _replica_args(self.name, settings)

    def env(self, settings: LaunchSettings) -> dict[str, str]:
        # sentence-transformers would otherwise try the hub for files it already has.
        return dict(_OFFLINE_ENV)

    def parse_metrics(self, text: str) -> ReplicaMetrics:
        return parse_tokenmill_metrics(text)
