"""SGLang (``python -m sglang.launch_server``).

Sources:
- flags: SGLang "Server Arguments" (docs.sglang.io/advanced_features/server_arguments.html):
  ``--model-path --host --port --served-model-name --context-length --max-running-requests
  --max-total-tokens --tp-size --mem-fraction-static --enable-metrics``; n-gram speculation is
  ``--speculative-algorithm NGRAM --speculative-num-draft-tokens N`` (server_args.py).
- metrics: ``python/sglang/srt/metrics/collector.py`` and docs/references/production_metrics.md,
  labelled ``model_name`` (plus rank labels in newer builds): gauges ``sglang:num_running_reqs``,
  ``sglang:num_queue_reqs``, ``sglang:num_used_tokens``, ``sglang:max_total_num_tokens``,
  ``sglang:token_usage``, ``sglang:cache_hit_rate``; counters ``sglang:prompt_tokens_total``,
  ``sglang:generation_tokens_total``, ``sglang:cached_tokens_total`` (newer, by
  ``cache_source``); histograms ``sglang:time_to_first_token_seconds`` and
  ``sglang:inter_token_latency_seconds`` (older: ``sglang:time_per_output_token_seconds``).
  The page exists only with ``--enable-metrics``.
- health: ``GET /health`` is 200 once the server serves.
"""

from __future__ import annotations

import sys

from tokenmill.fleet.engines.base import (
    EngineAdapter,
    LaunchSettings,
    ReplicaMetrics,
    Samples,
    usage_fraction,
)


def parse_sglang_metrics(text: str) -> ReplicaMetrics:
    s = Samples(text)
    used = s.count("sglang:num_used_tokens")
    total = s.count("sglang:max_total_num_tokens")
    usage = usage_fraction(used, total)
    if usage is None:
        usage = s.mean("sglang:token_usage")
    prompt_tokens = s.count("sglang:prompt_tokens_total") or 0
    # SGLang's prompt tokens include the cached ones, as our prefix-cache queries do.
    hits = s.count("sglang:cached_tokens_total")
    ttft_sum, ttft_count = s.histogram("sglang:time_to_first_token_seconds")
    tpot_sum, tpot_count = s.histogram(
        "sglang:inter_token_latency_seconds", "sglang:time_per_output_token_seconds"
    )
    return ReplicaMetrics(
        requests_running=s.required_count("SGLang", "sglang:num_running_reqs"),
        requests_waiting=s.required_count("SGLang", "sglang:num_queue_reqs"),
        prompt_tokens_total=prompt_tokens,
        generation_tokens_total=s.count("sglang:generation_tokens_total") or 0,
        kv_cache_used_cells=used,
        kv_cache_total_cells=total,
        kv_cache_usage=usage,
        prefix_cache_hits=hits,
        prefix_cache_queries=prompt_tokens if hits is not None else None,
        prefix_cache_hit_rate=s.mean("sglang:cache_hit_rate"),
        ttft_seconds_sum=ttft_sum,
        ttft_seconds_count=ttft_count,
        tpot_seconds_sum=tpot_sum,
        tpot_seconds_count=tpot_count,
    )


class SglangAdapter(EngineAdapter):
    """``kv_cache_tokens`` becomes ``--max-total-tokens`` (the KV pool's size in tokens);
    ``threads`` means nothing to a GPU engine. ``accelerators`` is the tensor-parallel degree."""

    name = "sglang"

    def __init__(
        self, launcher: tuple[str, ...] = (sys.executable, "-m", "sglang.launch_server")
    ) -> None:
        super().__init__(launcher)

    def arguments(self, settings: LaunchSettings) -> list[str]:
        args = [
            "--model-path", str(settings.model_path),
            "--host", settings.host,
            "--port", str(settings.port),
            "--served-model-name", settings.served_name,
            "--context-length", str(settings.context_tokens),
            "--enable-metrics",
        ]  # fmt: skip
        if settings.max_running is not None:
            args += ["--max-running-requests", str(settings.max_running)]
        if settings.kv_cache_tokens is not None:
            args += ["--max-total-tokens", str(settings.kv_cache_tokens)]
        if settings.accelerators > 0:
            args += ["--tp-size", str(settings.accelerators)]
        if settings.gpu_memory_fraction is not None:
            args += ["--mem-fraction-static", str(settings.gpu_memory_fraction)]
        if settings.speculative_tokens > 0:
            args += [
                "--speculative-algorithm", "NGRAM",
                "--speculative-num-draft-tokens", str(settings.speculative_tokens),
            ]  # fmt: skip
        return args

    def env(self, settings: LaunchSettings) -> dict[str, str]:
        return {"HF_HUB_OFFLINE": "1"}

    def parse_metrics(self, text: str) -> ReplicaMetrics:
        return parse_sglang_metrics(text)
